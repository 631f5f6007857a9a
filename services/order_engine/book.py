"""The limit order book of one symbol: price-time priority in integer ticks and lots, no I/O.

    book = OrderBook("BTC-USD")
    book.add(order)                          # rests a limit order at the back of its price level
    events = []
    stopped = book.match(taker, limit_ticks, events)   # trades `taker` against the other side

Each side keeps a dict of price levels and a sorted list of level keys with the best level last (bids keyed
by price, asks by -price), so the best level is `keys[-1]` and removing it is a pop. A level is a FIFO of
orders; a cancelled order is only marked dead and skipped when it reaches the front (the level compacts
itself when dead entries pile up), so cancel is O(1) plus an O(log n) level removal when it empties.

`match` records what happened as plain tuples (see FILL, STP_*), with the state of both orders right after
each event, so the engine can turn them into execution reports without re-deriving anything.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque
from collections.abc import Iterator
from typing import Any

from nexus.messages import StpMode

# Self-trade prevention modes as small ints (compared in the hot loop).
STP_NEWEST, STP_OLDEST, STP_BOTH, STP_DECREMENT = 0, 1, 2, 3
STP_CODES = {
    StpMode.CANCEL_NEWEST: STP_NEWEST,
    StpMode.CANCEL_OLDEST: STP_OLDEST,
    StpMode.CANCEL_BOTH: STP_BOTH,
    StpMode.DECREMENT: STP_DECREMENT,
}
STP_MODES = {code: mode for mode, code in STP_CODES.items()}

# Event tags produced by OrderBook.match.
FILL = 0
"""(FILL, maker, qty, price): maker and taker traded `qty` lots at `price` ticks (maker's price)."""
STP_CANCEL_MAKER = 1
"""(STP_CANCEL_MAKER, maker, 0, 0): the resting order was cancelled by self-trade prevention."""
STP_CANCEL_TAKER = 2
"""(STP_CANCEL_TAKER, maker, 0, 0): the incoming order was cancelled by self-trade prevention."""
STP_DECREMENT_BOTH = 3
"""(STP_DECREMENT_BOTH, maker, qty, 0): both orders were reduced by `qty` lots without a trade."""

_COMPACT_MIN = 32


class Order:
    """One order. Prices are ticks, quantities lots; `notional` is the sum of price*qty of its fills
    (ticks*lots) for the average price. The engine keeps its own bookkeeping in the last few slots."""

    __slots__ = (
        "account",
        "coid",
        "cum",
        "first",
        "is_buy",
        "last",
        "leaves",
        "live",
        "market",
        "notional",
        "oid",
        "post_only",
        "price",
        "qty",
        "stp",
        "symbol",
        "ts_cmd",
    )

    def __init__(
        self,
        oid: int,
        account: str,
        coid: str,
        symbol: str,
        is_buy: bool,
        price: int,
        qty: int,
        stp: int = STP_NEWEST,
        ts_cmd: int = 0,
        market: bool = False,
        post_only: bool = False,
    ) -> None:
        self.oid = oid
        self.account = account
        self.coid = coid
        self.symbol = symbol
        self.is_buy = is_buy
        self.price = price
        self.qty = qty
        self.leaves = qty
        self.cum = 0
        self.notional = 0
        self.stp = stp
        self.ts_cmd = ts_cmd
        self.market = market
        self.post_only = post_only
        self.live = False
        self.first: Any = None
        self.last: Any = None

    def clone(self) -> Order:
        """A copy that can be queued anew (losing time priority) while the old entry stays dead."""
        new = Order.__new__(Order)
        for name in Order.__slots__:
            setattr(new, name, getattr(self, name))
        new.live = False
        return new

    def __repr__(self) -> str:
        side = "buy" if self.is_buy else "sell"
        return f"Order({self.oid} {self.account}/{self.coid} {side} {self.leaves}@{self.price})"


class Level:
    """The orders resting at one price, oldest first. `size` and `count` cover live orders only."""

    __slots__ = ("count", "price", "queue", "size")

    def __init__(self, price: int) -> None:
        self.price = price
        self.queue: deque[Order] = deque()
        self.size = 0
        self.count = 0

    def live_orders(self) -> Iterator[Order]:
        return (o for o in self.queue if o.live)

    def compact(self) -> None:
        self.queue = deque(o for o in self.queue if o.live)


class BookSide:
    """One side of a book. `keys` is sorted ascending with the best level last."""

    __slots__ = ("dirty", "is_buy", "keys", "levels")

    def __init__(self, is_buy: bool) -> None:
        self.is_buy = is_buy
        self.levels: dict[int, Level] = {}
        self.keys: list[int] = []
        self.dirty: set[int] = set()
        """Prices whose level size changed since the last `take_changes` (for L2 deltas)."""

    def best(self) -> int | None:
        if not self.keys:
            return None
        k = self.keys[-1]
        return k if self.is_buy else -k

    def add(self, order: Order) -> None:
        price = order.price
        level = self.levels.get(price)
        if level is None:
            level = self.levels[price] = Level(price)
            insort(self.keys, price if self.is_buy else -price)
        level.queue.append(order)
        level.size += order.leaves
        level.count += 1
        order.live = True
        self.dirty.add(price)

    def remove(self, order: Order) -> None:
        """Take a live order off the book (its queue entry stays, dead, until skipped or compacted)."""
        order.live = False
        price = order.price
        level = self.levels[price]
        level.size -= order.leaves
        level.count -= 1
        self.dirty.add(price)
        if level.count == 0:
            self._drop(level)
        elif len(level.queue) > _COMPACT_MIN and len(level.queue) > 4 * level.count:
            level.compact()

    def reduce(self, order: Order, lots: int) -> None:
        """Lower a live order's leaves in place (it keeps its time priority)."""
        order.leaves -= lots
        level = self.levels[order.price]
        level.size -= lots
        self.dirty.add(order.price)

    def _drop(self, level: Level) -> None:
        del self.levels[level.price]
        key = level.price if self.is_buy else -level.price
        keys = self.keys
        if keys[-1] == key:
            keys.pop()
        else:
            del keys[bisect_left(keys, key)]

    def depth(self, n: int | None = None) -> list[tuple[int, int]]:
        """(price, size) of the best `n` levels (all when None), best first."""
        keys = self.keys if n is None else self.keys[-n:] if n > 0 else []
        sign = 1 if self.is_buy else -1
        return [(sign * k, self.levels[sign * k].size) for k in reversed(keys)]

    def orders(self) -> Iterator[Order]:
        """Live orders in priority order (best price first, oldest first)."""
        for k in reversed(self.keys):
            yield from self.levels[k if self.is_buy else -k].live_orders()


class OrderBook:
    """Both sides of one symbol's book and the matching loop."""

    __slots__ = ("asks", "bids", "symbol")

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.bids = BookSide(True)
        self.asks = BookSide(False)

    def side(self, is_buy: bool) -> BookSide:
        return self.bids if is_buy else self.asks

    def add(self, order: Order) -> None:
        (self.bids if order.is_buy else self.asks).add(order)

    def remove(self, order: Order) -> None:
        (self.bids if order.is_buy else self.asks).remove(order)

    def crosses(self, is_buy: bool, price: int | None) -> bool:
        """Would an order on `is_buy` at `price` (None = market) trade against the other side now?"""
        other = self.asks if is_buy else self.bids
        best = other.best()
        if best is None:
            return False
        if price is None:
            return True
        return price >= best if is_buy else price <= best

    def fillable(self, taker: Order, limit: int | None) -> bool:
        """FOK check: can `taker.leaves` trade in full against other accounts' orders at acceptable prices,
        counted in priority order, before meeting one of its own account's orders?"""
        need = taker.leaves
        other = self.asks if taker.is_buy else self.bids
        sign = 1 if other.is_buy else -1
        account = taker.account
        for k in reversed(other.keys):
            price = sign * k
            if limit is not None and (price > limit if taker.is_buy else price < limit):
                return False
            for maker in other.levels[price].queue:
                if not maker.live:
                    continue
                if maker.account == account:
                    return False
                need -= maker.leaves
                if need <= 0:
                    return True
        return False

    def match(self, taker: Order, limit: int | None, events: list[tuple[Any, ...]]) -> bool:
        """Trade `taker` (not on the book) against the other side while prices cross `limit` (None =
        market). Updates both orders and the book, appends events, and returns True when self-trade
        prevention cancelled the taker (it must not rest)."""
        is_buy = taker.is_buy
        other = self.asks if is_buy else self.bids
        keys = other.keys
        levels = other.levels
        dirty = other.dirty
        account = taker.account
        stp = taker.stp
        while taker.leaves and keys:
            price = keys[-1] if not is_buy else -keys[-1]
            if limit is not None and (price > limit if is_buy else price < limit):
                break
            level = levels[price]
            queue = level.queue
            dirty.add(price)
            while taker.leaves and queue:
                maker = queue[0]
                if not maker.live:
                    queue.popleft()
                    continue
                if maker.account == account:
                    if stp == STP_NEWEST:
                        events.append((STP_CANCEL_TAKER, maker, 0, 0))
                        self._finish_level(other, level)
                        return True
                    if stp == STP_OLDEST:
                        self._take(other, level, maker)
                        events.append((STP_CANCEL_MAKER, maker, 0, 0))
                        continue
                    if stp == STP_BOTH:
                        self._take(other, level, maker)
                        events.append((STP_CANCEL_MAKER, maker, 0, 0))
                        events.append((STP_CANCEL_TAKER, maker, 0, 0))
                        self._finish_level(other, level)
                        return True
                    # decrement both by the smaller quantity, no trade
                    qty = min(taker.leaves, maker.leaves)
                    taker.leaves -= qty
                    taker.qty -= qty
                    maker.qty -= qty
                    if maker.leaves == qty:
                        self._take(other, level, maker)
                        maker.leaves = 0
                    else:
                        maker.leaves -= qty
                        level.size -= qty
                    events.append((STP_DECREMENT_BOTH, maker, qty, 0))
                    continue
                qty = taker.leaves if taker.leaves < maker.leaves else maker.leaves
                value = qty * price
                taker.leaves -= qty
                taker.cum += qty
                taker.notional += value
                maker.cum += qty
                maker.notional += value
                if maker.leaves == qty:
                    self._take(other, level, maker)
                    maker.leaves = 0
                else:
                    maker.leaves -= qty
                    level.size -= qty
                events.append((FILL, maker, qty, price))
            self._finish_level(other, level)
        return False

    @staticmethod
    def _take(side: BookSide, level: Level, maker: Order) -> None:
        """Remove the maker at the front of `level` during matching (the level is dropped afterwards)."""
        level.queue.popleft()
        maker.live = False
        level.size -= maker.leaves
        level.count -= 1

    @staticmethod
    def _finish_level(side: BookSide, level: Level) -> None:
        if level.count == 0 and side.levels.get(level.price) is level:
            side._drop(level)

    def take_changes(self) -> tuple[dict[int, int], dict[int, int]]:
        """The current size of every level that changed since the last call (0 = level gone)."""
        out = []
        for side in (self.bids, self.asks):
            changes = {}
            for price in side.dirty:
                level = side.levels.get(price)
                changes[price] = level.size if level is not None else 0
            side.dirty.clear()
            out.append(changes)
        return out[0], out[1]

    def total(self) -> tuple[int, int]:
        """Total resting lots on (bids, asks)."""
        return (
            sum(lv.size for lv in self.bids.levels.values()),
            sum(lv.size for lv in self.asks.levels.values()),
        )
