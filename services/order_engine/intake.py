"""The engine's input: a JetStream push consumer read strictly in stream order, acked in batches.

    intake = Intake(bus, mode="direct", partition=0, partitions=1)
    await intake.start(from_seq)                  # (re)creates the durable consumer at from_seq
    batch = await intake.next_batch(500)          # raw messages, in stream order, never a gap
    await intake.ack(batch[-1])                   # acks everything up to it (AckPolicy.ALL)

Order is everything for a deterministic engine. Each delivery carries the consumer's delivery sequence;
if one is missing (a message lost on a reconnect, delivered again only after ack_wait), the rest would
arrive out of order. So on a gap, or after a reconnect, the intake throws away what it holds and recreates
the consumer from the first sequence the engine has not processed; what was already processed is skipped
by sequence.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import nats.js.errors
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from nexus import streams
from nexus.bus import Bus
from nexus.logs import get_logger
from nexus.streams import EngineInput


@dataclass(frozen=True, slots=True)
class Delivery:
    """Where a message sits in the stream and in the consumer (parsed from its ack subject)."""

    stream_seq: int
    consumer_seq: int
    pending: int


def delivery(reply: str) -> Delivery:
    """Parse `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>` (or the 12-token form
    with domain and account hash, which adds a trailing token)."""
    tokens = reply.split(".")
    base = 4 if len(tokens) == 9 else 6
    return Delivery(int(tokens[base + 1]), int(tokens[base + 2]), int(tokens[base + 4]))


class Intake:
    def __init__(
        self,
        bus: Bus,
        mode: EngineInput,
        partition: int,
        partitions: int,
        *,
        max_ack_pending: int = 20_000,
        resume_from: Callable[[], int] | None = None,
    ) -> None:
        self.bus = bus
        self.mode = mode
        self.partition = partition
        self.partitions = partitions
        self.stream = streams.engine_input_stream(mode, partitions).name or ""
        self.consumer = streams.engine_consumer_name(mode, partition, partitions)
        self.max_ack_pending = max_ack_pending
        self.resume_from = resume_from
        self.log = get_logger("order_engine.intake").bind(consumer=self.consumer)
        self.queue: deque[Msg] = deque()
        self._arrived = asyncio.Event()
        self._sub: Subscription | None = None
        self._last_cseq = 0
        self._reconnects = bus.stats.reconnects_total
        self.pending = 0
        """Messages the server still holds for this consumer (from the last delivery)."""
        self.restarts_total = 0
        self.gaps_total = 0
        self.received_total = 0
        self.initial_pending = 0

    @property
    def depth(self) -> int:
        """Commands waiting: held here plus still on the server."""
        return len(self.queue) + self.pending

    async def start(self, from_seq: int) -> None:
        """(Re)create the durable consumer so that delivery starts at stream sequence `from_seq`."""
        await self.stop()
        js = self.bus.js
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await js.delete_consumer(self.stream, self.consumer)
        inbox = self.bus.nc.new_inbox()
        self._sub = await self.bus.subscribe_raw(
            inbox, self._on_msg, pending_msgs_limit=self.max_ack_pending * 2
        )
        config = streams.engine_consumer(
            self.mode,
            self.partition,
            self.partitions,
            start_seq=from_seq,
            deliver_subject=inbox,
            max_ack_pending=self.max_ack_pending,
        )
        info = await js.add_consumer(self.stream, config)
        self.initial_pending = self.pending = info.num_pending or 0
        self._last_cseq = 0
        self._reconnects = self.bus.stats.reconnects_total
        self.log.info("intake.started", from_seq=from_seq, pending=self.pending)

    async def stop(self) -> None:
        sub, self._sub = self._sub, None
        self.queue.clear()
        if sub is not None:
            try:
                await sub.unsubscribe()
            except nats.errors.Error as exc:
                self.log.debug("intake.unsubscribe_failed", error=repr(exc))

    def wake(self) -> None:
        """Let a waiting `next_batch` return now (on stop)."""
        self._arrived.set()

    async def _on_msg(self, msg: Msg) -> None:
        self.queue.append(msg)
        self._arrived.set()

    async def next_batch(self, max_n: int, timeout: float = 1.0) -> list[tuple[Delivery, Msg]]:
        """Up to `max_n` messages in stream order (an empty list after `timeout` or a restart)."""
        if not self.queue:
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), timeout)
            except TimeoutError:
                await self._restart_after_reconnect()
                return []
        if await self._restart_after_reconnect():
            return []
        batch: list[tuple[Delivery, Msg]] = []
        queue = self.queue
        while queue and len(batch) < max_n:
            msg = queue.popleft()
            if not msg.reply:  # a status message (e.g. a heartbeat); there is nothing to process
                continue
            d = delivery(msg.reply)
            if d.consumer_seq != self._last_cseq + 1 and d.consumer_seq > self._last_cseq:
                self.gaps_total += 1
                self.log.warning("intake.gap", expected=self._last_cseq + 1, got=d.consumer_seq)
                await self._restart()
                return []
            if d.consumer_seq <= self._last_cseq:
                continue  # an old delivery of a consumer we have since recreated
            self._last_cseq = d.consumer_seq
            self.pending = d.pending
            batch.append((d, msg))
        self.received_total += len(batch)
        return batch

    async def ack(self, msg: Msg) -> None:
        """Acknowledge `msg` and every message delivered before it."""
        await self.bus.nc.publish(msg.reply, b"+ACK")

    async def _restart_after_reconnect(self) -> bool:
        if self.bus.stats.reconnects_total == self._reconnects:
            return False
        self.log.warning("intake.reconnected")
        await self._restart()
        return True

    async def _restart(self) -> None:
        self.restarts_total += 1
        from_seq = self.resume_from() if self.resume_from is not None else 1
        await self.start(from_seq)
