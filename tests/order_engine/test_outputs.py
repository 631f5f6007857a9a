"""The engine's output publisher over a real nats-server: batches in flight together are stored in the
order they were handed in, each message once, also when a chain breaks or fences time out."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator

import pytest

from nexus import streams, subjects
from nexus.bus import MSG_ID, Bus
from nexus.natsserver import NatsServer
from nexus.resilience import Backoff
from nexus.testing import pause_process, wait_for
from order_engine.outputs import ForeignMessage, Item, OutputPublisher
from tests.order_engine.streamtools import read_stream

pytestmark = pytest.mark.integration

EXEC = streams.engine_exec_stream_name(0)
TRADES = streams.engine_trades_stream_name(0)


@pytest.fixture
async def engine_bus(fresh_nats: NatsServer) -> AsyncIterator[Bus]:
    bus = Bus([fresh_nats.url], name="test-engine")
    await bus.connect(give_up_after=5)
    # ids kept for 100 ms (the least the server takes): what keeps a message from being stored twice here
    # is its position
    await bus.ensure_stream(streams.engine_exec_stream(0, dedupe_window=0.1))
    await bus.ensure_stream(streams.engine_trades_stream(0, dedupe_window=0.1))
    yield bus
    await bus.close()


def batch(k: int, size: int = 5) -> list[Item]:
    """Batch `k`: `size` exec reports, then one trade (ids say which batch and place)."""
    items: list[Item] = [
        (EXEC, subjects.engine_exec(0, "alice", "AAPL"), f"b{k}.e{i}", b"report") for i in range(size)
    ]
    items.append((TRADES, subjects.engine_trade(0, "nexus", "AAPL"), f"b{k}.t", b"trade"))
    return items


def ids(stream: str, batches: range) -> list[str]:
    return [item[2] for k in batches for item in batch(k) if item[0] == stream]


async def stored_ids(bus: Bus, stream: str) -> list[str]:
    return [msg_id for _, msg_id, _ in await read_stream(bus.js, stream)]


async def test_batches_in_flight_together_are_stored_in_order(engine_bus: Bus) -> None:
    publisher = OutputPublisher(engine_bus, [EXEC, TRADES])
    await publisher.start()
    try:
        tasks = [asyncio.ensure_future(publisher.publish(batch(k))) for k in range(6)]
        await asyncio.sleep(0)
        # every batch was written at once, none waited for the one before to be stored
        assert len(publisher._fences) == 12
        await asyncio.wait_for(asyncio.gather(*tasks), 10)
        assert await stored_ids(engine_bus, EXEC) == ids(EXEC, range(6))
        assert await stored_ids(engine_bus, TRADES) == ids(TRADES, range(6))
        assert publisher.published_total == 36
        assert publisher.resends_total == 0
        assert [c.last_seq for c in publisher.chains.values()] == [30, 6]
        assert [c.sent_seq for c in publisher.chains.values()] == [30, 6]
    finally:
        await publisher.stop()


async def test_batches_lost_with_the_server_are_sent_again_in_order(
    fresh_nats: NatsServer, engine_bus: Bus
) -> None:
    """Four batches are written to a stalled server, which is then killed and started again: they never
    reached it. Each batch, after the one before, finds the streams shorter than it guessed and sends
    itself again; a batch handed in meanwhile waits and comes after them."""
    publisher = OutputPublisher(engine_bus, [EXEC, TRADES], ack_timeout=0.5)
    await publisher.start()
    try:
        await publisher.publish(batch(0))
        pid = fresh_nats.pid
        assert pid is not None
        await pause_process(pid)
        try:
            tasks = [asyncio.ensure_future(publisher.publish(batch(k))) for k in range(1, 5)]
            await asyncio.sleep(0.1)
        finally:
            await asyncio.to_thread(fresh_nats.kill)
        await asyncio.to_thread(fresh_nats.start)
        await wait_for(lambda: publisher.fence_failures_total > 0, timeout=10)
        tasks.append(asyncio.ensure_future(publisher.publish(batch(5))))
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
        assert await stored_ids(engine_bus, EXEC) == ids(EXEC, range(6))
        assert await stored_ids(engine_bus, TRADES) == ids(TRADES, range(6))
        assert publisher.resends_total > 0
        assert publisher.chains[EXEC].last_seq == publisher.chains[EXEC].sent_seq == 30
    finally:
        await publisher.stop()


async def test_fences_that_time_out_are_settled_in_order_without_duplicates(
    fresh_nats: NatsServer, engine_bus: Bus
) -> None:
    """The server stalls past the fences' timeout with three batches in flight, then stores them all.
    A batch may find the streams partly stored, or already beyond it (the later batches' writes were on
    the wire too); whatever it sends again lands in its place or is refused. Every message is stored
    once, in order."""
    publisher = OutputPublisher(engine_bus, [EXEC, TRADES], ack_timeout=0.3)
    await publisher.start()
    pid = fresh_nats.pid
    assert pid is not None
    try:
        await pause_process(pid)
        tasks = [asyncio.ensure_future(publisher.publish(batch(k))) for k in range(3)]
        await asyncio.sleep(0.8)
        assert [t.exception() if t.done() else None for t in tasks] == [None] * 3
        assert not any(task.done() for task in tasks)
    finally:
        os.kill(pid, signal.SIGCONT)
    await asyncio.wait_for(asyncio.gather(*tasks), 30)
    try:
        assert publisher.fence_failures_total >= 2  # the first batch's two shares, at least
        assert await stored_ids(engine_bus, EXEC) == ids(EXEC, range(3))
        assert await stored_ids(engine_bus, TRADES) == ids(TRADES, range(3))
        assert [c.last_seq for c in publisher.chains.values()] == [15, 3]
        await publisher.publish(batch(3))  # and the chain goes on from the right place
        assert await stored_ids(engine_bus, EXEC) == ids(EXEC, range(4))
    finally:
        await publisher.stop()


async def test_a_message_of_another_writer_where_ours_should_be_stops_publishing(
    engine_bus: Bus, client_bus: Bus
) -> None:
    """The stream ends one message beyond what this partition stored, and that message is not its own:
    no resend could make the stream a prefix of the outputs again, so the publisher says so and stops."""
    publisher = OutputPublisher(engine_bus, [EXEC, TRADES])
    await publisher.start()
    try:
        await publisher.publish(batch(0))
        await client_bus.js.publish(
            subjects.engine_exec(0, "mallory", "AAPL"), b"foreign", headers={MSG_ID: "foreign"}
        )
        chain = publisher.chains[EXEC]
        todo = [item for item in batch(1) if item[0] == EXEC]
        with pytest.raises(ForeignMessage, match="foreign"):
            await publisher._unsent(chain, todo, Backoff(base=0.01, cap=0.1))
    finally:
        await publisher.stop()
