"""Fixtures of the monitor tests: one real monitor process per module and a log of the alerts it publishes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from nexus import subjects
from nexus.bus import Bus
from nexus.messages import Alert
from nexus.natsserver import NatsServer
from nexus.testing import ServiceProcess
from tests.monitor.helpers import AlertLog


@pytest.fixture
async def alert_log(bus: Bus) -> AlertLog:
    log = AlertLog()
    await bus.subscribe(subjects.alert("*"), Alert, log.on_alert)
    await bus.flush()
    return log


@pytest.fixture(scope="module")
def monitor(nats_server: NatsServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """A real `python -m monitor` on the session's nats-server (tests tell their data apart by uid)."""
    log = tmp_path_factory.mktemp("monitor") / "monitor.log"
    proc = ServiceProcess(
        "monitor", nats_url=nats_server.url, instance="m" + uuid.uuid4().hex[:8], log_path=log
    )
    with proc:
        proc.wait_ready()
        yield proc
        assert proc.terminate() == 0, proc.log_tail()
