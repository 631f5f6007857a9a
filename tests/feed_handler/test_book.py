"""The L2 book against a naive reference (differential), and its crossing check. Levels are decimal
strings as a venue writes them; the reference keys them by exact Decimal value."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from feed_handler.book import Book, Level, values
from feed_handler.errors import CrossedBook


def L(price: object, size: object) -> Level:
    return (str(price), str(size))


def by_value(ref: dict[Decimal, Level], descending: bool) -> tuple[Level, ...]:
    return tuple(ref[p] for p in sorted(ref, reverse=descending))


def test_book_matches_a_naive_dict_book_over_a_seeded_random_stream() -> None:
    rng = random.Random(7)
    book = Book("X")
    ref_bids: dict[Decimal, Level] = {}
    ref_asks: dict[Decimal, Level] = {}
    for step in range(5000):
        # prices of different lengths and spellings ("9.5" < "10", "95.0" == "95.00"), so a book
        # ordered by the strings, or keyed by them, would be found out
        bids = [
            L(rng.choice(["9.5", "95.0", "95.00", "99.99", "100", "8"]), rng.choice([0, 0, 1, 2]))
            for _ in range(3)
        ]
        bids += [
            L(Decimal(rng.randint(900, 999)) / 10, rng.choice(["0", "0.00", "1.5", "2"])) for _ in range(2)
        ]
        asks = [L(Decimal(rng.randint(1001, 1100)) / 10, rng.choice([0, 0, 1, 3])) for _ in range(3)]
        book.apply(bids, asks, step + 1)
        for ref, levels in ((ref_bids, bids), (ref_asks, asks)):
            for p, s in levels:
                if Decimal(s):
                    ref[Decimal(p)] = (p, s)
                else:
                    ref.pop(Decimal(p), None)
        assert book.bids() == by_value(ref_bids, descending=True)
        assert book.asks() == by_value(ref_asks, descending=False)
        best_bid = ref_bids[max(ref_bids)] if ref_bids else None
        assert book.best_bid == best_bid
        assert not book.crossed
    assert book.seq == 5000
    assert book.bids(3) == book.bids()[:3]
    assert book.asks(2) == book.asks()[:2]


def test_a_crossing_update_is_detected_and_reset_replaces_the_book() -> None:
    book = Book("BTC-USD")
    book.reset([L(100, 1)], [L(101, 1)], 10)
    book.check()
    book.apply([L("101.0", 2)], [])  # locked: bid == ask, spelt differently
    assert book.crossed
    with pytest.raises(CrossedBook) as info:
        book.check()
    assert info.value.reason == "crossed_book"
    assert info.value.symbol == "BTC-USD"
    book.reset([L(99, 1)], [L(100, 4)], 11)
    assert not book.crossed
    assert len(book) == 2
    assert book.seq == 11
    assert book.best_ask == ("100", "4")


def test_reset_gives_the_book_of_applying_the_snapshot_to_an_empty_book() -> None:
    """A snapshot is loaded in one sort; the result must be what applying its levels one by one gives, in
    any order, with repeated prices (the last size wins) and zero sizes (no level)."""
    rng = random.Random(11)
    for _ in range(200):
        bids = [L(rng.randint(900, 960), rng.choice([0, 1, 2, 5])) for _ in range(40)]
        asks = [L(rng.randint(1001, 1060), rng.choice([0, 1, 3])) for _ in range(40)]
        loaded, applied = Book("X"), Book("X")
        loaded.apply([L(950, 9)], [L(1100, 9)], 3)  # replaced by the reset
        loaded.reset(bids, asks, 42)
        applied.apply(bids, asks, 42)
        assert loaded.bids() == applied.bids()
        assert loaded.asks() == applied.asks()
        assert len(loaded) == len(applied)
        assert loaded.seq == 42
        loaded.apply([L(930, 7)], [L(1030, 0)])  # still a working book
        applied.apply([L(930, 7)], [L(1030, 0)])
        assert loaded.bids() == applied.bids()
        assert loaded.asks() == applied.asks()


def test_the_values_a_parser_decoded_give_the_same_book_as_the_strings() -> None:
    """`apply_valued`/`reset_valued` take the values a parser decoded with the strings (the hot path);
    they must build the book `apply`/`reset` build from the strings alone."""
    rng = random.Random(5)
    fast, slow = Book("X"), Book("X")
    snap_bids = [L(Decimal(p) / 100, rng.randint(1, 9)) for p in range(9000, 9900, 7)]
    snap_asks = [L(Decimal(p) / 100, rng.randint(1, 9)) for p in range(10100, 11000, 7)]
    fast.reset_valued(snap_bids, values(snap_bids), snap_asks, values(snap_asks), 1)
    slow.reset(snap_bids, snap_asks, 1)
    for step in range(2000):
        bids = [L(Decimal(rng.randint(9000, 9999)) / 100, rng.choice([0, 1, 4])) for _ in range(3)]
        asks = [L(Decimal(rng.randint(10001, 11000)) / 100, rng.choice([0, 2])) for _ in range(3)]
        fast.apply_valued(bids, values(bids), asks, values(asks), step + 2)
        slow.apply(bids, asks, step + 2)
        assert fast.bids(5) == slow.bids(5)
        assert fast.asks(5) == slow.asks(5)
    assert fast.bids() == slow.bids()
    assert fast.asks() == slow.asks()


def test_a_snapshot_sorted_as_venues_send_it_loads_as_any_other() -> None:
    """Levels in order (best first or worst first), distinct and non-empty, are taken as they come; the
    book must be the one a level-by-level build gives."""
    rng = random.Random(13)
    for _ in range(100):
        bid_prices = sorted({Decimal(rng.randint(9000, 9999)) / 10 for _ in range(30)}, reverse=True)
        ask_prices = sorted({Decimal(rng.randint(10001, 11000)) / 10 for _ in range(30)})
        bids = [L(p, rng.randint(1, 9)) for p in bid_prices]
        asks = [L(p, rng.randint(1, 9)) for p in ask_prices]
        best_bid, best_ask = bids[0], asks[0]
        if rng.random() < 0.5:  # some venues send worst first
            bids.reverse()
            asks.reverse()
        if rng.random() < 0.3:
            bids.append(L(bid_prices[-1] - 1, 0))  # an empty level: not a venue's snapshot any more
        loaded, applied = Book("X"), Book("X")
        loaded.reset(bids, asks, 5)
        applied.apply(bids, asks, 5)
        assert loaded.bids() == applied.bids()
        assert loaded.asks() == applied.asks()
        assert loaded.best_bid == best_bid
        assert loaded.best_ask == best_ask
