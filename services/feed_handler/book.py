"""An L2 order book: price -> size per side, kept sorted, with crossing checks. Pure logic, no I/O.

Levels are the venue's decimal strings (`Level`: ("43123.45", "0.5")), published as they came. A level
is found by the binary64 value of its price, which orders and compares prices exactly as decimals as
long as they have at most 15 significant digits: every venue tick there is, and what the parsers
enforce (a price string of at most 16 characters, below 9e15). A size of 0 removes the level.

The hot path takes the values with the strings (`apply_valued`): a parser decodes each venue message a
second time as floats in C (msgspec), which costs less than one Python `float()` call per value.
`apply` and `reset` without values compute them (tests, merging queued updates, the simulators).

A side is three parallel lists (the price values ascending, their strings, their sizes) searched by
bisection. `best_bid`/`best_ask` are O(1); an update is O(log n) to find the level plus a memmove to
insert or remove it.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence

from feed_handler.errors import CrossedBook

Level = tuple[str, str]
"""[price, size] as the venue wrote them."""
Levels = Sequence[Level]
Values = Sequence[tuple[float, float]]
"""The same levels as binary64 values (price, size), in the same order."""


def values(levels: Iterable[Level]) -> list[tuple[float, float]]:
    """The values of levels whose strings are already known to be plain decimals."""
    return [(float(p), float(s)) for p, s in levels]


class _Side:
    """One side: the price values in ascending order, and the price string and size at each."""

    __slots__ = ("keys", "prices", "sizes")

    def __init__(self) -> None:
        self.keys: list[float] = []
        self.prices: list[str] = []
        self.sizes: list[str] = []

    def load(self, levels: Levels, vals: Values) -> None:
        """Replace every level at once: the same side as applying `levels` in order to an empty one (the
        last size of a price wins, 0 removes), built with one sort instead of an insertion per level."""
        keys: list[float] = []
        prices: list[str] = []
        sizes: list[str] = []
        rows = sorted(zip(vals, levels, strict=True), key=lambda row: row[0][0])  # stable
        for (key, amount), (price, size) in rows:
            if keys and keys[-1] == key:
                if amount:
                    prices[-1], sizes[-1] = price, size
                else:
                    del keys[-1], prices[-1], sizes[-1]
            elif amount:
                keys.append(key)
                prices.append(price)
                sizes.append(size)
        self.keys, self.prices, self.sizes = keys, prices, sizes

    def update(self, levels: Levels, vals: Values) -> None:
        keys, prices, sizes = self.keys, self.prices, self.sizes
        for (key, amount), (price, size) in zip(vals, levels, strict=True):  # the depth hot path
            i = bisect_left(keys, key)
            if i < len(keys) and keys[i] == key:
                if amount:
                    prices[i] = price
                    sizes[i] = size
                else:
                    del keys[i], prices[i], sizes[i]
            elif amount:
                keys.insert(i, key)
                prices.insert(i, price)
                sizes.insert(i, size)


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
        self.reset_valued(bids, values(bids), asks, values(asks), seq)

    def reset_valued(
        self, bids: Levels, bid_values: Values, asks: Levels, ask_values: Values, seq: int = 0
    ) -> None:
        self._bids.load(bids, bid_values)
        self._asks.load(asks, ask_values)
        if seq:
            self.seq = seq

    def apply(self, bids: Levels, asks: Levels, seq: int = 0) -> None:
        """Apply changed levels (size 0 removes). Does not check crossing: call `check()` after."""
        self.apply_valued(bids, values(bids), asks, values(asks), seq)

    def apply_valued(
        self, bids: Levels, bid_values: Values, asks: Levels, ask_values: Values, seq: int = 0
    ) -> None:
        self._bids.update(bids, bid_values)
        self._asks.update(asks, ask_values)
        if seq:
            self.seq = seq

    @property
    def best_bid(self) -> Level | None:
        side = self._bids
        return (side.prices[-1], side.sizes[-1]) if side.prices else None

    @property
    def best_ask(self) -> Level | None:
        side = self._asks
        return (side.prices[0], side.sizes[0]) if side.prices else None

    @property
    def crossed(self) -> bool:
        """Best bid at or above best ask (a locked or crossed book: not a state a venue's book can be in)."""
        bids, asks = self._bids.keys, self._asks.keys
        return bool(bids and asks and bids[-1] >= asks[0])

    def check(self) -> None:
        """Raise CrossedBook if the book is crossed."""
        if self.crossed:
            raise CrossedBook(self.symbol, self._bids.prices[-1], self._asks.prices[0])

    def bids(self, depth: int | None = None) -> tuple[Level, ...]:
        """Bid levels, best (highest) first."""
        side = self._bids
        start = 0 if depth is None else max(0, len(side.prices) - depth)
        return tuple(zip(reversed(side.prices[start:]), reversed(side.sizes[start:]), strict=True))

    def asks(self, depth: int | None = None) -> tuple[Level, ...]:
        """Ask levels, best (lowest) first."""
        side = self._asks
        return tuple(zip(side.prices[:depth], side.sizes[:depth], strict=True))

    def __len__(self) -> int:
        return len(self._bids.keys) + len(self._asks.keys)
