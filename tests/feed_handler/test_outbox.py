"""The outbound queues: trades first and never conflated; quotes/book conflated per subject only when
the publisher is behind; a merged book update equals the updates applied one by one."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable

import msgspec
import pytest

from feed_handler.book import Book, Level
from feed_handler.counters import FeedCounters
from feed_handler.normalised import BookDelta, BookSnapshot, Quote, Trade
from feed_handler.outbox import Outbox, Publisher, merge_book
from nexus import subjects


def D(value: int) -> str:
    """A decimal as a venue writes it."""
    return str(value)


def quote(sym: str, bid: int, seq: int = 0) -> Quote:
    return Quote(
        venue="v",
        symbol=sym,
        venue_symbol=sym,
        seq=seq,
        bid_px=D(bid),
        bid_sz=D(1),
        ask_px=D(bid + 1),
        ask_sz=D(1),
    )


def trade(sym: str, n: int) -> Trade:
    return Trade(venue="v", symbol=sym, venue_symbol=sym, trade_id=str(n), price=D(100), size=D(1))


def test_short_queues_are_fifo_and_nothing_is_conflated() -> None:
    box, c = Outbox(conflate_at=100, p1_limit=1000), FeedCounters()
    for i in range(50):
        box.put(subjects.quote("v", "A"), quote("A", 100 + i), c)
    assert len(box.p1) == 50
    assert c.conflated_total == 0
    assert [box.pop_p1()[1].bid_px for _ in range(50)] == [D(100 + i) for i in range(50)]  # type: ignore[union-attr]


def test_behind_the_publisher_quotes_conflate_per_subject_latest_wins_and_trades_never() -> None:
    box, c = Outbox(conflate_at=4, p1_limit=100), FeedCounters()
    for i in range(4):
        box.put(subjects.quote("v", f"S{i}"), quote(f"S{i}", 100), c)
    for i in range(1000):  # a flood on two symbols while four updates wait
        box.put(subjects.quote("v", "A"), quote("A", 200 + i, seq=i), c)
        box.put(subjects.quote("v", "B"), quote("B", 300 + i, seq=i), c)
        box.put_trade(subjects.trade("v", "A"), trade("A", i), c)
    assert len(box.p0) == 1000  # every trade kept, in order
    assert [t.trade_id for _, t, _ in box.p0] == [str(i) for i in range(1000)]
    assert len(box.p1) == 6  # 4 waiting + one slot each for A and B
    assert c.conflated_total == box.conflated_total == 2 * 999
    latest = {msg.symbol: msg for _, msg, _ in (box.pop_p1() for _ in range(6))}
    assert latest["A"].seq == 999
    assert latest["A"].bid_px == D(1199)
    assert latest["B"].seq == 999


def test_at_the_limit_new_quotes_are_dropped_and_counted_but_book_data_is_kept() -> None:
    box, c = Outbox(conflate_at=2, p1_limit=3), FeedCounters()
    for sym in "ABC":
        box.put(subjects.quote("v", sym), quote(sym, 100), c)
    box.put(subjects.quote("v", "D"), quote("D", 100), c)
    assert c.dropped_total == 1
    assert len(box.p1) == 3
    delta = BookDelta(venue="v", symbol="D", venue_symbol="D", bids=((D(1), D(1)),))
    box.put(subjects.book("v", "D"), delta, c)
    assert len(box.p1) == 4
    assert c.dropped_total == 1


def test_a_merged_book_update_equals_the_updates_applied_in_turn() -> None:
    rng = random.Random(3)

    def levels(lo: int, hi: int) -> tuple[Level, ...]:
        return tuple((D(rng.randint(lo, hi)), D(rng.choice([0, 1, 2, 7]))) for _ in range(rng.randint(0, 4)))

    for _ in range(300):
        base = Book("X")
        base.reset([(D(p), D(5)) for p in range(90, 100)], [(D(p), D(5)) for p in range(101, 111)], 1)
        snap = BookSnapshot(
            venue="v", symbol="X", venue_symbol="X", seq=1, bids=base.bids(), asks=base.asks()
        )
        pending: BookSnapshot | BookDelta = (
            snap
            if rng.random() < 0.5
            else BookDelta(
                venue="v",
                symbol="X",
                venue_symbol="X",
                seq=2,
                first_seq=2,
                bids=levels(85, 100),
                asks=levels(101, 115),
            )
        )
        reference = Book("X")
        if isinstance(pending, BookSnapshot):
            reference.reset(pending.bids, pending.asks)
        else:
            reference.reset(base.bids(), base.asks())
            reference.apply(pending.bids, pending.asks)
        for seq in range(3, 3 + rng.randint(1, 6)):
            d = BookDelta(
                venue="v",
                symbol="X",
                venue_symbol="X",
                seq=seq,
                first_seq=seq,
                bids=levels(85, 100),
                asks=levels(101, 115),
            )
            reference.apply(d.bids, d.asks)
            pending = merge_book(pending, d)
        result = Book("X")
        if isinstance(pending, BookSnapshot):
            result.reset(pending.bids, pending.asks)
        else:
            result.reset(base.bids(), base.asks())
            result.apply(pending.bids, pending.asks)
            assert pending.first_seq in (2, 3)
        assert result.bids() == reference.bids()
        assert result.asks() == reference.asks()


class Sink:
    """The publisher's side of a connection, in memory: takes what it is given, or refuses the next
    `fail` batches as a connection would while it is down."""

    max_payload = 400

    def __init__(self, at_once: bool = False) -> None:
        self.got: list[tuple[str, bytes]] = []
        self.fail = 0
        self.at_once = at_once
        """Whether `now` takes a message (a connection that needs no wait) or declines it."""

    def __call__(self, subject: str, payload: bytes) -> Awaitable[None] | None:
        self.got.append((subject, payload))
        return None

    def now(self, subject: str, payload: bytes) -> bool:
        if self.at_once:
            self.got.append((subject, payload))
        return self.at_once

    def many(self, items: list[tuple[str, bytes]]) -> Awaitable[None] | None:
        if self.fail:
            self.fail -= 1
            self.got += items[:3]  # part of it went out before the connection broke

            async def broken() -> None:
                await asyncio.sleep(0.01)  # the connection takes a moment to fail: others run meanwhile
                raise ConnectionError("connection lost")

            return broken()
        self.got += items
        return None


async def test_a_failed_batch_goes_back_to_the_front_and_only_what_can_never_go_out_is_dropped() -> None:
    box, c, sink = Outbox(conflate_at=1000, p1_limit=2000), FeedCounters(), Sink()
    publisher = Publisher(box, sink, sink)
    big = BookSnapshot(
        venue="v", symbol="B", venue_symbol="B", bids=tuple((D(p), D(1)) for p in range(1, 40))
    )
    for i in range(100):
        box.put(subjects.quote("v", f"S{i % 5}"), quote(f"S{i % 5}", 100 + i, seq=i), c)
        if i == 10:
            box.put(subjects.book("v", "B"), big, c)  # over the sink's max payload
    sink.fail = 1
    await publisher.publish_batch()  # fails: everything back in the queue but the oversized snapshot
    assert len(box.p1) == 100
    assert c.published_total == 0
    assert publisher.errors_total == 2  # the failure, and the snapshot that can never go out
    while box.p1:
        await publisher.publish_batch()
    seqs = [int(msgspec.json.decode(data)["seq"]) for _, data in sink.got]
    assert seqs == [0, 1, 2, *range(100)]  # what went out before the failure goes out again, then in order
    assert c.published_total == publisher.published_total == 100


def test_merging_matches_levels_as_a_consumer_reading_decimals_does() -> None:
    snap = BookSnapshot(
        venue="v",
        symbol="X",
        venue_symbol="X",
        seq=1,
        bids=(("100.50", "1"), ("99", "2")),
        asks=(("101", "1"),),
    )
    delta = BookDelta(
        venue="v",
        symbol="X",
        venue_symbol="X",
        seq=2,
        bids=(("100.5", "0"), ("98", "1E-400")),
        asks=(("101.0", "3"),),
    )
    merged = merge_book(snap, delta)
    assert isinstance(merged, BookSnapshot)
    assert merged.bids == (("99", "2"), ("98", "1E-400"))  # "100.5" removed "100.50"; a tiny size is a size
    assert merged.asks == (("101.0", "3"),)
    assert merged.seq == 2
    later = BookDelta(venue="v", symbol="X", venue_symbol="X", seq=3, bids=(("99.0", "0"),))
    both = merge_book(delta, later)
    assert isinstance(both, BookDelta)
    assert both.bids == (("100.5", "0"), ("99.0", "0"), ("98", "1E-400"))  # best first, zeros kept


async def test_an_update_that_finds_the_queue_empty_goes_out_at_once_but_never_ahead_of_a_batch() -> None:
    box, c, sink = Outbox(conflate_at=1000, p1_limit=2000), FeedCounters(), Sink(at_once=True)
    publisher = Publisher(box, sink, sink)
    box.put(subjects.quote("v", "A"), quote("A", 100, seq=1), c)
    box.put_trade(subjects.trade("v", "A"), trade("A", 1), c)
    assert len(box) == 0  # nothing queued: both went out at once
    assert c.published_total == publisher.published_total == 2
    sink.at_once = False  # the connection cannot take more without a wait: queue
    for i in range(2, 6):
        box.put(subjects.quote("v", "A"), quote("A", 100, seq=i), c)
    sink.at_once = True
    sink.fail = 1  # the batch in flight fails; what comes meanwhile must queue behind it
    batch = asyncio.ensure_future(publisher.publish_batch())
    await asyncio.sleep(0.001)  # the batch is out of the queue, its publish not done
    assert not box.p1
    box.put(subjects.quote("v", "A"), quote("A", 100, seq=6), c)
    await batch
    assert len(box.p1) == 5  # the four put back at the front, then the one that came meanwhile
    while box.p1:
        await publisher.publish_batch()
    seqs = [int(msgspec.json.decode(data)["seq"]) for subject, data in sink.got if "quote" in subject]
    assert seqs == [1, 2, 3, 4, 2, 3, 4, 5, 6]  # 2-4 went out before the failure, and again after it
    assert c.published_total == 7


async def test_a_cancelled_batch_does_not_keep_later_updates_from_going_out_at_once() -> None:
    box, c, sink = Outbox(conflate_at=1000, p1_limit=2000), FeedCounters(), Sink()
    publisher = Publisher(box, sink, sink)
    box.put(subjects.quote("v", "A"), quote("A", 100, seq=1), c)  # declined by `now`: queued
    sink.fail = 1  # the batch's publish takes a while (then would fail)
    batch = asyncio.ensure_future(publisher.publish_batch())
    await asyncio.sleep(0.001)
    batch.cancel()  # the service stops its publisher mid-publish
    with pytest.raises(asyncio.CancelledError):
        await batch
    sink.at_once = True
    box.put(subjects.quote("v", "A"), quote("A", 100, seq=2), c)
    assert not box.p1  # no batch is in flight any more: it went out at once
    assert msgspec.json.decode(sink.got[-1][1])["seq"] == 2
