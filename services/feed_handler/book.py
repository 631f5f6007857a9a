"""An L2 order book: price -> size per side, kept sorted, with crossing checks. Pure logic, no I/O.

Prices and sizes are Decimals (exact). A size of 0 removes the level. `best_bid`/`best_ask` are O(1);
an update is O(log n) to find the level plus a memmove to insert or remove it.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable
from decimal import Decimal

from feed_handler.errors import CrossedBook

Levels = Iterable[tuple[Decimal, Decimal]]


class _Side:
    """One side: sizes by price and the prices in ascending order."""

    __slots__ = ("prices", "sizes")

    def __init__(self) -> None:
        self.sizes: dict[Decimal, Decimal] = {}
        self.prices: list[Decimal] = []

    def set(self, price: Decimal, size: Decimal) -> None:
        if size:
            if price not in self.sizes:
                insort(self.prices, price)
            self.sizes[price] = size
        elif self.sizes.pop(price, None) is not None:
            del self.prices[bisect_left(self.prices, price)]

    def load(self, levels: Levels) -> None:
        """Replace every level at once: the same book as applying `levels` in order to an empty side (the
        last size of a price wins, 0 removes), built with one sort instead of an insertion per level."""
        self.sizes = {price: size for price, size in dict(levels).items() if size}
        self.prices = sorted(self.sizes)


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
            sizes, prices = side.sizes, side.prices
            for price, size in levels:  # _Side.set, inlined: this is the depth hot path
                if size:
                    if price not in sizes:
                        insort(prices, price)
                    sizes[price] = size
                elif sizes.pop(price, None) is not None:
                    del prices[bisect_left(prices, price)]
        if seq:
            self.seq = seq

    @property
    def best_bid(self) -> tuple[Decimal, Decimal] | None:
        prices = self._bids.prices
        return (prices[-1], self._bids.sizes[prices[-1]]) if prices else None

    @property
    def best_ask(self) -> tuple[Decimal, Decimal] | None:
        prices = self._asks.prices
        return (prices[0], self._asks.sizes[prices[0]]) if prices else None

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
        prices = self._bids.prices
        chosen = prices[::-1] if depth is None else prices[: -depth - 1 : -1]
        sizes = self._bids.sizes
        return tuple((p, sizes[p]) for p in chosen)

    def asks(self, depth: int | None = None) -> tuple[tuple[Decimal, Decimal], ...]:
        """Ask levels, best (lowest) first."""
        prices = self._asks.prices if depth is None else self._asks.prices[:depth]
        sizes = self._asks.sizes
        return tuple((p, sizes[p]) for p in prices)

    def __len__(self) -> int:
        return len(self._bids.prices) + len(self._asks.prices)
