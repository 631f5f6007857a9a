"""What a partition already published after its snapshot: the Nats-Msg-Ids of its outputs in the output
streams, read back at start so that replaying the input publishes each missing output and nothing twice.

Every output's id is `<input stream>:<k>of<n>:<input sequence>:<index>` (`output_id`): deterministic, since
the engine is, so a replayed command produces the same ids and the ones found here are simply skipped.
Reading starts at the output-stream sequences recorded in the snapshot, so the scan covers only the
outputs of the few seconds since it was taken.
"""

from __future__ import annotations

import contextlib
import time

import nats.errors
import nats.js.errors
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from nexus import streams
from nexus.bus import MSG_ID, Bus
from nexus.logs import get_logger

log = get_logger("order_engine.recovery")


def output_id(in_stream: str, partition: int, partitions: int, in_seq: int, index: int) -> str:
    return f"{in_stream}:{partition}of{partitions}:{in_seq}:{index}"


def input_seq_of(msg_id: str) -> int:
    """The input sequence an output id belongs to."""
    return int(msg_id.rsplit(":", 2)[1])


async def published_ids(bus: Bus, partition: int, marks: dict[str, int], *, batch: int = 2_000) -> set[str]:
    """Ids of this partition's outputs stored after `marks` (stream -> last sequence the snapshot saw)."""
    found: set[str] = set()
    t0 = time.monotonic()
    for stream in (streams.ENGINE_EXEC, streams.ENGINE_TRADES):
        info = await bus.js.stream_info(stream)
        last = info.state.last_seq
        start = marks.get(stream, 0) + 1
        if start > last + 1:  # the stream is younger than the snapshot (recreated): read all of it
            start = 1
        if start > last:
            continue
        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=start,
            ack_policy=AckPolicy.NONE,
            headers_only=True,
            filter_subject=streams.engine_output_filter(stream, partition),
            inactive_threshold=30.0,
        )
        psub = await bus.js.pull_subscribe(
            streams.engine_output_filter(stream, partition), durable=None, stream=stream, config=config
        )
        try:
            left = (await psub.consumer_info()).num_pending or 0
            while left > 0:
                try:
                    msgs = await psub.fetch(min(batch, left), timeout=5.0)
                except (nats.errors.TimeoutError, TimeoutError):
                    break
                for msg in msgs:
                    msg_id = (msg.headers or {}).get(MSG_ID)
                    if msg_id:
                        found.add(msg_id)
                    left = min(left - 1, msg.metadata.num_pending)
        finally:
            with contextlib.suppress(nats.errors.Error):
                await psub.unsubscribe()
    log.info("recovery.scanned", outputs=len(found), seconds=round(time.monotonic() - t0, 3))
    return found
