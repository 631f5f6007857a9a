"""An L2 order book: price -> size per side, kept sorted, with crossing checks. Pure logic, no I/O.

Levels are the venue's decimal strings (`Level`: ("43123.45", "0.5")), published as they came. A level
is found by the binary64 value of its price. Rounding to binary64 keeps the order of decimals, so two
prices with different values are in the right order, and only a tie needs a closer look: the same
price ("100.5" and "100.50", one level) or two prices closer than binary64 can tell apart (possible only
beyond 15 significant digits). That case is refused (BadInput, and the parser resyncs) rather than
merged, and crossing is decided on a tie by the decimals. A size of 0 removes the level. A size whose
value is 0 but whose text is not ("1e-400") is refused: it would be published as it came while the book
took it for 0.

The hot path takes the values with the strings (`apply_valued`): a parser decodes each venue message a
second time as floats in C (msgspec), which costs less than one Python `float()` call per value.
`apply` and `reset` without values compute them (tests, merging queued updates, the simulators).

A side is two parallel lists (keys from the price values, the venue's level at each), best last,
searched by bisection; a snapshot that comes sorted (as venues send them) is taken as it is.
`best_bid`/`best_ask` are O(1); an update is O(log n) to find the level plus a memmove to insert or
remove it.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence
from decimal import Decimal
from itertools import islice
from operator import gt, itemgetter, lt, neg

from feed_handler.errors import BadInput, CrossedBook

Level = tuple[str, str]
"""[price, size] as the venue wrote them."""
Levels = Sequence[Level]
Values = Sequence[tuple[float, float]]
"""The same levels as binary64 values (price, size), in the same order."""


def values(levels: Iterable[Level]) -> list[tuple[float, float]]:
    """The values of levels whose strings are already known to be plain decimals."""
    return [(float(p), float(s)) for p, s in levels]


def is_zero(size: str) -> bool:
    """Whether a size whose value is 0.0 is zero, not a tiny number that underflowed."""
    return not size.strip("0.") or Decimal(size) == 0


def same_price(price: str, other: str) -> bool:
    """Whether two prices whose values are one binary64 number are one decimal ("100.5", "100.50")."""
    return price == other or Decimal(price) == Decimal(other)


def at_or_above(bid: str, ask: str, bid_value: float, ask_value: float) -> bool:
    """bid >= ask, exactly: the values order the decimals, and a tie is settled by the decimals. Callers
    on a hot path test `bid_value >= ask_value` first, which is rarely true."""
    return bid_value > ask_value or (bid_value == ask_value and Decimal(bid) >= Decimal(ask))


def underflow(size: str) -> BadInput:
    return BadInput("invalid_field", f"size {size} is too small to tell from 0")


def collision(price: str, other: str) -> BadInput:
    return BadInput("invalid_field", f"prices {price} and {other} are too close to tell apart in binary64")


class _Side:
    """One side, best level last: its keys ascending (the price values, negated on the ask side) and the
    level (the venue's strings) at each. Best last, because most updates are at or near the top of the
    book and a list moves what lies after an insertion or a deletion."""

    __slots__ = ("keys", "levels", "sign")

    def __init__(self, sign: float) -> None:
        self.sign = sign
        """1.0 for bids (the highest price is the best), -1.0 for asks (the lowest is)."""
        self.keys: list[float] = []
        self.levels: list[Level] = []

    def load(self, levels: Levels, vals: Values) -> None:
        """Replace every level at once: the same side as applying `levels` in order to an empty one (the
        last size of a price wins, 0 removes), built with one sort instead of an insertion per level."""
        sign = self.sign
        keys = list(map(_price, vals)) if sign > 0 else list(map(neg, map(_price, vals)))
        if 0.0 not in map(_size, vals):
            # a venue's snapshot: distinct prices in order (best first or last), no empty level
            if all(map(lt, keys, islice(keys, 1, None))):
                self.keys, self.levels = keys, list(levels)
                return
            if all(map(gt, keys, islice(keys, 1, None))):
                keys.reverse()
                self.keys, self.levels = keys, list(reversed(levels))
                return
        ordered: list[float] = []
        kept: list[Level] = []
        for key, (_, amount), level in sorted(zip(keys, vals, levels, strict=True), key=_price):  # stable
            if not amount and not is_zero(level[1]):
                raise underflow(level[1])
            if ordered and ordered[-1] == key:
                if not same_price(kept[-1][0], level[0]):
                    raise collision(level[0], kept[-1][0])
                if amount:
                    kept[-1] = level
                else:
                    del ordered[-1], kept[-1]
            elif amount:
                ordered.append(key)
                kept.append(level)
        self.keys, self.levels = ordered, kept


_price, _size = itemgetter(0), itemgetter(1)
"""The first and second item of a row: a level's price and size (also a sort key's first field)."""


class Book:
    """One symbol's L2 book. `seq` is the venue update id the book includes (0 when the venue has none)."""

    __slots__ = ("_asks", "_bids", "seq", "symbol")

    def __init__(self, symbol: str = "") -> None:
        self.symbol = symbol
        self.seq = 0
        self._bids = _Side(1.0)
        self._asks = _Side(-1.0)

    def reset(self, bids: Levels, asks: Levels, seq: int = 0) -> None:
        """Replace the whole book (a snapshot). Raises BadInput as `apply_valued` does."""
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
        """`apply` with the levels' values already decoded (the depth hot path: one call per diff).
        Raises BadInput for a size that underflowed or two prices binary64 cannot tell apart; the book is
        then part-updated, and the caller resyncs it."""
        for side, levels, vals in ((self._bids, bids, bid_values), (self._asks, asks, ask_values)):
            if not levels:
                continue
            keys, kept, sign = side.keys, side.levels, side.sign
            for (price, amount), level in zip(vals, levels, strict=True):
                if not amount and level[1].strip("0.") and not is_zero(level[1]):  # no call for "0.00"
                    raise underflow(level[1])
                key = sign * price
                i = bisect_left(keys, key)
                if i < len(keys) and keys[i] == key:
                    held = kept[i][0]
                    if held != level[0] and not same_price(held, level[0]):  # no call for the same text
                        raise collision(level[0], held)
                    if amount:
                        kept[i] = level
                    else:
                        del keys[i], kept[i]
                elif amount:
                    keys.insert(i, key)
                    kept.insert(i, level)
        if seq:
            self.seq = seq

    @property
    def best_bid(self) -> Level | None:
        levels = self._bids.levels
        return levels[-1] if levels else None

    @property
    def best_ask(self) -> Level | None:
        levels = self._asks.levels
        return levels[-1] if levels else None

    @property
    def crossed(self) -> bool:
        """Best bid at or above best ask (a locked or crossed book: not a state a venue's book can be in)."""
        bids, asks = self._bids.keys, self._asks.keys
        if not (bids and asks):
            return False
        bid, ask = bids[-1], -asks[-1]
        return bid >= ask and at_or_above(self._bids.levels[-1][0], self._asks.levels[-1][0], bid, ask)

    def check(self) -> None:
        """Raise CrossedBook if the book is crossed."""
        if self.crossed:
            raise CrossedBook(self.symbol, self._bids.levels[-1][0], self._asks.levels[-1][0])

    def bids(self, depth: int | None = None) -> tuple[Level, ...]:
        """Bid levels, best (highest) first."""
        return _best_first(self._bids.levels, depth)

    def asks(self, depth: int | None = None) -> tuple[Level, ...]:
        """Ask levels, best (lowest) first."""
        return _best_first(self._asks.levels, depth)

    def __len__(self) -> int:
        return len(self._bids.keys) + len(self._asks.keys)


def _best_first(levels: list[Level], depth: int | None) -> tuple[Level, ...]:
    return tuple(reversed(levels if depth is None else levels[max(0, len(levels) - depth) :]))
