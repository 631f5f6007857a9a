"""The synthetic market: starts at each instrument's ref_price, stays on its tick, never crosses, and is
deterministic per seed (what lets two simulators serve one stream)."""

from __future__ import annotations

import math

from feed_handler.book import Book
from feed_handler.market import SyntheticMarket
from nexus.instruments import load_instruments


def test_every_default_instrument_starts_at_its_ref_price_on_its_tick() -> None:
    instruments = load_instruments()
    market = SyntheticMarket(list(instruments.values()), seed=1)
    assert set(market.by_name) == {"BTC-USD", "ETH-USD", "SOL-USD", "AAPL", "MSFT", "NVDA", "SPY", "EUR-USD"}
    for sym, inst in instruments.items():
        bid, ask = market.top(sym)
        assert bid is not None
        assert ask is not None
        mid = (inst.price(bid[0]) + inst.price(ask[0])) / 2
        assert abs(mid - inst.ref_price) / inst.ref_price < 0.001
        assert inst.to_ticks(inst.price(bid[0])) == bid[0]  # exact multiples of the tick


def test_a_seeded_market_is_reproducible_and_its_books_never_cross() -> None:
    instruments = list(load_instruments().values())
    a = SyntheticMarket(instruments, seed=42, rate=1000)
    b = SyntheticMarket(instruments, seed=42, rate=1000)
    books = {}

    def text(
        levels: list[tuple[int, int]],
    ) -> list[tuple[str, str]]:  # ticks and lots, as a venue writes them
        return [(str(p), str(q)) for p, q in levels]

    for sym in a.by_name:
        bids, asks, _ = a.ladder(sym)
        books[sym] = Book(sym)
        books[sym].reset(text(bids), text(asks))
    trades = 0
    for _ in range(20_000):
        ev, ev2 = a.next(), b.next()
        assert ev == ev2
        books[ev.symbol].apply(text(ev.bids), text(ev.asks))
        assert not books[ev.symbol].crossed
        bids, asks, uid = a.ladder(ev.symbol)
        assert books[ev.symbol].bids() == tuple(text(bids))
        assert books[ev.symbol].asks() == tuple(text(asks))
        assert uid == ev.update_id
        trades += ev.trade_id > 0
    assert 0.15 < trades / 20_000 < 0.25  # trade_ratio 0.2


def test_prices_wander_like_gbm_at_the_instrument_vol() -> None:
    inst = load_instruments()["BTC-USD"]
    market = SyntheticMarket([inst], seed=5, rate=10, trade_ratio=0.0, vol_scale=100.0)
    logs = []
    prev = market.by_name["BTC-USD"].mid
    for _ in range(4000):
        market.next()
        mid = market.by_name["BTC-USD"].mid
        logs.append(math.log(mid / prev))
        prev = mid
    sd = (sum(x * x for x in logs) / len(logs)) ** 0.5
    expected = inst.vol * 100 * math.sqrt(0.1 / (365 * 24 * 3600))
    assert abs(sd / expected - 1) < 0.1
