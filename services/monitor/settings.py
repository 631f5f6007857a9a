"""Settings of the monitor (NEXUS_MONITOR_* variables; every name carries the prefix because `nexus up`
hands one environment to every service)."""

from __future__ import annotations

from typing import Annotated

import msgspec

from nexus.errors import SettingsError
from nexus.settings import PositiveFloat, Settings, var_name

NonNegative = Annotated[float, msgspec.Meta(ge=0)]
Ratio = Annotated[float, msgspec.Meta(ge=0, le=1)]
Count = Annotated[int, msgspec.Meta(ge=1)]


class MonitorSettings(Settings, kw_only=True, forbid_unknown_fields=True):
    """Settings of the monitor service. Times are seconds, latency targets milliseconds."""

    monitor_down_after: PositiveFloat = 2.0
    """No heartbeat for this long (at least 2 heartbeat intervals of that service) -> SERVICE_DOWN."""
    monitor_eval_interval: PositiveFloat = 0.25
    """How often staleness, health and alert rules are evaluated."""
    monitor_window: PositiveFloat = 3600.0
    """Length of every in-memory time series and of the availability window."""
    monitor_series_step: PositiveFloat = 1.0
    """One time-series point per this many seconds."""
    monitor_forget_after: PositiveFloat = 600.0
    """A service instance that stopped gracefully is dropped from the views after this long."""
    monitor_feed_stale_after: PositiveFloat = 15.0
    """No status and no heartbeat details for a feed this long -> treated as down."""

    monitor_health_low: Ratio = 0.5
    """LOW_HEALTH_SCORE is raised below this ..."""
    monitor_health_ok: Ratio = 0.7
    """... and cleared at or above this (hysteresis) ..."""
    monitor_health_hold: NonNegative = 5.0
    """... each only after holding that long."""
    monitor_feed_down_hold: NonNegative = 3.0
    """A feed must be down this long before FEED_DOWN (a quick reconnect does not page anyone)."""
    monitor_event_hold: PositiveFloat = 30.0
    """Event alerts (failover, gap, slow consumer, risk breach) clear this long after their last event."""

    monitor_forecast_window: PositiveFloat = 15.0
    """The predictive rule fits a line to the last this-many seconds of a queue depth ..."""
    monitor_forecast_horizon: PositiveFloat = 30.0
    """... and alerts when the line reaches the queue's limit within this many seconds."""
    monitor_forecast_min_points: Count = 5
    monitor_queue_limit_default: NonNegative = 0.0
    """Limit for a `<name>_queue_depth` that has no `<name>_queue_limit` gauge (0 = no forecast)."""

    monitor_slo_window: PositiveFloat = 60.0
    """Latency percentiles for SLOs and health are taken over this rolling window."""
    monitor_slo_hold: NonNegative = 10.0
    monitor_slo_min_samples: Count = 20
    monitor_slo_md_recv_to_pub_ms: NonNegative = 10.0
    monitor_slo_md_pub_to_consume_ms: NonNegative = 25.0
    monitor_slo_md_recv_to_consume_ms: NonNegative = 50.0
    monitor_slo_md_venue_to_recv_ms: NonNegative = 0.0
    """0 = no target (venue clocks are not ours)."""
    monitor_slo_order_submit_to_ack_ms: NonNegative = 50.0
    monitor_slo_order_ack_to_fill_ms: NonNegative = 50.0
    monitor_slo_order_submit_to_fill_ms: NonNegative = 100.0

    monitor_md_latency: bool = True
    """Subscribe to market data (p0 and p1) to measure its latency."""
    monitor_history: Count = 2000
    """Alert transitions kept for the REST history."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.monitor_health_ok <= self.monitor_health_low:
            raise SettingsError(
                var_name("monitor_health_ok"),
                self.monitor_health_ok,
                f"must be above NEXUS_MONITOR_HEALTH_LOW={self.monitor_health_low} (hysteresis)",
            )

    def slo_targets_ms(self) -> dict[str, float]:
        """Latency target per stage (ms); stages without a target are absent."""
        targets = {
            "md.venue_to_recv": self.monitor_slo_md_venue_to_recv_ms,
            "md.recv_to_pub": self.monitor_slo_md_recv_to_pub_ms,
            "md.pub_to_consume": self.monitor_slo_md_pub_to_consume_ms,
            "md.recv_to_consume": self.monitor_slo_md_recv_to_consume_ms,
            "order.submit_to_ack": self.monitor_slo_order_submit_to_ack_ms,
            "order.ack_to_fill": self.monitor_slo_order_ack_to_fill_ms,
            "order.submit_to_fill": self.monitor_slo_order_submit_to_fill_ms,
        }
        return {stage: ms for stage, ms in targets.items() if ms > 0}
