"""Fixtures of the risk tests: risk and the order engine (approved input) running in this process on a
nats-server of the test's own, and a market-data publisher for marks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from nexus import subjects
from nexus.bus import Bus
from nexus.client import OrderClient
from nexus.messages import Quote, now_ns
from nexus.natsserver import NatsServer
from nexus.settings import load_settings
from nexus.testing import InProcessService, wait_for
from risk.service import Risk, RiskSettings
from tests.order_engine.conftest import RunningEngine, start_engine

LIMITS = Path(__file__).with_name("limits_test.toml")


class RunningRisk(InProcessService):
    @property
    def service(self) -> Risk:
        assert isinstance(self.runner.service, Risk)
        return self.runner.service


async def start_risk(url: str, **overrides: Any) -> RunningRisk:
    settings = load_settings(
        RiskSettings,
        {},
        nats_url=[url],
        instance=overrides.pop("instance", "t"),
        heartbeat_interval=0.2,
        config_file=str(overrides.pop("config_file", LIMITS)),
        risk_state_interval=0.1,
        **overrides,
    )
    running = await RunningRisk.start(Risk, settings)
    assert isinstance(running, RunningRisk)
    return running


async def publish_quote(bus: Bus, symbol: str, bid: str, ask: str, venue: str = "feed") -> None:
    q = Quote(
        venue=venue,
        symbol=symbol,
        venue_symbol=symbol,
        bid_px=Decimal(bid),
        bid_sz=Decimal(100),
        ask_px=Decimal(ask),
        ask_sz=Decimal(100),
        ts_event=now_ns(),
    )
    await bus.publish(q, subject=subjects.quote(venue, symbol))
    await bus.flush()


@pytest.fixture
async def engine(fresh_nats: NatsServer, tmp_path: Path) -> AsyncIterator[RunningEngine]:
    running = await start_engine(fresh_nats.url, tmp_path / "var", engine_input="approved")
    yield running
    if not running.task.done():
        assert await running.stop() == 0


@pytest.fixture
async def risk(fresh_nats: NatsServer, engine: RunningEngine, client_bus: Bus) -> AsyncIterator[RunningRisk]:
    running = await start_risk(fresh_nats.url)
    await publish_quote(client_bus, "SPY", "499.99", "500.01")
    await wait_for(lambda: "SPY" in running.service.checker.market.marks, timeout=5)
    yield running
    if not running.task.done():
        assert await running.stop() == 0


async def client(bus: Bus, account: str) -> OrderClient:
    c = OrderClient(bus, account, timeout=10)
    await c.start()
    return c
