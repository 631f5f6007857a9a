"""The outbound queues between adapters and NATS, and the task that drains them, trades first.

    p0  trades            FIFO; never dropped, never conflated. Above `p0_limit` the adapters' intake
                          pauses (backpressure to the venue socket) until it drains below half.
    p2  feed status       FIFO, small; published right after trades so a failover is seen at once.
    p1  quotes and book   FIFO while short. Once `conflate_at` updates are pending (the publisher is
                          behind), a new update for a subject that already has one pending replaces it
                          (quote) or is merged into it (book: deltas merge level by level, a delta is
                          applied to a pending snapshot), and `conflated_total` of its feed counts it.
                          At `p1_limit` pending, a quote with nothing to merge into is dropped
                          (`dropped_total`); book data is never dropped (a lost delta would corrupt every
                          consumer's book), and conflation bounds it to one pending update per subject.

A message that finds its queue empty (and, for p1, no batch of the publisher in flight) is published at
once, inside `put`, when its connection takes it without a wait (`Publish.now`: connected, and its buffer
below nats-py's limit). The queues fill only when the publisher is behind: the server or the socket is
pushing back, or a batch is being published. The publisher sets `ts_pub` (in place: a queued message
belongs to the outbox), encodes and publishes the queues, trades and quotes in two tasks: a trade waits
for at most one batch of quotes for the CPU, and never for a quote publish that the NATS server is
pushing back on. Trades go out on a dedicated NATS connection (Service.dedicated_p0), so they never queue
behind quote bytes in a socket buffer either (bench/bench_feed_flood.py measures both).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable
from decimal import Decimal
from typing import Any, Protocol

import msgspec

from feed_handler.counters import FeedCounters
from feed_handler.normalised import BookDelta, BookMsg, BookSnapshot, Level, MarketDataMsg, Quote, Trade
from nexus.logs import get_logger
from nexus.messages import FeedStatus


class Publish(Protocol):
    """A connection's publish (nexus.fastpub.DirectPublish): each call returns None when done, or an
    awaitable the caller must await."""

    def __call__(self, subject: str, payload: bytes) -> Awaitable[None] | None: ...

    def many(self, items: list[tuple[str, bytes]]) -> Awaitable[None] | None: ...

    def now(self, subject: str, payload: bytes) -> bool:
        """Publish at once if nothing would have to be awaited; False (nothing done) otherwise."""

    @property
    def max_payload(self) -> int:
        """The largest payload the server takes."""


_encode = msgspec.json.Encoder().encode

P1_BATCH = 64
"""p1 messages published between two looks at the trade queue."""


def merge_book(old: BookMsg, new: BookMsg) -> BookMsg:
    """One book update equivalent to applying `old` then `new` (same subject, `new` is later). Levels are
    matched by exact Decimal value, as a consumer reading them as Decimals would match them."""
    if isinstance(new, BookSnapshot):
        return new
    if isinstance(old, BookSnapshot):
        return msgspec.structs.replace(
            old,
            bids=_merge_levels(old.bids, new.bids, descending=True, keep_zeros=False),
            asks=_merge_levels(old.asks, new.asks, descending=False, keep_zeros=False),
            seq=new.seq,
            ts_event=new.ts_event,
            ts_recv=new.ts_recv,
        )
    return msgspec.structs.replace(
        new,
        bids=_merge_levels(old.bids, new.bids, descending=True, keep_zeros=True),
        asks=_merge_levels(old.asks, new.asks, descending=False, keep_zeros=True),
        first_seq=old.first_seq or new.first_seq,
    )


def _merge_levels(
    old: tuple[Level, ...], new: tuple[Level, ...], *, descending: bool, keep_zeros: bool
) -> tuple[Level, ...]:
    """`old`'s levels with `new`'s over them, by price (as an exact Decimal: "1.50" and "1.5" are one
    level), best first. Two deltas keep a size of 0 (it removes the level downstream); a snapshot with a
    delta applied does not."""
    merged = {Decimal(price): (price, size) for price, size in (*old, *new)}
    best_first = sorted(merged, reverse=descending)
    return tuple(merged[p] for p in best_first if keep_zeros or Decimal(merged[p][1]))


class Outbox:
    """Queues by priority with per-subject conflation (pure data structure; the Publisher drains it)."""

    def __init__(self, p0_limit: int = 100_000, p1_limit: int = 65_536, conflate_at: int = 1024) -> None:
        if not 0 < conflate_at <= p1_limit:
            raise ValueError("need 0 < conflate_at <= p1_limit")
        self.p0_limit = p0_limit
        self.p1_limit = p1_limit
        self.conflate_at = conflate_at
        self.p0: deque[tuple[str, Trade, FeedCounters]] = deque()
        self.p2: deque[tuple[str, FeedStatus]] = deque()
        self.p1: OrderedDict[int, list[Any]] = OrderedDict()
        """[subject, message, its feed's counters] by arrival; a conflated update replaces the message."""
        self._tail: dict[str, int] = {}
        self._next_key = 0
        self.wakeup_p0 = asyncio.Event()
        self.wakeup_p1 = asyncio.Event()
        self.room = asyncio.Event()
        self.room.set()
        self.conflated_total = 0
        self.dropped_total = 0
        self.direct: Publisher | None = None
        """The publisher, once it drains this outbox: a message that finds its queue empty and the
        publisher idle is handed to it at once instead of being queued."""

    def __len__(self) -> int:
        return len(self.p0) + len(self.p1) + len(self.p2)

    @property
    def congested(self) -> bool:
        """Trades are backing up: intake should pause (trades are never dropped)."""
        return len(self.p0) >= self.p0_limit

    @property
    def behind(self) -> bool:
        """The publisher is behind: a source that can wait (replay, synthetic) should."""
        return len(self.p0) >= self.p0_limit or len(self.p1) >= self.conflate_at // 2

    def put_trade(self, subject: str, msg: Trade, counters: FeedCounters) -> None:
        if not self.p0 and self.direct is not None and self.direct.now_p0(subject, msg, counters):
            return
        self.p0.append((subject, msg, counters))
        if not self.wakeup_p0.is_set():
            self.wakeup_p0.set()

    def put_status(self, subject: str, msg: FeedStatus) -> None:
        self.p2.append((subject, msg))
        if not self.wakeup_p0.is_set():
            self.wakeup_p0.set()

    def put(self, subject: str, msg: Quote | BookSnapshot | BookDelta, counters: FeedCounters) -> None:
        """Queue a p1 update; conflated per subject when the queue is long (see module doc)."""
        pending = self.p1
        if not pending and self.direct is not None and self.direct.now_p1(subject, msg, counters):
            return
        if len(pending) >= self.conflate_at:
            key = self._tail.get(subject)
            if key is not None:
                entry = pending.get(key)
                if entry is not None:
                    old = entry[1]
                    entry[1] = msg if isinstance(msg, Quote) else merge_book(old, msg)
                    entry[2] = counters
                    counters.conflated_total += 1
                    self.conflated_total += 1
                    return
            if len(pending) >= self.p1_limit and isinstance(msg, Quote):
                counters.dropped_total += 1
                self.dropped_total += 1
                return
        key = self._next_key
        self._next_key = key + 1
        pending[key] = [subject, msg, counters]
        self._tail[subject] = key
        if len(pending) == 1:  # the publisher waits only on an empty queue: wake it
            self.wakeup_p1.set()

    def requeue(self, taken: list[tuple[int, list[Any]]]) -> None:
        """Put popped p1 entries back at the front of the queue, in their order (a publish failed)."""
        pending = self.p1
        for key, entry in reversed(taken):
            pending[key] = entry
            pending.move_to_end(key, last=False)
        if taken:
            self.wakeup_p1.set()

    def pop_p1(self) -> tuple[str, MarketDataMsg, FeedCounters]:
        _, entry = self.p1.popitem(last=False)
        subject, msg, counters = entry
        return subject, msg, counters

    def update_room(self) -> None:
        """Called by the publisher after a batch: let waiting sources go on once the queues are short."""
        if (
            not self.room.is_set()
            and len(self.p0) < self.p0_limit // 2
            and len(self.p1) < self.conflate_at // 4
        ):
            self.room.set()

    async def drained(self) -> None:
        """Wait until every queue is empty (the publisher signals `room` after each round)."""
        while len(self):
            self.room.clear()
            await self.room.wait()

    async def wait_room(self) -> None:
        """Wait until the publisher has caught up (used by sources that can wait)."""
        while self.behind:
            self.room.clear()
            await self.room.wait()


class Publisher:
    """Drains an Outbox onto NATS with two tasks: an urgent one (all trades, then status) on the p0
    connection, and a normal one (p1 in batches of P1_BATCH, yielding between batches) on the main
    connection. A p1 publish that blocks (the server pushing back on a connection whose subscribers are
    slow) never holds up a trade: trades have their own task and, with dedicated_p0, their own socket."""

    def __init__(self, outbox: Outbox, p0: Publish, p1: Publish, p2: Publish | None = None) -> None:
        """`p0`, `p1`, `p2`: the publish of the connection each tier goes out on (p2 defaults to p0: the
        urgent task must never wait on the connection that carries quotes)."""
        self.outbox = outbox
        self._p0 = p0
        self._p1 = p1
        self._p2 = p2 or p0
        self._p1_in_flight = False
        """A batch was taken from p1 and is not yet out: later updates must queue behind it."""
        outbox.direct = self
        self.published_total = 0
        self.errors_total = 0
        self.log = get_logger("feed_handler.publisher")
        self._error_logged = 0.0

    def now_p0(self, subject: str, trade: Trade, counters: FeedCounters) -> bool:
        """Publish a trade at once if its connection takes it without a wait (p0 is empty)."""
        trade.ts_pub = time.time_ns()
        if not self._p0.now(subject, _encode(trade)):
            return False
        counters.published_total += 1
        self.published_total += 1
        return True

    def now_p1(self, subject: str, msg: MarketDataMsg, counters: FeedCounters) -> bool:
        """Publish a quote or book update at once if p1 is empty, no batch is in flight and its
        connection takes it without a wait: the message then skips the queue and the task."""
        if self._p1_in_flight:
            return False
        msg.ts_pub = time.time_ns()
        if not self._p1.now(subject, _encode(msg)):
            return False
        counters.published_total += 1
        self.published_total += 1
        return True

    async def run(self) -> None:
        await asyncio.gather(self._urgent(), self._normal())

    async def _urgent(self) -> None:
        box = self.outbox
        while True:
            if not box.p0 and not box.p2:
                box.update_room()
                box.wakeup_p0.clear()
                await box.wakeup_p0.wait()
            await self.publish_urgent()

    async def _normal(self) -> None:
        box = self.outbox
        while True:
            if not box.p1:
                box.update_room()
                box.wakeup_p1.clear()
                await box.wakeup_p1.wait()
            await self.publish_batch()
            await asyncio.sleep(0)  # adapters and the urgent task run between batches

    async def publish_urgent(self) -> None:
        """Every pending trade, then every pending status."""
        box = self.outbox
        pub0 = self._p0
        encode = _encode
        p0, p2 = box.p0, box.p2
        try:
            while p0:
                subject, trade, counters = p0[0]
                trade.ts_pub = time.time_ns()
                pending = pub0(subject, encode(trade))
                if pending is not None:
                    await pending
                p0.popleft()  # only once published: a trade is never lost to a failed publish
                counters.published_total += 1
                self.published_total += 1
            while p2:
                subject, status = p2[0]
                pending = self._p2(subject, encode(status))
                if pending is not None:
                    await pending
                p2.popleft()
        except Exception as exc:  # NATS gone for longer than its buffer: count, log, retry shortly
            await self._failed(exc)

    async def publish_batch(self) -> None:
        """Up to P1_BATCH pending quote/book updates, oldest first, in one append to the connection.

        When the publish fails, the batch goes back to the front of the queue and is tried again: a book
        update is never lost. Part of it may have gone out before the failure and goes out twice; a
        consumer is unharmed, since every level carries its absolute size. An update larger than the
        server's max payload can never go out: it is counted as an error and dropped."""
        box = self.outbox
        encode = _encode
        p1 = box.p1
        pop = p1.popitem
        clock = time.time_ns
        taken: list[tuple[int, list[Any]]] = []
        batch: list[tuple[str, bytes]] = []
        self._p1_in_flight = True
        try:
            while p1 and len(batch) < P1_BATCH:
                item = pop(last=False)
                taken.append(item)
                subject, msg, counters = item[1]
                msg.ts_pub = clock()
                batch.append((subject, encode(msg)))
                counters.published_total += 1
            try:
                pending = self._p1.many(batch)
                if pending is not None:
                    await pending
            except Exception as exc:
                limit = self._p1.max_payload
                again = [item for item, (_, data) in zip(taken, batch, strict=True) if len(data) <= limit]
                self.errors_total += len(taken) - len(again)  # too large ever to be published: dropped
                for _, entry in taken:
                    entry[2].published_total -= 1
                box.requeue(again)
                await self._failed(exc)
                return
        finally:  # also when cancelled: later updates may go out at once again
            self._p1_in_flight = False
        self.published_total += len(batch)
        box.update_room()

    async def _failed(self, exc: Exception) -> None:
        self.errors_total += 1
        now = asyncio.get_running_loop().time()
        if now - self._error_logged > 1.0:
            self._error_logged = now
            self.log.warning("feed.publish_failed", error=repr(exc), total=self.errors_total)
        await asyncio.sleep(0.05)
