"""An account as risk sees it: positions, open orders, P&L and worst-case exposure. Pure (no I/O).

    account = Account("alice")
    account.add_order("c1", "BTC-USD", Side.BUY, Decimal("1"), Decimal("64000"), reduce_only=False)
    account.on_report(report)                       # an ExecReport of the engine: fills, cancels, ...
    account.refresh(market)                         # exposure and unrealised P&L at the current marks

Quantities and money are Decimals (exact, and on this machine a Decimal add or compare costs less than a
float conversion). Positions are signed (long > 0). P&L uses the average cost of the open position:
a fill that reduces the position realises (fill price - average) x closed quantity x the position's sign;
a fill that goes through zero closes the old position and opens the rest at the fill price.

Exposure counts open orders worst-case, per symbol: `long` = position + every open buy filled, `short` =
position - every open sell filled; the symbol's gross exposure is max(|long|, |short|) x mark. Net exposure
is the larger of |sum of long x mark| and |sum of short x mark| over the account's symbols.

`room` is what the checks keep between orders (see `risk.checks`): money of worst-case exposure the account
can still add with every account-wide limit holding, a lower bound. Anything that could make it too large (a
fill, an order the checks did not count, an order growing, new marks, new limits) forgets it.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import msgspec

from nexus.messages import AccountRisk, ExecReport, ExecType, Position, Side, TradingState

ZERO = Decimal(0)
_BUY = Side.BUY


class Market:
    """Marks (the reference price of each symbol) and the best bid/ask market orders are priced against."""

    __slots__ = ("asks", "bids", "marks", "version")

    def __init__(self) -> None:
        self.marks: dict[str, Decimal] = {}
        self.bids: dict[str, Decimal] = {}
        self.asks: dict[str, Decimal] = {}
        self.version = 0
        """Bumped on every mark change; accounts recompute exposure when theirs is older."""

    def quote(self, symbol: str, bid: Decimal | None, ask: Decimal | None) -> None:
        """A venue's top of book: a side without a positive price has no best price."""
        if bid is not None and bid > 0:
            self.bids[symbol] = bid
        else:
            self.bids.pop(symbol, None)
            bid = None
        if ask is not None and ask > 0:
            self.asks[symbol] = ask
        else:
            self.asks.pop(symbol, None)
            ask = None
        if bid is not None and ask is not None:
            self.mark(symbol, (bid + ask) / 2)

    def mark(self, symbol: str, price: Decimal) -> None:
        """A symbol's reference price; one that is not positive is not a price (it is ignored)."""
        if price > 0 and self.marks.get(symbol) != price:
            self.marks[symbol] = price
            self.version += 1


class OpenOrder(msgspec.Struct, gc=False):
    """An order open at the engine as risk counts it (a Struct: made on every approval, and a Struct is
    made in a third of the time of a class with slots)."""

    symbol: str
    side: Side
    qty: Decimal
    """Open (leaves) quantity."""
    price: Decimal | None
    reduce_only: bool
    cum: Decimal = ZERO
    """Filled so far (a replace's quantity is the whole order: filled + open)."""
    acked: bool = False
    """The engine has reported this order (risk approved it, or it came from the reports): a reject
    of a new order with the same id is about another command (a duplicate), not about this one."""


class Holding:
    """One symbol of an account: position, average cost, realised P&L, open quantity on each side."""

    __slots__ = ("avg_px", "open_buy", "open_sell", "qty", "realised", "symbol")

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.qty = ZERO
        self.avg_px = ZERO
        self.realised = ZERO
        self.open_buy = ZERO
        self.open_sell = ZERO

    def fill(self, side: Side, qty: Decimal, price: Decimal) -> Decimal:
        """Apply a fill; return the P&L it realised."""
        pos = self.qty
        signed = qty if side is _BUY else -qty
        if pos == 0 or (pos > 0) == (signed > 0):
            total = abs(pos) + qty
            self.avg_px = (self.avg_px * abs(pos) + price * qty) / total
            self.qty = pos + signed
            return ZERO
        closed = min(qty, abs(pos))
        realised = (price - self.avg_px) * closed if pos > 0 else (self.avg_px - price) * closed
        self.realised += realised
        self.qty = pos + signed
        if self.qty == 0:
            self.avg_px = ZERO
        elif (self.qty > 0) != (pos > 0):
            self.avg_px = price  # went through zero: the rest is a new position at this price
        return realised

    def unrealised(self, mark: Decimal | None) -> Decimal:
        if not self.qty or mark is None:
            return ZERO
        return (mark - self.avg_px) * self.qty


