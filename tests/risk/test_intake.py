"""Risk's intake over a real nats-server: how its batches of decisions reach the socket."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import nats
import nats.errors
import nats.js.errors
import pytest
from nats.aio.msg import Msg
from nats.js.api import PubAck, StreamConfig

from nexus.subjects import Tier
from nexus.testing import wait_for
from risk.intake import Forward, Intake

pytestmark = pytest.mark.integration


async def test_a_batch_of_decisions_is_on_the_socket_before_the_next_batch_is_decided(
    nats_url: str, uid: str
) -> None:
    """With commands queued, the intake decides batch after batch without yielding to the loop. Each
    batch's decisions must be written to the socket when they are sent, not left in nats-py's buffer until
    the flusher's turn, which would come only after the following batches were decided."""
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    intake: Intake | None = None
    try:
        await js.add_stream(StreamConfig(name=f"{uid}_IN", subjects=[f"{uid}.in.>"]))
        await js.add_stream(StreamConfig(name=f"{uid}_OK", subjects=[f"{uid}.ok.>"]))
        n = 200
        for i in range(n):
            await nc.publish(f"{uid}.in.x", b"%d" % i)
        await nc.flush()

        transport: Any = nc._transport
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
            return f"{uid}.ok.x", f"{uid}-{msg.data.decode()}", msg.data

        intake = Intake(
            js, stream=f"{uid}_IN", filter_subject=f"{uid}.in.>", tier=Tier.P1, decide=decide, batch=20
        )
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
        await wait_for(lambda: intake is not None and intake.forwarded_total == n, timeout=20)
        assert len(behind) == n
        assert behind == [0] * n
        stored = await js.stream_info(f"{uid}_OK")
        assert stored.state.messages == n
    finally:
        if intake is not None:
            await intake.stop()
        for stream in (f"{uid}_IN", f"{uid}_OK"):
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await js.delete_stream(stream)
        await nc.close()


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
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    intake: Intake | None = None
    try:
        await js.add_stream(StreamConfig(name=f"{uid}_IN", subjects=[f"{uid}.in.>"]))
        await js.add_stream(StreamConfig(name=f"{uid}_OK", subjects=[f"{uid}.ok.>"]))
        n = 100
        for i in range(n):
            await nc.publish(f"{uid}.in.x", b"%d" % i)
        await nc.flush()

        def decide(msg: Msg, tier: Tier) -> Forward:
            return f"{uid}.ok.x", f"{uid}-{msg.data.decode()}", msg.data

        intake = _Refusing(
            js, stream=f"{uid}_IN", filter_subject=f"{uid}.in.>", tier=Tier.P1, decide=decide, batch=20
        )
        await intake.start()
        await wait_for(lambda: intake is not None and intake.forwarded_total == n, timeout=20)
        assert intake.publish_failures_total >= 1
        assert intake._task is not None
        assert not intake._task.done()  # the intake goes on
        stored = await js.stream_info(f"{uid}_OK")
        assert stored.state.messages == n  # each decision once: what got through is not stored twice

        async def all_acked() -> bool:
            return (await js.consumer_info(f"{uid}_IN", "risk-p1")).num_ack_pending == 0

        await wait_for(all_acked, timeout=10, interval=0.05)
    finally:
        if intake is not None:
            await intake.stop()
        for stream in (f"{uid}_IN", f"{uid}_OK"):
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await js.delete_stream(stream)
        await nc.close()
