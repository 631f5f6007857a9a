"""A synthetic market, pure and deterministic: GBM mid prices, spreads and sizes on the instrument's tick
and lot, an L2 ladder per symbol, trades at the touch. Used by the synthetic adapter and by the venue
simulator (which speaks Binance/Coinbase over websockets); the same seed gives the same events, so two
simulator instances can serve identical streams (a failover pair).

Per event one symbol is chosen at random. A quote event moves its mid by one GBM step
(dt = symbols / rate seconds, at the instrument's annualised vol x vol_scale), draws a spread of 1-3x
`spread_ticks` and rebuilds the ladder around it (sizes of surviving levels mostly kept). A trade event
takes liquidity at the touch (aggressor random), shrinking or removing the touch level.
Prices are integer ticks and sizes integer lots here; `Instrument.price/qty` turn them into Decimals.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from nexus.instruments import Instrument
from nexus.messages import Side

SECONDS_PER_YEAR = 365.0 * 24 * 3600
NOTIONAL = 10_000.0
"""Typical order notional (price currency) that sizes are drawn around."""
SIZE_BITS = 10
"""Each symbol draws its sizes from a table of 2**SIZE_BITS exponential variates."""

Ladder = dict[int, int]
"""price ticks -> size lots"""


@dataclass(slots=True)
class Event:
    """What happened to one symbol. `bids`/`asks` are the changed levels (lots 0 = removed)."""

    index: int
    symbol: str
    update_id: int
    bids: list[tuple[int, int]] = field(default_factory=list)
    asks: list[tuple[int, int]] = field(default_factory=list)
    trade_id: int = 0
    """0 for a quote event; else the symbol's trade id (1, 2, ...)."""
    trade_ticks: int = 0
    trade_lots: int = 0
    aggressor: Side = Side.BUY


class _Symbol:
    __slots__ = (
        "asks",
        "bids",
        "index",
        "inst",
        "lot_value",
        "mid",
        "sigma",
        "sizes",
        "trade_id",
        "update_id",
    )

    def __init__(self, index: int, inst: Instrument, sigma: float) -> None:
        self.index = index
        self.inst = inst
        self.mid = float(inst.ref_price / inst.tick) if inst.ref_price > 0 else 10_000.0
        self.sigma = sigma
        self.bids: Ladder = {}
        self.asks: Ladder = {}
        self.trade_id = 0
        self.update_id = 0
        self.sizes: list[int] = []
        self.lot_value = float(inst.lot) * float(inst.ref_price or 1)

    def best_bid(self) -> tuple[int, int] | None:
        return (max(self.bids), self.bids[max(self.bids)]) if self.bids else None

    def best_ask(self) -> tuple[int, int] | None:
        return (min(self.asks), self.asks[min(self.asks)]) if self.asks else None


