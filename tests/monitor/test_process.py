"""The monitor as a real process over a real nats-server, watching real service processes (and real
messages this test publishes where a producer's behaviour has to be forced)."""

from __future__ import annotations

import asyncio
import random
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from nexus import messages as m
from nexus.bus import Bus
from nexus.testing import ServiceProcess, wait_for
from tests.monitor.helpers import AlertLog, get

pytestmark = pytest.mark.integration

DOWN_DEADLINE = 3.0
"""The issue's functional deadline. The design gives at most 2 s (two missed 1 s heartbeats) + one 0.25 s
evaluation after the last heartbeat, which came at or before the crash."""


async def _known(
    monitor: ServiceProcess, key: str, status: str = "up", timeout: float = 15.0
) -> dict[str, Any]:
    found: dict[str, Any] = {}

    async def check() -> bool:
        for svc in await get(monitor, "/api/services"):  # type: ignore[attr-defined]
            if svc["key"] == key and svc["status"] == status:
                found.update(svc)
                return True
        return False

    await wait_for(check, timeout=timeout, interval=0.1)
    return found


@pytest.mark.slow
async def test_stopping_a_service_raises_service_down_within_3s_and_restarting_clears_it(
    monitor: ServiceProcess, alert_log: AlertLog, nats_url: str, uid: str, tmp_path: Path
) -> None:
    env = {"NEXUS_DATA_DIR": str(tmp_path)}
    source = f"service:optimizer.{uid}"

    def victim(n: int) -> ServiceProcess:
        return ServiceProcess(
            "optimizer", nats_url=nats_url, instance=uid, env=env, log_path=tmp_path / f"o{n}.log"
        )

    with victim(1) as first:
        await asyncio.to_thread(first.wait_ready)
        await _known(monitor, f"optimizer.{uid}")
        crashed = time.monotonic()
        first.kill()  # SIGKILL: no goodbye, only silence
        seen, alert = await alert_log.wait("SERVICE_DOWN", source, timeout=10)
    assert seen - crashed < DOWN_DEADLINE, f"SERVICE_DOWN {seen - crashed:.2f}s after the crash"
    assert alert.severity == "critical"
    assert "no heartbeat" in alert.text

    with victim(2) as second:
        await asyncio.to_thread(second.wait_ready)
        _, cleared = await alert_log.wait("SERVICE_DOWN", source, state="cleared", timeout=10)
        assert f"pid {second.pid}" in cleared.text
        svc = await _known(monitor, f"optimizer.{uid}")
        assert svc["pid"] == second.pid

        stopping = time.monotonic()
        code = asyncio.create_task(asyncio.to_thread(second.terminate))  # SIGTERM: a graceful stop
        await wait_for(lambda: len(alert_log.find("SERVICE_DOWN", source)) == 2, timeout=10)
        seen = alert_log.find("SERVICE_DOWN", source)[1][0]
        assert seen - stopping < DOWN_DEADLINE
        assert await code == 0
    await _known(monitor, f"optimizer.{uid}", status="stopped")
    history = await get(monitor, "/api/alerts?limit=1000")
    mine = [(a["state"]) for a in history["history"] if a["source"] == source]  # type: ignore[index]
    assert mine == ["raised", "cleared", "raised"][::-1]


@pytest.mark.slow
async def test_a_real_feed_handler_failover_raises_feed_failover(
    monitor: ServiceProcess, alert_log: AlertLog, nats_url: str, uid: str, tmp_path: Path
) -> None:
    config = tmp_path / "feeds.toml"
    config.write_text(
        f"""
[[feed]]
name = "{uid}-a"
kind = "synthetic"
venue = "{uid}"
rate = 20.0

[[feed]]
name = "{uid}-b"
kind = "synthetic"
venue = "{uid}"
rate = 20.0

[[group]]
name = "{uid}"
members = ["{uid}-a", "{uid}-b"]
"""
    )
    env = {"NEXUS_CONFIG_FILE": str(config), "NEXUS_DATA_DIR": str(tmp_path)}
    with ServiceProcess(
        "feed_handler", nats_url=nats_url, instance=uid, env=env, log_path=tmp_path / "fh.log"
    ) as fh:
        await asyncio.to_thread(fh.wait_ready)

        async def group_live_on_a() -> bool:
            """Live on a, as the feed status says, and attributed to the handler by its heartbeat."""
            feeds = {f["feed"]: f for f in await get(monitor, "/api/feeds")}  # type: ignore[attr-defined]
            group = feeds.get(uid)
            return (
                group is not None
                and group["active"] == f"{uid}-a"
                and group["state"] == "live"
                and group["source"] == f"feed-handler.{uid}"
            )

        await wait_for(group_live_on_a, timeout=20, interval=0.2)
        async with httpx.AsyncClient(base_url=fh.url) as http:
            r = await http.post(f"/groups/{uid}/switch", params={"to": f"{uid}-b"})
            assert r.status_code == 200, r.text
        _, alert = await alert_log.wait("FEED_FAILOVER", f"feed:{uid}", timeout=10)
        assert alert.severity == "warning"
        assert f"{uid}-b" in alert.text
        feeds = {f["feed"]: f for f in await get(monitor, "/api/feeds")}  # type: ignore[attr-defined]
        assert feeds[uid]["active"] == f"{uid}-b"
        assert feeds[uid]["source"] == f"feed-handler.{uid}"
        assert await asyncio.to_thread(fh.terminate) == 0


