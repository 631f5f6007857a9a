"""Risk's intake: a durable JetStream consumer of the order-entry stream per priority tier, each with its
own connection, task and queue, deciding and forwarding in batches.

    intake = Intake(js, stream="ORD_IN", tier=Tier.P1, decide=service.decide)
    await intake.start()            # creates/binds the durable consumer `risk-p1`
    ...                             # each command: decide -> (subject, msg id, bytes) -> ORD_OK; then ack

A command is acknowledged only after what risk decided for it (the approved command, or a RiskReject in
its place) is stored in the approved stream under the command's own Nats-Msg-Id. If risk dies in between,
JetStream delivers the command again and the new decision is a duplicate the stream drops: each command
has exactly one stored decision, and the engine answers each stored decision once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, PubAck

from nexus.bus import MSG_ID
from nexus.fastpub import DirectPublish
from nexus.logs import get_logger
from nexus.resilience import Backoff
from nexus.subjects import Tier

Forward = tuple[str, str, bytes]
"""(subject on ord.ok.*, Nats-Msg-Id, payload) of one decision."""


def consumer_name(tier: Tier) -> str:
    return f"risk-{tier.value}"


class Intake:
    def __init__(
        self,
        js: JetStreamContext,
        *,
        stream: str,
        filter_subject: str,
        tier: Tier,
        decide: Callable[[Msg, Tier], Forward],
        batch: int = 500,
        max_ack_pending: int = 20_000,
        ack_wait: float = 30.0,
        publish_timeout: float = 2.0,
        pipeline: int = 4,
        first_seq: int = 1,
        on_duplicate: Callable[[Forward, PubAck], Awaitable[None]] | None = None,
    ) -> None:
        self.js = js
        self._direct = DirectPublish(js._nc)
        self.stream = stream
        self.filter_subject = filter_subject
        self.tier = tier
        self.decide = decide
        self.batch = batch
        self.max_ack_pending = max_ack_pending
        self.ack_wait = ack_wait
        self.publish_timeout = publish_timeout
        self.pipeline = pipeline
        """Batches whose decisions may wait for their store acknowledgement at once."""
        self.first_seq = first_seq
        """Where a consumer that does not exist yet starts (after what an engine reading ORD_IN took)."""
        self.on_duplicate = on_duplicate
        """Told of each decision the stream already held (made before a restart): the stored one stands,
        and what risk booked for the new one may need undoing."""
        self.log = get_logger("risk.intake").bind(tier=tier.value)
        self.queue: deque[Msg] = deque()
        self._arrived = asyncio.Event()
        self._sub: Subscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._confirming: set[asyncio.Task[None]] = set()
        self._unstored: set[asyncio.Future[None]] = set()
        """One per batch decided whose decisions are not all stored yet (waiting for a slot included)."""
        self.received_total = 0
        self.forwarded_total = 0
        self.republished_total = 0
        self.duplicates_total = 0
        self.publish_failures_total = 0
        self.ack_failures_total = 0
        self.batches_total = 0
        self.store_us_total = 0.0

    async def start(self) -> None:
        """(Re)create the durable consumer from the first command not acknowledged (its ack floor + 1):
        what a previous process took but did not finish is delivered again now, not after ack_wait."""
        name = consumer_name(self.tier)
        start_seq = self.first_seq
        try:
            info = await self.js.consumer_info(self.stream, name)
        except nats.js.errors.NotFoundError:
            pass
        else:
            start_seq = (info.ack_floor.stream_seq if info.ack_floor else 0) + 1
            await self.js.delete_consumer(self.stream, name)
        config = ConsumerConfig(
            durable_name=name,
            description=f"risk checks, {self.tier.value} commands (recreated at start from its ack floor)",
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=start_seq,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait,
            max_ack_pending=self.max_ack_pending,
            filter_subject=self.filter_subject,
        )
        self._sub = await self.js.subscribe(
            self.filter_subject,
            durable=name,
            stream=self.stream,
            config=config,
            cb=self._on_msg,
            manual_ack=True,
            pending_msgs_limit=4 * self.max_ack_pending,
        )
        self.log.info("intake.started", consumer=name, from_seq=start_seq)
        self._task = asyncio.create_task(self._run(), name=f"risk-intake-{self.tier.value}")

    async def stop(self) -> None:
        """Stop taking commands; what is queued but not decided stays unacknowledged (redelivered)."""
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._confirming:  # decisions sent: let their acknowledgements come, then ack the commands
            _, late = await asyncio.wait(self._confirming, timeout=self.publish_timeout * 2)
            for task in late:
                task.cancel()

    async def _on_msg(self, msg: Msg) -> None:
        self.queue.append(msg)
        self.received_total += 1
        self._arrived.set()

    async def _run(self) -> None:
        """Decide a batch and send its decisions at once; up to `pipeline` batches wait for their store
        acknowledgements while the next ones are decided and sent. Decisions reach the approved stream
        in the order the commands came (one connection, one sender); each batch's commands are
        acknowledged when all of its decisions are stored."""
        queue = self.queue
        slots = asyncio.Semaphore(self.pipeline)
        confirming = self._confirming
        while True:
            await self._arrived.wait()
            self._arrived.clear()
            while queue:
                n = min(len(queue), self.batch)
                batch = [queue.popleft() for _ in range(n)]
                forwards = [self.decide(msg, self.tier) for msg in batch]
                stored = asyncio.get_running_loop().create_future()
                self._unstored.add(stored)
                stored.add_done_callback(self._unstored.discard)
                await slots.acquire()
                futures = await self._send(forwards)
                # To the socket now: with more commands queued, the next batch is decided without a
                # yield, and nats-py's flusher would write this one only after it.
                self._direct.push()
                task = asyncio.create_task(
                    self._confirm(batch, forwards, futures, time.perf_counter(), stored)
                )
                confirming.add(task)
                task.add_done_callback(confirming.discard)
                task.add_done_callback(lambda _: slots.release())

    async def _send(self, forwards: list[Forward]) -> list[asyncio.Future[PubAck]]:
        """Publish each decision: one future per decision for its store acknowledgement. When the
        connection refuses one (e.g. its reconnect buffer is full), that one and the rest get a failed
        future instead of an exception, and _store sends them again after a pause, as it does when a
        store is not acknowledged in time."""
        futures: list[asyncio.Future[PubAck]] = []
        for subject, msg_id, payload in forwards:
            try:
                futures.append(await self._publish(subject, payload, msg_id))
            except nats.errors.Error as exc:
                self.log.warning("intake.send_refused", error=repr(exc), unsent=len(forwards) - len(futures))
                loop = asyncio.get_running_loop()
                while len(futures) < len(forwards):
                    refused: asyncio.Future[PubAck] = loop.create_future()
                    refused.set_exception(exc)
                    futures.append(refused)
                break
        return futures

    async def _publish(self, subject: str, payload: bytes, msg_id: str) -> asyncio.Future[PubAck]:
        return await self.js.publish_async(subject, payload, headers={MSG_ID: msg_id})

    async def flush(self, timeout: float) -> bool:
        """Wait until every decision made so far is stored (those of batches still waiting for a slot
        or being sent again included); False when some are not after `timeout` seconds. The kill
        switch stores its cancel-all behind them, so no order approved before it rests after it."""
        waiting = [f for f in self._unstored if not f.done()]
        if not waiting:
            return True
        _, late = await asyncio.wait(waiting, timeout=timeout)
        return not late

    async def _confirm(
        self,
        batch: list[Msg],
        forwards: list[Forward],
        futures: list[asyncio.Future[PubAck]],
        t0: float,
        stored: asyncio.Future[None] | None = None,
    ) -> None:
        """Wait until each decision is stored (or found a duplicate); what failed is sent again, with the
        same id, until it is stored. Then acknowledge the batch's commands."""
        try:
            await self._store(forwards, futures, t0)
        finally:
            if stored is not None and not stored.done():
                stored.set_result(None)
        for i, msg in enumerate(batch):
            try:
                await msg.ack()
            except nats.errors.Error as exc:
                # The connection is gone: the commands not acknowledged are delivered again (to this
                # process once it reconnects, or to the next), and their decisions are then duplicates.
                self.ack_failures_total += len(batch) - i
                self.log.warning("intake.ack_failed", error=repr(exc), unacknowledged=len(batch) - i)
                return
        self.forwarded_total += len(batch)
        self.batches_total += 1

    async def _store(self, forwards: list[Forward], futures: list[asyncio.Future[PubAck]], t0: float) -> None:
        backoff = Backoff(base=0.05, cap=2.0)
        pending = forwards
        while True:
            failed: list[Forward] = []
            done = await _gather_bounded(futures, self.publish_timeout)
            for fwd, result in zip(pending, done, strict=True):
                if not isinstance(result, PubAck):
                    failed.append(fwd)
                elif result.duplicate:
                    self.duplicates_total += 1
                    if self.on_duplicate is not None:
                        try:
                            await self.on_duplicate(fwd, result)
                        except Exception as exc:  # reconciling is best effort: never stop the intake
                            self.log.warning(
                                "intake.duplicate_not_reconciled", msg_id=fwd[1], error=repr(exc)
                            )
            if not failed:
                break
            self.publish_failures_total += 1
            self.republished_total += len(failed)
            self.log.warning("intake.store_failed", failed=len(failed), of=len(pending))
            await asyncio.sleep(backoff.next())
            pending = failed
            futures = await self._send(pending)
        self.store_us_total += (time.perf_counter() - t0) * 1e6


async def _gather_bounded(futures: list[asyncio.Future[PubAck]], timeout: float) -> list[object]:
    """Each future's result or exception; one still open after `timeout` counts as a TimeoutError."""
    _, still_open = await asyncio.wait(futures, timeout=timeout)
    out: list[object] = []
    for fut in futures:
        if fut in still_open:
            fut.cancel()
            out.append(nats.errors.TimeoutError())
        elif fut.exception() is not None:
            out.append(fut.exception())
        else:
            out.append(fut.result())
    return out