class Account:
    """Positions, open orders and P&L of one account, and the cached aggregates the checks read."""

    __slots__ = (
        "_day",
        "contrib",
        "gross",
        "holdings",
        "name",
        "net_long",
        "net_short",
        "orders",
        "realised_today",
        "realised_total",
        "room",
        "room_version",
        "seen",
        "seen_before",
        "seen_memory",
        "state",
        "unrealised",
        "version",
    )

    def __init__(self, name: str, *, seen_memory: int = 100_000) -> None:
        self.name = name
        self.state = TradingState.ACTIVE
        self.holdings: dict[str, Holding] = {}
        self.orders: dict[str, OpenOrder] = {}
        """Open orders by client order id (an order keeps its id through replaces)."""
        self.seen: set[str] = set()
        """Client order ids of new orders already used: those since `seen_before` filled up. Both
        together hold at least the newest `seen_memory` (at most twice as many): when `seen` reaches
        `seen_memory` it becomes `seen_before`, and the oldest are forgotten all at once, not one by one."""
        self.seen_before: set[str] = set()
        self.seen_memory = seen_memory
        self.realised_today = ZERO
        self.realised_total = ZERO
        self._day = _today()
        # aggregates at the marks of market version `version` (-1: stale)
        self.version = -1
        self.contrib: dict[str, Contribution] = {}
        """symbol -> (gross, long value, short value, unrealised, the mark they were valued at)."""
        self.gross = ZERO
        self.net_long = ZERO
        self.net_short = ZERO
        self.unrealised = ZERO
        self.room: Decimal | None = None
        """Exposure (money at the marks) the account can add with its account-wide limits holding: a
        lower bound the checks keep, valid while `room_version` is the market's version; None: unknown."""
        self.room_version = -1

    # -- orders ---------------------------------------------------------------------------------------

    def holding(self, symbol: str) -> Holding:
        h = self.holdings.get(symbol)
        if h is None:
            h = self.holdings[symbol] = Holding(symbol)
        return h

    def remember_id(self, coid: str) -> None:
        if coid in self.seen or coid in self.seen_before:
            return
        seen = self.seen
        seen.add(coid)
        if len(seen) >= self.seen_memory:
            self.seen_before, self.seen = seen, set()

    def add_order(
        self, coid: str, symbol: str, side: Side, qty: Decimal, price: Decimal | None, reduce_only: bool
    ) -> None:
        """An open order risk did not approve itself (it learnt of it from the engine's reports)."""
        if coid in self.orders:
            return
        self.orders[coid] = OpenOrder(symbol, side, qty, price, reduce_only)
        h = self.holdings.get(symbol) or self.holding(symbol)
        if side is _BUY:
            h.open_buy += qty
        else:
            h.open_sell += qty
        self.room = None
        self._revalue(h)

    def set_leaves(self, coid: str, leaves: Decimal, price: Decimal | None = None) -> None:
        order = self.orders.get(coid)
        if order is None:
            return
        h = self.holding(order.symbol)
        delta = leaves - order.qty
        if delta > 0:  # an order that grows (a replace) can use up the room; one that shrinks cannot
            self.room = None
        if order.side is _BUY:
            h.open_buy += delta
        else:
            h.open_sell += delta
        if price is not None:
            order.price = price
        if leaves <= 0:
            del self.orders[coid]
        else:
            order.qty = leaves
        self._revalue(h)

    # -- what the engine reports ----------------------------------------------------------------------

    def on_report(self, r: ExecReport) -> Decimal:
        """Apply one exec report of this account; return the P&L a fill realised (else 0).

        The order a report is about: `orig_client_order_id` on the answer to a cancel, replace or
        cancel-all (whose `client_order_id` is the request's), else `client_order_id` (acceptance,
        fills, IOC remainders, self-trade cancels and decrements)."""
        kind = r.exec_type
        realised = ZERO
        if kind is ExecType.PARTIALLY_FILLED or kind is ExecType.FILLED:
            if r.last_qty and r.last_px is not None and r.side is not None:
                self.room = None  # a fill changes positions and P&L
                h = self.holding(r.symbol)
                realised = h.fill(r.side, r.last_qty, r.last_px)
                self._book_realised(realised, r.ts_event)
                self._revalue(h)
            coid = r.orig_client_order_id or r.client_order_id
            if coid not in self.orders and r.leaves_qty and r.side is not None:
                self.add_order(coid, r.symbol, r.side, r.leaves_qty, r.price, False)
            else:
                self.set_leaves(coid, r.leaves_qty or ZERO)
            self._engine_saw(coid, r)
        elif kind is ExecType.ACCEPTED:
            if r.side is not None:  # a cancel-all's acknowledgement has no side
                self.remember_id(r.client_order_id)
                if r.leaves_qty and r.client_order_id not in self.orders:
                    self.add_order(r.client_order_id, r.symbol, r.side, r.leaves_qty, r.price, False)
                self._engine_saw(r.client_order_id, r)
        elif kind is ExecType.CANCELLED:
            self.set_leaves(r.orig_client_order_id or r.client_order_id, ZERO)
        elif kind is ExecType.REPLACED:
            coid = r.orig_client_order_id or r.client_order_id  # a self-trade decrement names no request
            self.set_leaves(coid, r.leaves_qty or ZERO, r.price)
            self._engine_saw(coid, r)
        elif kind is ExecType.REJECTED and not r.orig_client_order_id:
            order = self.orders.get(r.client_order_id)
            if order is not None and not order.acked:  # the new order risk approved, refused by the engine
                self.set_leaves(r.client_order_id, ZERO)
        return realised

    def _engine_saw(self, coid: str, r: ExecReport) -> None:
        order = self.orders.get(coid)
        if order is not None:
            order.acked = True
            if r.cum_qty is not None:
                order.cum = r.cum_qty

    def _book_realised(self, amount: Decimal, ts: int) -> None:
        day = _today(ts)
        if day != self._day:
            self._day = day
            self.realised_today = ZERO
        self.realised_today += amount
        self.realised_total += amount

    def roll_day(self, now_ns: int | None = None) -> None:
        """Start a new trading day (today's realised P&L back to 0) when the UTC date has changed."""
        day = _today(now_ns)
        if day != self._day:
            self._day = day
            self.realised_today = ZERO
            self.room = None  # a day that started with a profit had more buying power

    # -- exposure -------------------------------------------------------------------------------------

    def _revalue(self, h: Holding) -> None:
        """Update one symbol's share of the aggregates after its position or open orders changed, at
        the mark the aggregates were computed with (a symbol not valued yet waits for `refresh`)."""
        if self.version < 0:
            return
        old = self.contrib.get(h.symbol)
        if old is None:
            self.version = -1
            return
        mark = old[4]
        if mark is None:
            return
        new = self.contrib[h.symbol] = _contribution(h, mark)
        self.gross += new[0] - old[0]
        self.net_long += new[1] - old[1]
        self.net_short += new[2] - old[2]
        self.unrealised += new[3] - old[3]

    def refresh(self, market: Market) -> None:
        """Recompute exposure and unrealised P&L if the marks or the account changed since last time."""
        if self.version == market.version:
            return
        marks = market.marks
        gross = net_long = net_short = unrealised = ZERO
        contrib = self.contrib
        for symbol, h in self.holdings.items():
            mark = marks.get(symbol)
            if mark is None:
                contrib[symbol] = (ZERO, ZERO, ZERO, ZERO, None)
                continue
            c = contrib[symbol] = _contribution(h, mark)
            gross += c[0]
            net_long += c[1]
            net_short += c[2]
            unrealised += c[3]
        self.gross, self.net_long, self.net_short, self.unrealised = gross, net_long, net_short, unrealised
        self.version = market.version

    def snapshot(self, market: Market, ts: int = 0) -> AccountRisk:
        """Positions, P&L and exposure as a message (for the state subject, REST and stats)."""
        self.refresh(market)
        positions = []
        open_notional = ZERO
        for symbol, h in sorted(self.holdings.items()):
            mark = market.marks.get(symbol)
            open_notional += (h.open_buy + h.open_sell) * (mark or ZERO)
            if h.qty or h.realised or h.open_buy or h.open_sell:
                positions.append(
                    Position(
                        symbol=symbol,
                        qty=h.qty,
                        avg_px=_display(h.avg_px) if h.qty else None,
                        mark=mark,
                        realised_pnl=float(h.realised),
                        unrealised_pnl=float(h.unrealised(mark)),
                    )
                )
        return AccountRisk(
            account=self.name,
            state=self.state,
            positions=tuple(positions),
            realised_pnl=float(self.realised_today),
            unrealised_pnl=float(self.unrealised),
            gross_exposure=float(self.gross),
            net_exposure=float(max(abs(self.net_long), abs(self.net_short))),
            open_order_exposure=float(open_notional),
            open_orders=len(self.orders),
            ts=ts,
        )


Contribution = tuple[Decimal, Decimal, Decimal, Decimal, Decimal | None]
"""One symbol's share of an account's aggregates: (gross, long value, short value, unrealised, the mark)."""


def _contribution(h: Holding, mark: Decimal) -> Contribution:
    long_q = h.qty + h.open_buy  # every open buy filled
    short_q = h.qty - h.open_sell  # every open sell filled
    return (
        max(abs(long_q), abs(short_q)) * mark,
        long_q * mark,
        short_q * mark,
        (mark - h.avg_px) * h.qty if h.qty else ZERO,
        mark,
    )


_DISPLAY = Decimal("1e-8")


def _display(value: Decimal) -> Decimal:
    """An average price for people: 8 decimal places at most, no trailing zeros beyond the input's."""
    rounded = value.quantize(_DISPLAY)
    return rounded if rounded != value else value


def _today(ts_ns: int | None = None) -> dt.date:
    if not ts_ns:
        return dt.datetime.now(dt.UTC).date()
    return dt.datetime.fromtimestamp(ts_ns / 1e9, dt.UTC).date()
