"""Every alert rule of the monitor model on a fake clock: when it raises, when it clears, and that a
flapping input does not spam."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec
import pytest

from monitor.model import Stamps
from nexus.messages import (
    AccountRisk,
    ExecReport,
    ExecType,
    FeedStatus,
    KillSwitch,
    Reason,
    RiskAudit,
    TradingState,
)
from tests.monitor.helpers import Clocked, heartbeat


class Beating:
    """A service instance that heartbeats once a second into a Clocked model."""

    def __init__(self, c: Clocked, service: str = "risk", instance: str = "1", pid: int = 100) -> None:
        self.c, self.service, self.instance, self.pid = c, service, instance, pid
        self.seq = 0

    def beat(
        self,
        stats: dict[str, float] | None = None,
        state: str = "ready",
        details: dict[str, Any] | None = None,
    ) -> None:
        self.seq += 1
        hb = heartbeat(
            self.service,
            self.instance,
            self.seq,
            ts=self.c.wall_ns(),
            pid=self.pid,
            state=state,
            stats=stats,
            details=details,
        )
        self.c.model.on_heartbeat(hb, self.c.now)
        self.c.take()

    def run(self, seconds: int, stats: dict[str, float] | None = None) -> None:
        for _ in range(seconds):
            self.beat(stats)
            self.c.advance(1.0)


def test_service_down_is_raised_within_the_threshold_plus_one_eval_and_cleared_by_a_restart() -> None:
    c = Clocked()
    svc = Beating(c)
    svc.run(5)
    assert c.named("SERVICE_DOWN") == []
    crashed_at = c.now  # the last heartbeat came 1 s ago, just before the crash
    last_rx = c.now - 1.0
    while not c.named("SERVICE_DOWN"):
        c.advance(c.settings.monitor_eval_interval)
    down = c.named("SERVICE_DOWN", "raised")[0]
    assert down.source == "service:risk.1"
    assert down.severity == "critical"
    detected_after_rx = c.now - last_rx
    assert 2.0 <= detected_after_rx <= 2.0 + c.settings.monitor_eval_interval
    assert c.now - crashed_at < 3.0
    c.advance(30)
    assert len(c.named("SERVICE_DOWN")) == 1  # no repeats while down
    restarted = Beating(c, pid=200)
    restarted.beat()
    cleared = c.named("SERVICE_DOWN", "cleared")
    assert len(cleared) == 1
    assert "pid 200" in cleared[0].text
    view = c.model.service_views(c.now)[0]
    assert view.status == "up"
    assert view.availability is not None
    assert 0 < view.availability < 1  # 30+ s down out of ~40 s observed


def test_a_stopped_heartbeat_raises_service_down_at_once() -> None:
    c = Clocked()
    svc = Beating(c, service="optimizer")
    svc.run(3)
    svc.beat(state="stopped")
    raised = c.named("SERVICE_DOWN", "raised")
    assert [a.source for a in raised] == ["service:optimizer.1"]
    assert "stopped" in raised[0].text
    assert c.model.service_views(c.now)[0].status == "stopped"


def test_a_slower_heartbeat_interval_stretches_the_down_threshold() -> None:
    c = Clocked()
    svc = Beating(c)
    svc.seq = 20  # a service that has heartbeated every 5 s for 100 s when the monitor first sees it
    for _ in range(10):
        hb = heartbeat("risk", "1", svc.seq, ts=c.wall_ns(), pid=svc.pid)
        started = c.wall_ns() - (svc.seq - 1) * 5_000_000_000 - 300_000_000  # 0.3 s start-up
        c.model.on_heartbeat(msgspec.structs.replace(hb, started=started), c.now)
        svc.seq += 1
        c.advance(5.0)
    assert c.named("SERVICE_DOWN") == []
    assert c.model.services["risk.1"].down_after == pytest.approx(10.0, rel=0.05)
    c.advance(10.0)
    assert len(c.named("SERVICE_DOWN", "raised")) == 1


def test_instances_stopped_gracefully_are_retired_after_forget_after() -> None:
    c = Clocked(monitor_forget_after=60)
    svc = Beating(c)
    svc.run(2)
    svc.beat(state="stopped")
    c.advance(61)
    assert "risk.1" not in c.model.services
    assert c.named("SERVICE_DOWN", "cleared")[0].text.startswith("risk.1 retired")


def test_low_health_has_hysteresis_and_holds() -> None:
    c = Clocked(monitor_health_hold=5)
    svc = Beating(c)
    svc.run(3)
    # errors flapping between 0 and heavy every other second: the 30 s rate keeps health in the band
    errors = 0.0
    for i in range(20):
        errors += 3 if i % 2 else 0
        svc.beat({"bus_handler_errors_total": errors})
        c.advance(1.0)
    # loop lag of 1 s drags health to 0.8 and errors at 1.5/s take another 0.3: 0.5 -> raised after 5 s
    for _ in range(10):
        errors += 5
        svc.beat({"bus_handler_errors_total": errors, "loop_lag_ms": 1000})
        c.advance(1.0)
    raised = c.named("LOW_HEALTH_SCORE", "raised", "service:risk.1")
    assert len(raised) == 1
    assert raised[0].value is not None
    assert raised[0].value < 0.5
    for _ in range(40):
        svc.beat({"bus_handler_errors_total": errors})
        c.advance(1.0)
    assert len(c.named("LOW_HEALTH_SCORE", "cleared", "service:risk.1")) == 1
    assert len(c.named("LOW_HEALTH_SCORE", "raised", "service:risk.1")) == 1


def test_slow_consumer_and_flat_sequence_gaps_are_event_alerts_that_clear_after_the_hold() -> None:
    c = Clocked(monitor_event_hold=10)
    svc = Beating(c, service="optimizer")
    svc.seq = 10  # running before the monitor started: its counts so far are no news
    svc.run(2, {"bus_slow_consumer_total": 7, "md_gaps_total": 2})
    assert c.alerts == []
    svc.run(3, {"bus_slow_consumer_total": 9, "md_gaps_total": 5})
    svc.run(2, {"bus_slow_consumer_total": 12, "md_gaps_total": 5})
    slow = c.named("SLOW_CONSUMER", "raised", "service:optimizer.1")
    gaps = c.named("SEQUENCE_GAP", "raised", "service:optimizer.1")
    assert len(slow) == 1
    assert "dropped 2 message" in slow[0].text
    assert len(gaps) == 1
    assert c.model.alerts.active[("SLOW_CONSUMER", "service:optimizer.1")].count == 2
    svc.run(12, {"bus_slow_consumer_total": 12, "md_gaps_total": 5})
    assert len(c.named("SLOW_CONSUMER", "cleared")) == 1
    assert len(c.named("SEQUENCE_GAP", "cleared")) == 1


def test_a_restarted_process_counts_its_events_from_zero() -> None:
    c = Clocked()
    first = Beating(c, service="optimizer")
    first.seq = 10
    first.run(3, {"bus_slow_consumer_total": 50})
    assert c.alerts == []
    Beating(c, service="optimizer", pid=999).run(1, {"bus_slow_consumer_total": 4})
    assert c.named("SLOW_CONSUMER", "raised")[0].value == 4


def _status(feed: str, state: str, active: str = "", ts: int = 0, health: float = 1.0) -> FeedStatus:
    return FeedStatus(feed=feed, venue="sim", state=state, health=health, active=active, ts=ts)


def test_feed_failover_is_raised_on_a_change_of_the_active_source_once_per_burst() -> None:
    c = Clocked(monitor_event_hold=30)
    m = c.model
    m.on_feed_status(_status("btc", "live", "binance", ts=c.wall_ns()), c.now)
    c.advance(2)
    m.on_feed_status(_status("btc", "live", "binance", ts=c.wall_ns()), c.now)  # periodic, unchanged
    assert c.take() == []
    m.on_feed_status(_status("btc", "live", "coinbase", ts=c.wall_ns()), c.now)
    raised = c.take()
    assert [(a.name, a.state, a.source) for a in raised] == [("FEED_FAILOVER", "raised", "feed:btc")]
    assert "from binance to coinbase" in raised[0].text
    c.advance(5)
    m.on_feed_status(_status("btc", "live", "binance", ts=c.wall_ns()), c.now)  # fail back
    assert c.take() == []  # same burst: refreshed, not re-raised
    assert m.alerts.active[("FEED_FAILOVER", "feed:btc")].count == 2
    c.advance(31)
    assert len(c.named("FEED_FAILOVER", "cleared")) == 1


def test_a_heartbeat_snapshot_older_than_the_latest_status_cannot_fake_a_failover() -> None:
    c = Clocked()
    m = c.model
    old = c.wall_ns()
    c.advance(0.5)
    m.on_feed_status(_status("btc", "live", "b", ts=c.wall_ns()), c.now)
    hb = heartbeat(
        "feed-handler",
        "1",
        1,
        ts=old,
        details={"feeds": {"btc": {"state": "live", "active": "a", "venue": "x"}}},
    )
    m.on_heartbeat(hb, c.now)
    c.take()
    assert c.named("FEED_FAILOVER") == []
    assert m.feeds["btc"].active == "b"


def test_feed_details_in_heartbeats_drive_gaps_failovers_and_feed_down() -> None:
    c = Clocked(monitor_feed_down_hold=3, monitor_event_hold=30)
    svc = Beating(c, service="feed-handler")

    def feeds(state: str, gaps: int, failovers: int) -> dict[str, object]:
        return {
            "feeds": {
                "eth": {
                    "state": state,
                    "health": 1.0 if state == "live" else 0.1,
                    "venue": "sim",
                    "active": "",
                    "msgs_total": 100 * svc.seq,
                    "gaps_total": gaps,
                    "failovers_total": failovers,
                }
            }
        }

    for _ in range(3):
        svc.beat(details=feeds("live", 0, 0))
        c.advance(1)
    svc.beat(details=feeds("live", 2, 1))
    assert {(a.name, a.source) for a in c.alerts} == {
        ("SEQUENCE_GAP", "feed:eth"),
        ("FEED_FAILOVER", "feed:eth"),
    }
    # Down for 2 s (a quick reconnect) is not FEED_DOWN; down for longer than the hold is.
    for _ in range(2):
        svc.beat(details=feeds("backoff", 2, 1))
        c.advance(1)
    svc.beat(details=feeds("live", 2, 1))
    c.advance(1)
    assert c.named("FEED_DOWN") == []
    for _ in range(5):
        svc.beat(details=feeds("disconnected", 2, 1))
        c.advance(1)
    assert len(c.named("FEED_DOWN", "raised", "feed:eth")) == 1
    for _ in range(3):
        svc.beat(details=feeds("live", 2, 1))
        c.advance(1)
    assert len(c.named("FEED_DOWN", "cleared", "feed:eth")) == 1
    view = c.model.feed_views(c.now)[0]
    assert view.msgs_rate == pytest.approx(100, rel=0.05)
    assert view.source == "feed-handler.1"
    assert view.availability is not None
    assert 0 < view.availability < 1


def test_a_feed_that_goes_silent_is_down_and_a_stopped_feed_is_left_out() -> None:
    c = Clocked(monitor_feed_stale_after=10, monitor_feed_down_hold=3)
    c.model.on_feed_status(_status("quiet", "live"), c.now)
    c.model.on_feed_status(_status("parked", "stopped"), c.now)
    c.advance(12)  # silent for longer than feed_stale_after, but not yet for the hold on top
    assert c.named("FEED_DOWN") == []
    c.advance(2)
    assert [a.source for a in c.named("FEED_DOWN", "raised")] == ["feed:quiet"]
    assert c.model.feeds["parked"].health is None
    assert c.model.feeds["quiet"].health == 0.0


def _reject(account: str, reason: str) -> ExecReport:
    return ExecReport(
        account=account,
        client_order_id="c1",
        exec_type=ExecType.REJECTED,
        symbol="BTC-USDT",
        reason=reason,
        text="limit 5",
    )


def test_risk_rejects_with_limit_reasons_raise_risk_limit_breach_per_account() -> None:
    c = Clocked(monitor_event_hold=30)
    m = c.model
    m.on_exec_report(_reject("a1", Reason.PRICE_OFF_TICK), c.now)  # malformed, not a limit
    assert c.take() == []
    m.on_exec_report(_reject("a1", Reason.MAX_POSITION), c.now)
    m.on_exec_report(_reject("a1", Reason.DAILY_LOSS_LIMIT), c.now)
    m.on_exec_report(_reject("a2", Reason.MAX_GROSS_EXPOSURE), c.now)
    raised = c.take()
    assert [(a.name, a.source) for a in raised] == [
        ("RISK_LIMIT_BREACH", "account:a1"),
        ("RISK_LIMIT_BREACH", "account:a2"),
    ]
    assert "MAX_POSITION" in raised[0].text
    assert "DAILY_LOSS_LIMIT" in m.alerts.active[("RISK_LIMIT_BREACH", "account:a1")].text
    c.advance(31)
    assert len(c.named("RISK_LIMIT_BREACH", "cleared")) == 2


def test_kill_switch_raises_per_account_or_for_all_and_resume_clears() -> None:
    c = Clocked()
    m = c.model
    m.on_kill_switch(
        KillSwitch(state=TradingState.HALTED, account="a1", operator="ops", reason="fat finger"), c.now
    )
    m.on_kill_switch(KillSwitch(state=TradingState.REDUCING, account=""), c.now)
    raised = c.take()
    assert [(a.source, a.severity) for a in raised] == [("account:a1", "critical"), ("account:*", "warning")]
    assert "fat finger" in raised[0].text
    m.on_kill_switch(KillSwitch(state=TradingState.ACTIVE, account=""), c.now)
    assert {a.source for a in c.take() if a.state == "cleared"} == {"account:a1", "account:*"}
    # An account the monitor finds halted (it started after the kill) is raised from its risk state.
    m.on_account_risk(AccountRisk(account="a3", state=TradingState.HALTED), c.now)
    m.on_account_risk(AccountRisk(account="a3", state=TradingState.ACTIVE, realised_pnl=5.0), c.now)
    assert [(a.state, a.source) for a in c.take()] == [("raised", "account:a3"), ("cleared", "account:a3")]
    assert c.model.account_views(c.now)[0].total_pnl == 5.0


def test_a_trading_state_change_audited_by_risk_raises_and_clears_the_kill_switch_alert() -> None:
    # a kill switch set over risk's REST route is seen only as risk's audit event
    c = Clocked()
    m = c.model
    m.on_risk_audit(
        RiskAudit(scope="global", field="trading_state", old="active", new="halted", operator="ops"), c.now
    )
    m.on_risk_audit(RiskAudit(scope="account:a2", field="trading_state", old="active", new="reducing"), c.now)
    m.on_risk_audit(RiskAudit(scope="a2", field="max_open_orders", old="1", new="2"), c.now)  # not a state
    raised = c.take()
    assert [(a.source, a.severity) for a in raised] == [("account:*", "critical"), ("account:a2", "warning")]
    m.on_risk_audit(RiskAudit(scope="global", field="trading_state", old="halted", new="active"), c.now)
    assert {a.source for a in c.take() if a.state == "cleared"} == {"account:*", "account:a2"}


def test_latency_slo_breach_needs_enough_samples_and_a_hold_and_clears_below_80_percent() -> None:
    c = Clocked(monitor_slo_hold=3, monitor_slo_window=10, monitor_slo_min_samples=20)
    m = c.model
    target = c.settings.monitor_slo_md_recv_to_pub_ms

    def traffic(seconds: int, recv_to_pub_ms: float, per_second: int = 50) -> None:
        for _ in range(seconds):
            for _ in range(per_second):
                ts = c.wall_ns()
                m.on_market_data(
                    _stamps("sim", ts - 1000, ts - int(recv_to_pub_ms * 1e6) - 10, ts - 10), c.now, ts
                )
            c.advance(1.0)

    traffic(5, target / 2)
    assert c.named("LATENCY_SLO_BREACH") == []
    traffic(1, target * 3, per_second=5)  # a handful of slow ones within a healthy window: no breach
    assert c.named("LATENCY_SLO_BREACH") == []
    traffic(15, target * 3)
    raised = c.named("LATENCY_SLO_BREACH", "raised", "latency:md.recv_to_pub@sim")
    assert len(raised) == 1
    assert raised[0].threshold == target
    assert raised[0].value == pytest.approx(target * 3, rel=0.02)
    assert m.system_health < 1.0
    traffic(20, target * 0.5)
    assert len(c.named("LATENCY_SLO_BREACH", "cleared", "latency:md.recv_to_pub@sim")) == 1


def _stamps(venue: str, ts_event: int, ts_recv: int, ts_pub: int) -> Stamps:
    return Stamps(venue=venue, ts_event=ts_event, ts_recv=ts_recv, ts_pub=ts_pub)


def test_order_latency_from_exec_report_timestamps_excludes_resting_fills() -> None:
    c = Clocked()
    m = c.model
    ms = 1_000_000
    t = c.wall_ns()
    for i in range(10):
        coid = f"o{i}"
        common = {"account": "a", "client_order_id": coid, "symbol": "X", "venue": "nx", "ts_cmd": t}
        m.on_exec_report(ExecReport(exec_type=ExecType.ACCEPTED, ts_event=t + 2 * ms, **common), c.now)  # type: ignore[arg-type]
        m.on_exec_report(
            ExecReport(exec_type=ExecType.FILLED, ts_event=t + 5 * ms, liquidity="taker", **common),  # type: ignore[arg-type]
            c.now,
        )
    m.on_exec_report(
        ExecReport(
            account="a",
            client_order_id="rest",
            exec_type=ExecType.FILLED,
            symbol="X",
            venue="nx",
            ts_cmd=t - 60_000 * ms,
            ts_event=t,
            liquidity="maker",
            last_qty=Decimal(1),
        ),
        c.now,
    )
    c.advance(1.5)
    views = {(v.stage, v.scope): v for v in m.latency_views(c.now)}
    assert views[("order.submit_to_ack", "nx")].total.count == 10
    assert views[("order.submit_to_ack", "nx")].total.p99 == pytest.approx(2.0, rel=0.01)
    assert views[("order.submit_to_fill", "nx")].total.count == 10  # the maker fill is not latency
    assert views[("order.submit_to_fill", "nx")].total.max == pytest.approx(5.0, rel=0.01)
    assert views[("order.ack_to_fill", "all")].window.p50 == pytest.approx(3.0, rel=0.01)
    assert m.accepted == {}


def test_the_predictive_rule_fires_before_the_limit_and_clears_when_the_queue_drains() -> None:
    c = Clocked(monitor_forecast_horizon=30, monitor_forecast_window=15)
    svc = Beating(c, service="order-engine")
    limit = 10_000.0
    depth = 0.0
    raised_at_depth = None
    for _ in range(60):
        depth += 200  # +200/s: the limit is 50 s away from an empty queue
        svc.beat({"orders_queue_depth": depth, "orders_queue_limit": limit})
        if c.named("QUEUE_LIMIT_FORECAST", "raised"):
            raised_at_depth = depth
            break
        c.advance(1.0)
    assert raised_at_depth is not None
    alert = c.named("QUEUE_LIMIT_FORECAST", "raised")[0]
    assert alert.source == "queue:order-engine.1/orders"
    assert raised_at_depth < limit
    assert alert.value is not None
    assert 0 < alert.value <= 30
    assert (limit - raised_at_depth) / 200 == pytest.approx(alert.value, abs=1.5)
    assert raised_at_depth >= limit - 30 * 200 - 200  # not before the horizon either
    view = c.model.service_views(c.now)[0].queues[0]
    assert view.slope_per_s == pytest.approx(200, rel=0.01)
    for _ in range(30):
        depth = max(0.0, depth - 500)
        svc.beat({"orders_queue_depth": depth, "orders_queue_limit": limit})
        c.advance(1.0)
    assert len(c.named("QUEUE_LIMIT_FORECAST", "cleared")) == 1
    assert len(c.named("QUEUE_LIMIT_FORECAST", "raised")) == 1


def test_a_noisy_flat_queue_never_triggers_the_forecast() -> None:
    import random

    rng = random.Random(5)
    c = Clocked()
    svc = Beating(c, service="order-engine")
    for _ in range(300):
        svc.beat({"orders_queue_depth": rng.uniform(0, 400), "orders_queue_limit": 10_000})
        c.advance(1.0)
    assert c.named("QUEUE_LIMIT_FORECAST") == []


def test_alert_history_is_bounded_and_newest_first() -> None:
    c = Clocked(monitor_history=5, monitor_event_hold=1)
    for i in range(10):
        c.model.on_exec_report(_reject(f"acct{i}", Reason.MAX_NOTIONAL), c.now)
        c.advance(2)
    view = c.model.alert_views(limit=100)
    assert len(view.history) == 5
    assert view.history[0].ts >= view.history[-1].ts
    assert view.active == []


def test_a_feed_removed_from_its_feed_handler_is_forgotten_with_its_alerts() -> None:
    c = Clocked(monitor_feed_down_hold=1)
    svc = Beating(c, service="feed-handler")
    both = {"feeds": {"a": {"state": "live", "venue": "v"}, "b": {"state": "failed", "venue": "v"}}}
    for _ in range(3):
        svc.beat(details=both)
        c.advance(1)
    assert [a.source for a in c.named("FEED_DOWN", "raised")] == ["feed:b"]
    svc.beat(details={"feeds": {"a": {"state": "live", "venue": "v"}}})
    assert set(c.model.feeds) == {"a"}
    cleared = c.named("FEED_DOWN", "cleared", "feed:b")
    assert cleared[0].text == "feed b was removed from feed-handler.1"
    assert c.model.forget_feed("a")
    assert not c.model.forget_feed("a")