@pytest.mark.slow
async def test_feed_status_messages_drive_failover_and_feed_down_and_rest_lists_them(
    monitor: ServiceProcess, alert_log: AlertLog, bus: Bus, uid: str
) -> None:
    def status(state: str, active: str) -> m.FeedStatus:
        return m.FeedStatus(feed=uid, venue=uid, state=state, health=1.0, active=active, ts=m.now_ns())

    await bus.publish(status("live", "primary"))
    await bus.publish(status("live", "primary"))
    await bus.publish(status("live", "backup"))
    _, alert = await alert_log.wait("FEED_FAILOVER", f"feed:{uid}")
    assert "from primary to backup" in alert.text
    # The group then loses every member: down for longer than the hold -> FEED_DOWN.
    for _ in range(5):
        await bus.publish(status("disconnected", "backup"))
        await asyncio.sleep(1.0)
    await alert_log.wait("FEED_DOWN", f"feed:{uid}", timeout=3)
    alerts = await get(monitor, "/api/alerts")
    active = {(a["name"], a["source"]) for a in alerts["active"]}  # type: ignore[index]
    assert {("FEED_FAILOVER", f"feed:{uid}"), ("FEED_DOWN", f"feed:{uid}")} <= active
    assert len([a for a in alert_log.items if a[1].source == f"feed:{uid}"]) == 2  # no spam


@pytest.mark.slow
async def test_the_predictive_rule_fires_on_a_rising_queue_before_the_limit(
    monitor: ServiceProcess, alert_log: AlertLog, bus: Bus, uid: str
) -> None:
    rng = random.Random(1)
    limit = 20_000.0
    depth = 0.0
    published: list[float] = []
    seq = 0
    try:
        while not alert_log.find("QUEUE_LIMIT_FORECAST", f"queue:loadgen.{uid}/orders"):
            seq += 1
            depth += 200  # 1000/s at 5 heartbeats a second: the limit is ~20 s away
            published.append(depth)
            assert depth < limit, "the predictive rule did not fire before the limit"
            await bus.publish(
                m.Heartbeat(
                    service="loadgen",
                    instance=uid,
                    seq=seq,
                    ts=m.now_ns(),
                    started=m.now_ns(),
                    pid=1,
                    state="ready",
                    stats={
                        "orders_queue_depth": depth,
                        "orders_queue_limit": limit,
                        "fills_queue_depth": rng.uniform(0, 500),
                        "fills_queue_limit": 1000,
                    },
                )
            )
            await asyncio.sleep(0.2)
    finally:
        await bus.publish(
            m.Heartbeat(
                service="loadgen", instance=uid, seq=seq + 1, ts=m.now_ns(), started=0, pid=1, state="stopped"
            )
        )
    _, alert = alert_log.find("QUEUE_LIMIT_FORECAST", f"queue:loadgen.{uid}/orders")[0]
    assert alert.value is not None
    assert 0 < alert.value <= 30.0
    assert alert.threshold == 30.0
    # The fit needs a third of its 15 s window: ~5 s of a 1000/s ramp, far below the limit.
    assert published[-1] < limit / 2
    assert alert.value == pytest.approx((limit - published[-1]) / 1000, abs=1.5)
    assert "rising" in alert.text
    assert alert_log.find("QUEUE_LIMIT_FORECAST", f"queue:loadgen.{uid}/fills") == []  # noisy but flat


