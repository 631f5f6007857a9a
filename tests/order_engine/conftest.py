"""Fixtures of the order-engine tests: an engine running in this process on a nats-server of the test's
own (the order-flow streams have fixed names, so each test gets a clean server)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from nexus.bus import Bus
from nexus.client import OrderClient
from nexus.natsserver import NatsServer
from nexus.settings import load_settings
from nexus.testing import InProcessService
from order_engine.service import OrderEngine, OrderEngineSettings


class RunningEngine(InProcessService):
    @property
    def service(self) -> OrderEngine:
        assert isinstance(self.runner.service, OrderEngine)
        return self.runner.service


async def start_engine(url: str, data_dir: Path, **overrides: Any) -> RunningEngine:
    settings = load_settings(
        OrderEngineSettings,
        {},
        nats_url=[url],
        instance=overrides.pop("instance", "t"),
        data_dir=str(data_dir),
        heartbeat_interval=0.2,
        **overrides,
    )
    running = await RunningEngine.start(OrderEngine, settings, timeout=20)
    assert isinstance(running, RunningEngine)
    return running


@pytest.fixture
async def engine(fresh_nats: NatsServer, tmp_path: Path) -> AsyncIterator[RunningEngine]:
    running = await start_engine(fresh_nats.url, tmp_path / "var")
    yield running
    if not running.task.done():
        assert await running.stop() == 0


@pytest.fixture
async def alice(client_bus: Bus) -> AsyncIterator[OrderClient]:
    client = OrderClient(client_bus, "alice", timeout=10)
    await client.start()
    yield client
    await client.close()


@pytest.fixture
async def bob(client_bus: Bus) -> AsyncIterator[OrderClient]:
    client = OrderClient(client_bus, "bob", timeout=10)
    await client.start()
    yield client
    await client.close()
