"""Risk's intake over a real nats-server: how its batches of decisions reach the socket."""

from __future__ import annotations

import contextlib
import time
from typing import Any

import nats
import nats.js.errors
import pytest
from nats.aio.msg import Msg
from nats.js.api import StreamConfig

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
