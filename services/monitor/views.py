"""What the monitor shows: the bodies of its REST routes and of the dashboard's live stream.

Times are wall-clock nanoseconds (`*_ts`) or seconds (`age`, `*_seconds`); latencies milliseconds;
rates per second; health and availability 0..1 (None when not known).
"""

from __future__ import annotations

import msgspec

from monitor.alerts import ActiveAlert
from monitor.latency import Percentiles
from nexus.messages import Alert


class QueueView(msgspec.Struct, kw_only=True):
    name: str
    depth: float
    limit: float | None
    slope_per_s: float | None
    eta_seconds: float | None
    """Forecast seconds until the limit (None when the trend never reaches it)."""


class ServiceView(msgspec.Struct, kw_only=True):
    key: str
    service: str
    instance: str
    state: str
    status: str
    """up, down (no heartbeat) or stopped (said goodbye)."""
    health: float
    availability: float | None
    heartbeat_age: float
    interval: float
    pid: int
    http_url: str
    started_ts: int
    uptime_seconds: float
    cpu_pct: float
    rss_mb: float
    loop_lag_ms: float
    msgs_in_rate: float
    msgs_out_rate: float
    error_rate: float
    drop_rate: float
    queues: list[QueueView]
    stats: dict[str, float]


class FeedView(msgspec.Struct, kw_only=True):
    feed: str
    venue: str
    state: str
    health: float | None
    reported_health: float
    active: str
    reason: str
    availability: float | None
    age: float
    msgs_rate: float
    msgs_total: float
    gaps_total: float
    failovers_total: float
    error_rate: float
    source: str
    """The service instance whose heartbeat carried this feed's details (empty if only status seen)."""


class LatencyView(msgspec.Struct, kw_only=True):
    stage: str
    scope: str
    target_ms: float | None
    window: Percentiles
    total: Percentiles
    breach: bool


class PositionView(msgspec.Struct, kw_only=True):
    symbol: str
    qty: str
    avg_px: str | None
    mark: str | None
    unrealised_pnl: float
    realised_pnl: float


class AccountView(msgspec.Struct, kw_only=True):
    account: str
    state: str
    realised_pnl: float
    unrealised_pnl: float
    total_pnl: float
    gross_exposure: float
    net_exposure: float
    open_orders: int
    positions: list[PositionView]
    rejects_total: int
    age: float


class PortfolioView(msgspec.Struct, kw_only=True):
    portfolio: str
    objective: str
    status: str
    symbols: list[str]
    weights: list[float]
    exp_return: float
    volatility: float
    sharpe: float
    solve_us: int
    age: float


class Throughput(msgspec.Struct, kw_only=True):
    md_rate: float
    """Market-data messages per second seen by the monitor (all venues)."""
    md_total: int
    md_rate_by_venue: dict[str, float]
    exec_rate: float
    exec_total: int
    rejects_total: int
    published_rate: float
    """Sum of every service's bus publish rate."""


class AlertCounts(msgspec.Struct, kw_only=True):
    active: int
    critical: int
    warning: int
    raised_total: int
    cleared_total: int


class Overview(msgspec.Struct, kw_only=True):
    """Everything the dashboard shows, at one moment."""

    ts: int
    seq: int
    system_health: float
    services: list[ServiceView]
    feeds: list[FeedView]
    latency: list[LatencyView]
    throughput: Throughput
    alerts: list[ActiveAlert]
    alert_counts: AlertCounts
    accounts: list[AccountView]
    portfolios: list[PortfolioView]


class AlertsView(msgspec.Struct, kw_only=True):
    active: list[ActiveAlert]
    history: list[Alert]
    """Raised and cleared transitions, newest first."""


class SeriesView(msgspec.Struct, kw_only=True):
    name: str
    points: list[tuple[int, float]]
    """(wall-clock ms, value), oldest first."""


class SeriesIndex(msgspec.Struct, kw_only=True):
    names: list[str]
    window_seconds: float
    step_seconds: float
