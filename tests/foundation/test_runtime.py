"""The service runtime: health routes, heartbeats, metrics, bad bytes survived, graceful SIGTERM."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import ClassVar

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from nexus import messages as m
from nexus import subjects
from nexus.bus import Bus
from nexus.runtime import Runner, Service
from nexus.settings import Settings, load_settings
from nexus.testing import ServiceProcess, wait_for

pytestmark = pytest.mark.integration


class Echo(Service[Settings]):
    """A tiny service for the runtime tests: counts the trades of its own venue."""

    name: ClassVar[str] = "echo"

    def __init__(self, settings: Settings, bus: Bus) -> None:
        super().__init__(settings, bus)
        self.trades = 0

    async def start(self) -> None:
        await self.bus.subscribe(subjects.trade(self.settings.instance, "*"), m.Trade, self.on_trade)

    async def on_trade(self, trade: m.Trade) -> None:
        self.trades += 1

    def stats(self) -> dict[str, float]:
        return {"trades_total": self.trades}


def trade(venue: str) -> m.Trade:
    return m.Trade(venue=venue, symbol="A", venue_symbol="A", trade_id="1", price=Decimal(1), size=Decimal(1))


async def test_in_process_service_survives_garbage_and_stops_cleanly(
    nats_url: str, uid: str, bus: Bus
) -> None:
    settings = load_settings(Settings, {}, nats_url=[nats_url], instance=uid, heartbeat_interval=0.2)
    runner = Runner(Echo, settings)
    heartbeats: list[m.Heartbeat] = []

    async def on_hb(hb: m.Heartbeat) -> None:
        heartbeats.append(hb)

    await bus.subscribe(subjects.heartbeat("echo", uid), m.Heartbeat, on_hb)
    await bus.flush()
    task = asyncio.create_task(runner.run(install_signals=False))
    await wait_for(lambda: runner.state == "ready", timeout=10)
    service = runner.service
    assert isinstance(service, Echo)

    async with httpx.AsyncClient(base_url=runner.http_url) as http:
        assert (await http.get("/healthz")).json()["status"] == "ok"
        assert (await http.get("/readyz")).status_code == 200

        subject = subjects.trade(uid, "A")
        await bus.publish_raw(subject, b"{garbage")
        await bus.publish(trade(uid))
        await wait_for(lambda: service.trades == 1)
        assert runner.bus.stats.decode_errors_total == 1

        stats = (await http.get("/stats")).json()
        assert stats["stats"]["trades_total"] == 1
        assert stats["stats"]["bus_decode_errors_total"] == 1

        text = (await http.get("/metrics")).text
        families = {f.name: f for f in text_string_to_metric_families(text)}
        assert families["nexus_trades"].type == "counter"
        assert families["nexus_trades"].samples[0].value == 1
        assert families["nexus_trades"].samples[0].labels == {"service": "echo", "instance": uid}

    await wait_for(lambda: len(heartbeats) >= 2)
    assert heartbeats[-1].state == "ready"
    assert heartbeats[-1].http_url == runner.http_url
    assert heartbeats[-1].seq > heartbeats[0].seq

    runner.request_stop()
    assert await asyncio.wait_for(task, 10) == 0
    await wait_for(lambda: heartbeats[-1].state == "stopped")


async def test_readyz_is_503_with_a_reason_until_nats_is_reached(uid: str) -> None:
    from nexus.procs import free_port

    settings = load_settings(Settings, {}, nats_url=[f"nats://127.0.0.1:{free_port()}"], instance=uid)
    runner = Runner(Echo, settings)
    task = asyncio.create_task(runner.run(install_signals=False))
    await wait_for(lambda: bool(runner.http_url), timeout=5)
    async with httpx.AsyncClient(base_url=runner.http_url) as http:
        assert (await http.get("/healthz")).status_code == 200
        ready = await http.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["reason"] == "service is starting"
    runner.request_stop()
    assert await asyncio.wait_for(task, 10) == 0


@pytest.mark.slow
@pytest.mark.parametrize("module", ["feed_handler", "risk", "order_engine", "optimizer", "monitor"])
async def test_each_service_process_heartbeats_answers_health_and_exits_0_on_sigterm(
    module: str, nats_url: str, uid: str, bus: Bus, tmp_path: object
) -> None:
    heartbeats: list[m.Heartbeat] = []

    async def on_hb(hb: m.Heartbeat) -> None:
        heartbeats.append(hb)

    await bus.subscribe(subjects.heartbeat("*", uid), m.Heartbeat, on_hb)
    await bus.flush()
    with ServiceProcess(
        module, nats_url=nats_url, instance=uid, env={"NEXUS_DATA_DIR": str(tmp_path)}
    ) as proc:
        await asyncio.to_thread(proc.wait_ready)
        await wait_for(lambda: any(hb.state == "ready" for hb in heartbeats), timeout=5)
        assert proc.get("/healthz")[0] == 200
        assert heartbeats[-1].pid == proc.pid
        code = await asyncio.to_thread(proc.terminate)
    assert code == 0
    await wait_for(lambda: heartbeats[-1].state == "stopped", timeout=3)


async def test_a_connection_the_server_closes_for_good_stops_the_service_with_exit_1(
    nats_url: str, uid: str
) -> None:
    """nats-py does not reconnect after some server errors; here a protocol line over nats-server's
    4 KiB limit. A service left alive without NATS would never recover: it stops, and exits 1 so that
    its supervisor starts it again."""
    settings = load_settings(Settings, {}, nats_url=[nats_url], instance=uid)
    runner = Runner(Echo, settings)
    task = asyncio.create_task(runner.run(install_signals=False))
    await wait_for(lambda: runner.state == "ready", timeout=10)
    await runner.bus.nc.publish("x" * 5000, b"")  # not a subject any builder makes: the server refuses
    assert await asyncio.wait_for(task, 20) == 1
    assert runner.bus.stats.lost_total == 1
