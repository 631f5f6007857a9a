"""Risk's intake over a real nats-server: how its batches of decisions reach the socket, and what it does
when the connection refuses a publish."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import nats
import nats.errors
import nats.js.errors
import pytest
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import PubAck, StreamConfig

from nexus.subjects import Tier
from nexus.testing import wait_for
from risk.intake import Forward, Intake

pytestmark = pytest.mark.integration


@dataclass
class Streams:
    """A command stream holding `n` commands, an empty stream for the decisions, and the intakes started on
    them; all deleted or stopped at the end of the test."""

    nc: nats.NATS
    js: JetStreamContext
    uid: str
    intakes: list[Intake] = field(default_factory=list)

    def intake(self, kind: type[Intake], decide: Callable[[Msg, Tier], Forward]) -> Intake:
        intake = kind(
            self.js,
            stream=f"{self.uid}_IN",
            filter_subject=f"{self.uid}.in.>",
            tier=Tier.P1,
            decide=decide,
            batch=20,
        )
        self.intakes.append(intake)
        return intake

    def forward(self, msg: Msg) -> Forward:
        """The decision for a command: its payload, on the decisions' stream, under an id of its own."""
        return f"{self.uid}.ok.x", f"{self.uid}-{msg.data.decode()}", msg.data

    async def stored(self) -> int:
        return (await self.js.stream_info(f"{self.uid}_OK")).state.messages


@contextlib.asynccontextmanager
async def streams(nats_url: str, uid: str, n: int) -> AsyncIterator[Streams]:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    s = Streams(nc, js, uid)
    try:
        await js.add_stream(StreamConfig(name=f"{uid}_IN", subjects=[f"{uid}.in.>"]))
        await js.add_stream(StreamConfig(name=f"{uid}_OK", subjects=[f"{uid}.ok.>"]))
        for i in range(n):
            await nc.publish(f"{uid}.in.x", b"%d" % i)
        await nc.flush()
        yield s
    finally:
        for intake in s.intakes:
            await intake.stop()
        for stream in (f"{uid}_IN", f"{uid}_OK"):
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await js.delete_stream(stream)
        await nc.close()


async def test_a_batch_of_decisions_is_on_the_socket_before_the_next_batch_is_decided(
    nats_url: str, uid: str
) -> None:
    """With commands queued, the intake decides batch after batch without yielding to the loop. Each
    batch's decisions must be written to the socket when they are sent, not left in nats-py's buffer until
    the flusher's turn, which would come only after the following batches were decided."""
    n = 200
    async with streams(nats_url, uid, n) as s:
        transport: Any = s.nc._transport
        writelines = transport.writelines
        written = sent = 0
        behind: list[int] = []
        """Decisions sent but not yet written, at each decision."""

        def counting_writelines(chunks: list[bytes]) -> None:
            nonlocal written
            written += sum(chunk.count(f"HPUB {uid}.ok.".encode()) for chunk in chunks)
            writelines(chunks)

        def decide(msg: Msg, tier: Tier) -> Forward:
            behind.append(sent - written)
            return s.forward(msg)

        intake = s.intake(Intake, decide)
        send = intake._send

        async def counting_send(forwards: list[Forward]) -> list[Any]:
            nonlocal sent
            futures = await send(forwards)
            sent += len(forwards)
            return futures

        transport.writelines = counting_writelines
        intake._send = counting_send  # type: ignore[method-assign]
        await intake.start()
        time.sleep(0.5)  # hold the loop: the deliveries pile up, and the batches are decided back to back
        await wait_for(lambda: intake.forwarded_total == n, timeout=20)
        assert len(behind) == n
        assert behind == [0] * n
        assert await s.stored() == n


class _Refusing(Intake):
    """An intake whose connection refuses the `refuse`-th publish, as nats-py does when its reconnect
    buffer is full (OutboundBufferLimitError); every other publish goes to the real server."""

    refuse = 30
    publishes = 0

    async def _publish(self, subject: str, payload: bytes, msg_id: str) -> asyncio.Future[PubAck]:
        self.publishes += 1
        if self.publishes == self.refuse:
            raise nats.errors.OutboundBufferLimitError
        return await super()._publish(subject, payload, msg_id)


async def test_a_publish_the_connection_refuses_is_sent_again_and_the_intake_goes_on(
    nats_url: str, uid: str
) -> None:
    n = 100
    async with streams(nats_url, uid, n) as s:
        intake = s.intake(_Refusing, lambda msg, tier: s.forward(msg))
        await intake.start()
        await wait_for(lambda: intake.forwarded_total == n, timeout=20)
        assert intake.publish_failures_total >= 1
        assert intake._task is not None
        assert not intake._task.done()  # the intake goes on
        assert await s.stored() == n  # each decision once: what got through is not stored twice

        async def all_acked() -> bool:
            return (await s.js.consumer_info(f"{uid}_IN", "risk-p1")).num_ack_pending == 0

        await wait_for(all_acked, timeout=10, interval=0.05)


class _ClosingAfterStore(Intake):
    """An intake whose connection closes once its first batch's decisions are stored, before the
    commands are acknowledged: the moment a risk process loses its server between the two."""

    closed = False

    async def _store(self, forwards: list[Forward], futures: list[asyncio.Future[PubAck]], t0: float) -> None:
        await super()._store(forwards, futures, t0)
        if not self.closed:
            self.closed = True
            await self.js._nc.close()


async def test_acks_lost_with_the_connection_are_counted_and_the_commands_decided_again_once(
    nats_url: str, uid: str
) -> None:
    """The acknowledgements of a stored batch fail because the connection closed: the intake counts
    them instead of failing its task, and the commands come again to the next intake, whose decisions
    are duplicates the stream drops. Every command ends acknowledged, with one decision stored."""
    n = 100
    failed: list[str] = []
    """Confirm tasks that ended with an exception nobody retrieved (nats-py's own futures of the closed
    connection may end so too; they are not the intake's)."""

    def on_unretrieved(_: asyncio.AbstractEventLoop, ctx: dict[str, Any]) -> None:
        task = ctx.get("future")
        if isinstance(task, asyncio.Task) and "_confirm" in task.get_coro().__qualname__:
            failed.append(repr(ctx.get("exception")))

    loop = asyncio.get_running_loop()
    loop.set_exception_handler(on_unretrieved)
    try:
        async with streams(nats_url, uid, n) as s:
            own = await nats.connect(nats_url)
            try:
                failing = _ClosingAfterStore(
                    own.jetstream(),
                    stream=f"{uid}_IN",
                    filter_subject=f"{uid}.in.>",
                    tier=Tier.P1,
                    decide=lambda msg, tier: s.forward(msg),
                    batch=20,
                )
                await failing.start()
                await wait_for(lambda: failing.ack_failures_total > 0, timeout=20)
                await failing.stop()
            finally:
                await own.close()
            assert failing.forwarded_total < n
            assert await s.stored() >= failing.ack_failures_total

            again = s.intake(Intake, lambda msg, tier: s.forward(msg))
            await again.start()
            await wait_for(lambda: again.forwarded_total == n - failing.forwarded_total, timeout=20)
            assert again.duplicates_total >= failing.ack_failures_total
            assert await s.stored() == n

            async def all_acked() -> bool:
                return (await s.js.consumer_info(f"{uid}_IN", "risk-p1")).num_ack_pending == 0

            await wait_for(all_acked, timeout=10, interval=0.05)
        gc.collect()  # a task that failed with nobody awaiting it is reported when it is collected
    finally:
        loop.set_exception_handler(None)
    assert failed == []
