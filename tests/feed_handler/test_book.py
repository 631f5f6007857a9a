"""The L2 book against a naive reference (differential), and its crossing check."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from feed_handler.book import Book
from feed_handler.errors import CrossedBook


def test_book_matches_a_naive_dict_book_over_a_seeded_random_stream() -> None:
    rng = random.Random(7)
    book = Book("X")
    ref_bids: dict[Decimal, Decimal] = {}
    ref_asks: dict[Decimal, Decimal] = {}
    for step in range(5000):
        bids = [(Decimal(rng.randint(900, 999)), Decimal(rng.choice([0, 0, 1, 2, 5]))) for _ in range(3)]
        asks = [(Decimal(rng.randint(1001, 1100)), Decimal(rng.choice([0, 0, 1, 3]))) for _ in range(3)]
        book.apply(bids, asks, step + 1)
        for ref, levels in ((ref_bids, bids), (ref_asks, asks)):
            for p, s in levels:
                if s:
                    ref[p] = s
                else:
                    ref.pop(p, None)
        assert book.bids() == tuple(sorted(ref_bids.items(), reverse=True))
        assert book.asks() == tuple(sorted(ref_asks.items()))
        best_bid = max(ref_bids) if ref_bids else None
        assert (book.best_bid[0] if book.best_bid else None) == best_bid
        assert not book.crossed
    assert book.seq == 5000
    assert book.bids(3) == book.bids()[:3]
    assert book.asks(2) == book.asks()[:2]


def test_a_crossing_update_is_detected_and_reset_replaces_the_book() -> None:
    book = Book("BTC-USD")
    book.reset([(Decimal(100), Decimal(1))], [(Decimal(101), Decimal(1))], 10)
    book.check()
    book.apply([(Decimal(101), Decimal(2))], [])  # locked: bid == ask
    assert book.crossed
    with pytest.raises(CrossedBook) as info:
        book.check()
    assert info.value.reason == "crossed_book"
    assert info.value.symbol == "BTC-USD"
    book.reset([(Decimal(99), Decimal(1))], [(Decimal(100), Decimal(4))], 11)
    assert not book.crossed
    assert len(book) == 2
    assert book.seq == 11
    assert book.best_ask == (Decimal(100), Decimal(4))


def test_reset_gives_the_book_of_applying_the_snapshot_to_an_empty_book() -> None:
    """A snapshot is loaded in one sort; the result must be what applying its levels one by one gives, in
    any order, with repeated prices (the last size wins) and zero sizes (no level)."""
    rng = random.Random(11)
    for _ in range(200):
        bids = [(Decimal(rng.randint(900, 960)), Decimal(rng.choice([0, 1, 2, 5]))) for _ in range(40)]
        asks = [(Decimal(rng.randint(1001, 1060)), Decimal(rng.choice([0, 1, 3]))) for _ in range(40)]
        loaded, applied = Book("X"), Book("X")
        loaded.apply([(Decimal(950), Decimal(9))], [(Decimal(1100), Decimal(9))], 3)  # replaced by the reset
        loaded.reset(bids, asks, 42)
        applied.apply(bids, asks, 42)
        assert loaded.bids() == applied.bids()
        assert loaded.asks() == applied.asks()
        assert len(loaded) == len(applied)
        assert loaded.seq == 42
        loaded.apply([(Decimal(930), Decimal(7))], [(Decimal(1030), Decimal(0))])  # still a working book
        applied.apply([(Decimal(930), Decimal(7))], [(Decimal(1030), Decimal(0))])
        assert loaded.bids() == applied.bids()
        assert loaded.asks() == applied.asks()