class SyntheticMarket:
    def __init__(
        self,
        instruments: list[Instrument],
        *,
        rate: float = 200.0,
        seed: int | None = None,
        trade_ratio: float = 0.2,
        book_levels: int = 5,
        spread_ticks: int = 2,
        vol_scale: float = 1.0,
    ) -> None:
        if not instruments:
            raise ValueError("a synthetic market needs at least one instrument")
        self.rng = random.Random(seed)
        self.trade_ratio = trade_ratio
        self.levels = max(1, book_levels)
        self.spread_ticks = spread_ticks
        step = len(instruments) / rate if rate > 0 else 0.001
        dt = step / SECONDS_PER_YEAR
        self.symbols = [
            _Symbol(i, inst, inst.vol * vol_scale * math.sqrt(dt)) for i, inst in enumerate(instruments)
        ]
        self.by_name = {s.inst.symbol: s for s in self.symbols}
        self.events_total = 0
        for s in self.symbols:
            s.sizes = self._size_table(s)
        for s in self.symbols:
            self._rebuild(s, Event(s.index, s.inst.symbol, 0))
            s.update_id = 1

    # -- what consumers need --------------------------------------------------------------------------

    def ladder(self, symbol: str) -> tuple[list[tuple[int, int]], list[tuple[int, int]], int]:
        """Current book of a symbol: bids best first, asks best first, update id."""
        s = self.by_name[symbol]
        bids = sorted(s.bids.items(), reverse=True)
        asks = sorted(s.asks.items())
        return bids, asks, s.update_id

    def top(self, symbol: str) -> tuple[tuple[int, int] | None, tuple[int, int] | None]:
        s = self.by_name[symbol]
        return s.best_bid(), s.best_ask()

    def instrument(self, symbol: str) -> Instrument:
        return self.by_name[symbol].inst

    # -- events ---------------------------------------------------------------------------------------

    def next(self) -> Event:
        rng = self.rng
        s = self.symbols[rng.randrange(len(self.symbols))]
        s.update_id += 1
        ev = Event(s.index, s.inst.symbol, s.update_id)
        if rng.random() < self.trade_ratio and s.bids and s.asks:
            self._trade(s, ev)
        else:
            z = rng.gauss(0.0, 1.0)
            s.mid *= math.exp(-0.5 * s.sigma * s.sigma + s.sigma * z)
            s.mid = max(s.mid, float(self.levels + 2 * self.spread_ticks * 3 + 2))
            self._rebuild(s, ev)
        self.events_total += 1
        return ev

    def _lots(self, s: _Symbol, mean_notional: float = NOTIONAL) -> int:
        """A size in lots, exponentially distributed around `mean_notional` (from the symbol's table of
        draws: the generator's hot path takes a random index, not a fresh variate)."""
        lots = s.sizes[self.rng.getrandbits(SIZE_BITS)]
        return lots if mean_notional == NOTIONAL else max(1, int(lots * mean_notional / NOTIONAL))

    def _size_table(self, s: _Symbol) -> list[int]:
        cap = max(1, int(s.inst.max_qty / s.inst.lot) // 10) if s.inst.max_qty > 0 else 1 << 62
        unit = NOTIONAL / max(s.lot_value, 1e-12)
        return [min(cap, int(self.rng.expovariate(1.0) * unit) + 1) for _ in range(1 << SIZE_BITS)]

    def _rebuild(self, s: _Symbol, ev: Event) -> None:
        rng = self.rng
        spread = self.spread_ticks * rng.choice((1, 1, 1, 2, 2, 3))
        best_bid = max(1 + self.levels, int(s.mid - spread / 2))
        best_ask = best_bid + spread
        table = s.sizes
        bits = rng.getrandbits
        for first, step, old, changes in ((best_bid, -1, s.bids, ev.bids), (best_ask, 1, s.asks, ev.asks)):
            new: Ladder = {}
            for k in range(self.levels):
                price = first + step * k
                size = old.get(price)
                # a surviving level keeps its size 70 % of the time; a new level gets a fresh one
                fresh = table[bits(SIZE_BITS)] if not size or bits(10) < 307 else size
                new[price] = fresh
                if fresh != size:
                    changes.append((price, fresh))
            changes.extend((price, 0) for price in old if price not in new)
            old.clear()
            old.update(new)

    def _trade(self, s: _Symbol, ev: Event) -> None:
        rng = self.rng
        aggressor = Side.BUY if rng.random() < 0.5 else Side.SELL
        ladder = s.asks if aggressor is Side.BUY else s.bids
        changes = ev.asks if aggressor is Side.BUY else ev.bids
        price = min(ladder) if aggressor is Side.BUY else max(ladder)
        lots = min(ladder[price], self._lots(s, NOTIONAL / 3))
        s.trade_id += 1
        ev.trade_id = s.trade_id
        ev.trade_ticks = price
        ev.trade_lots = lots
        ev.aggressor = aggressor
        left = ladder[price] - lots
        if left > 0:
            ladder[price] = left
            changes.append((price, left))
            return
        del ladder[price]
        changes.append((price, 0))
        # refill the far end so the ladder keeps its depth
        if ladder:
            far = (max(ladder) + 1) if aggressor is Side.BUY else (min(ladder) - 1)
            if far > 0:
                ladder[far] = self._lots(s)
                changes.append((far, ladder[far]))