async def test_metrics_parse_with_prometheus_client_and_cover_the_whole_system(
    monitor: ServiceProcess, bus: Bus, uid: str
) -> None:
    t = m.now_ns()
    for i in range(50):
        now = m.now_ns()
        await bus.publish(
            m.Trade(
                venue=uid,
                symbol="BTC-USDT",
                venue_symbol="BTCUSDT",
                trade_id=str(i),
                price=Decimal("1.5"),
                size=Decimal(1),
                ts_event=now - 3_000_000,
                ts_recv=now - 2_500_000,
                ts_pub=now - 1_000_000,
            )
        )
    for i in range(20):
        common: dict[str, Any] = {
            "account": uid,
            "client_order_id": f"o{i}",
            "symbol": "X",
            "venue": uid,
            "ts_cmd": t,
        }
        await bus.publish(m.ExecReport(exec_type=m.ExecType.ACCEPTED, ts_event=t + 1_000_000, **common))
        await bus.publish(m.ExecReport(exec_type=m.ExecType.FILLED, ts_event=t + 4_000_000, **common))
    await bus.publish(
        m.AccountRisk(account=uid, state=m.TradingState.ACTIVE, realised_pnl=12.5, unrealised_pnl=-2.5)
    )
    await bus.publish(
        m.PortfolioTarget(
            portfolio=uid,
            objective="min_variance",
            symbols=("A", "B"),
            weights=(0.25, 0.75),
            exp_return=0.1,
            volatility=0.2,
            sharpe=0.5,
        )
    )
    await bus.flush()

    async def seen() -> bool:
        lat = await get(monitor, "/api/latency")
        keys = {(x["stage"], x["scope"]) for x in lat if x["total"]["count"]}  # type: ignore[attr-defined]
        return {("md.recv_to_pub", uid), ("order.submit_to_fill", uid)} <= keys

    await wait_for(seen, timeout=10, interval=0.2)
    async with httpx.AsyncClient(base_url=monitor.url) as http:
        r = await http.get("/metrics")
    assert r.status_code == 200
    families = list(text_string_to_metric_families(r.text))
    names = [f.name for f in families]
    assert len(names) == len(set(names)), "a metric family appears twice (Prometheus rejects that)"
    by_name = {f.name: f for f in families}

    def samples(name: str, **labels: str) -> list[Any]:
        return [s for s in by_name[name].samples if all(s.labels.get(k) == v for k, v in labels.items())]

    # The monitor's own stats (runtime) and every live service's heartbeat stats (system).
    assert samples("nexus_uptime_seconds", service="monitor")
    monitor_key = {"service": "monitor", "instance": monitor.env["NEXUS_INSTANCE"]}
    assert samples("nexus_system_uptime_seconds", **monitor_key)
    assert by_name["nexus_system_bus_published"].type == "counter"
    assert samples("nexus_monitor_service_up", **monitor_key)[0].value == 1.0
    assert 0.0 <= by_name["nexus_monitor_system_health"].samples[0].value <= 1.0
    # Latency histograms: cumulative buckets ending at +Inf = count.
    hist = by_name["nexus_monitor_latency_seconds"]
    assert hist.type == "histogram"
    buckets = [
        s for s in hist.samples if s.name.endswith("_bucket") and s.labels["stage"] == "md.recv_to_pub"
    ]
    buckets = [s for s in buckets if s.labels["scope"] == uid]
    counts = [s.value for s in sorted(buckets, key=lambda s: float(s.labels["le"]))]
    assert counts == sorted(counts)
    assert counts[-1] == 50
    le_1ms = next(s.value for s in buckets if s.labels["le"] == "0.001")
    le_2_5ms = next(s.value for s in buckets if s.labels["le"] == "0.0025")
    assert (le_1ms, le_2_5ms) == (0, 50)  # every recv->pub was 1.5 ms (HDR: within 1%)
    p99 = samples(
        "nexus_monitor_latency_window_seconds", stage="order.submit_to_fill", scope=uid, quantile="0.99"
    )
    assert p99[0].value == pytest.approx(0.004, rel=0.01)
    assert samples("nexus_monitor_account_pnl", account=uid, kind="realised")[0].value == 12.5
    assert samples("nexus_monitor_portfolio_weight", portfolio=uid, symbol="B")[0].value == 0.75


async def test_rest_series_overview_forget_and_the_event_stream(
    monitor: ServiceProcess, bus: Bus, uid: str
) -> None:
    hb = m.Heartbeat(
        service="probe", instance=uid, seq=1, ts=m.now_ns(), started=m.now_ns(), pid=7, state="ready"
    )
    await bus.publish(hb)
    await _known(monitor, f"probe.{uid}")
    async with httpx.AsyncClient(base_url=monitor.url, timeout=10) as http:
        index = (await http.get("/api/series")).json()
        assert "system.health" in index["names"]
        assert index["window_seconds"] == 3600
        series = (await http.get("/api/series/system.health", params={"seconds": 60})).json()
        assert series["points"]
        assert all(0 <= v <= 1 for _, v in series["points"])
        assert abs(series["points"][-1][0] - time.time() * 1000) < 5000  # wall-clock milliseconds
        assert (await http.get("/api/series/no.such.series")).status_code == 404
        overview = (await http.get("/api/overview")).json()
        assert {"system_health", "services", "feeds", "latency", "alerts", "accounts", "portfolios"} <= set(
            overview
        )
        page = await http.get("/")
        assert page.status_code == 200
        assert "dashboard.js" in page.text
        assert (await http.get("/static/dashboard.js")).status_code == 200

        events: list[str] = []
        async with http.stream("GET", "/api/stream") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            async for line in stream.aiter_lines():
                if line.startswith("event: "):
                    events.append(line[7:])
                if events.count("snapshot") >= 2:
                    break
        assert events.count("snapshot") == 2

        async def stream_closed() -> bool:
            return (await http.get("/stats")).json()["stats"]["dashboard_clients"] == 0

        await wait_for(stream_closed, timeout=5, interval=0.1)  # a browser that leaves is let go
        assert (await http.get("/readyz")).status_code == 200

        assert (await http.delete(f"/api/services/probe/{uid}")).status_code == 200
        assert (await http.delete(f"/api/services/probe/{uid}")).status_code == 404
    services = await get(monitor, "/api/services")
    assert f"probe.{uid}" not in {s["key"] for s in services}  # type: ignore[attr-defined]
