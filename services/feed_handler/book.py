"""An L2 order book: price -> size per side, kept sorted, with crossing checks. Pure logic, no I/O.

Prices and sizes are Decimals (exact). A size of 0 removes the level. `best_bid`/`best_ask` are O(1);
an update is O(log n) to find the level plus a memmove to insert or remove it.

A side is two parallel lists (prices ascending, their sizes) searched by bisection, not a dict: a price
comes fresh out of each venue message, and hashing a fresh Decimal costs ~0.5 µs here, more than the
~11 comparisons of a bisection over 2,000 levels (~0.25 µs).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from decimal import Decimal
from operator import itemgetter

from feed_handler.errors import CrossedBook

Levels = Iterable[tuple[Decimal, Decimal]]

_price = itemgetter(0)


class _Side:
    """One side: the prices in ascending order and the size at each."""

    __slots__ = ("prices", "sizes")

    def __init__(self) -> None:
        self.prices: list[Decimal] = []
        self.sizes: list[Decimal] = []

    def load(self, levels: Levels) -> None:
        """Replace every level at once: the same side as applying `levels` in order to an empty one (the
        last size of a price wins, 0 removes), built with one sort instead of an insertion per level."""
        prices: list[Decimal] = []
        sizes: list[Decimal] = []
        for price, size in sorted(levels, key=_price):  # stable: a repeated price keeps its order
            if prices and prices[-1] == price:
                if size:
                    sizes[-1] = size
                else:
                    del prices[-1], sizes[-1]
            elif size:
                prices.append(price)
                sizes.append(size)
        self.prices = prices
        self.sizes = sizes


class Book:
    """One symbol's L2 book. `seq` is the venue update id the book includes (0 when the venue has none)."""

    __slots__ = ("_asks", "_bids", "seq", "symbol")

    def __init__(self, symbol: str = "") -> None:
        self.symbol = symbol
        self.seq = 0
        self._bids = _Side()
        self._asks = _Side()

    def reset(self, bids: Levels, asks: Levels, seq: int = 0) -> None:
        """Replace the whole book (a snapshot)."""
        self._bids.load(bids)
        self._asks.load(asks)
        if seq:
            self.seq = seq

    def apply(self, bids: Levels, asks: Levels, seq: int = 0) -> None:
        """Apply changed levels (size 0 removes). Does not check crossing: call `check()` after."""
        for side, levels in ((self._bids, bids), (self._asks, asks)):
            prices, sizes = side.prices, side.sizes
            for price, size in levels:  # the depth hot path: written out, no helper call per level
                i = bisect_left(prices, price)
                if i < len(prices) and prices[i] == price:
                    if size:
                        sizes[i] = size
                    else:
                        del prices[i], sizes[i]
                elif size:
                    prices.insert(i, price)
                    sizes.insert(i, size)
        if seq:
            self.seq = seq

    @property
    def best_bid(self) -> tuple[Decimal, Decimal] | None:
        side = self._bids
        return (side.prices[-1], side.sizes[-1]) if side.prices else None

    @property
    def best_ask(self) -> tuple[Decimal, Decimal] | None:
        side = self._asks
        return (side.prices[0], side.sizes[0]) if side.prices else None

    @property
    def crossed(self) -> bool:
        """Best bid at or above best ask (a locked or crossed book: not a state a venue's book can be in)."""
        bids, asks = self._bids.prices, self._asks.prices
        return bool(bids and asks and bids[-1] >= asks[0])

    def check(self) -> None:
        """Raise CrossedBook if the book is crossed."""
        if self.crossed:
            raise CrossedBook(self.symbol, self._bids.prices[-1], self._asks.prices[0])

    def bids(self, depth: int | None = None) -> tuple[tuple[Decimal, Decimal], ...]:
        """Bid levels, best (highest) first."""
        side = self._bids
        start = 0 if depth is None else max(0, len(side.prices) - depth)
        return tuple(zip(reversed(side.prices[start:]), reversed(side.sizes[start:]), strict=True))

    def asks(self, depth: int | None = None) -> tuple[tuple[Decimal, Decimal], ...]:
        """Ask levels, best (lowest) first."""
        side = self._asks
        return tuple(zip(side.prices[:depth], side.sizes[:depth], strict=True))

    def __len__(self) -> int:
        return len(self._bids.prices) + len(self._asks.prices)
