"""The matching engine: order commands in, execution reports and trades out. Pure and deterministic.

    engine = MatchingEngine(load_instruments(), venue="nexus")
    outputs = engine.process(new_order, ts_event)      # [ExecReport | Trade, ...] in publication order

The same commands in the same order always give the same outputs and the same books (timestamps come from
the caller), which is what recovery relies on: load a snapshot, replay the input stream after it.

Rules (docs/order-engine.md has the full list):
- prices become integer ticks and quantities integer lots at the edge; a value that is not a whole number
  of ticks/lots is rejected, never rounded;
- an order is known by its account and client order id for its whole life; a cancel, replace or cancel-all
  is a request with an id of its own, answered by a report whose `client_order_id` is the request's id
  and whose `orig_client_order_id` names the order;
- each report and trade of a symbol takes the next number of that symbol's sequence (`seq`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec

from nexus.instruments import Instrument
from nexus.messages import (
    BookDelta,
    BookSnapshot,
    CancelAll,
    CancelOrder,
    ExecReport,
    ExecType,
    NewOrder,
    OrderType,
    Quote,
    Reason,
    ReplaceOrder,
    Side,
    TimeInForce,
    Trade,
)
from nexus.subjects import ALL_SYMBOLS
from order_engine.book import (
    FILL,
    STP_CANCEL_MAKER,
    STP_CANCEL_TAKER,
    STP_CODES,
    Order,
    OrderBook,
)

Output = ExecReport | Trade
Command = NewOrder | CancelOrder | ReplaceOrder | CancelAll
_copy_with = msgspec.structs.replace
"""A copy of a Struct with some fields set (unrelated to MatchingEngine._replace, the command)."""

_CACHE_MAX = 100_000
_AVG_QUANTUM = Decimal("0.000001")
"""Average prices are rounded (half-even) to a millionth of a tick."""

_BUY, _SELL = Side.BUY, Side.SELL
_MARKET = OrderType.MARKET
_ACCEPTED = ExecType.ACCEPTED
_PARTIAL = ExecType.PARTIALLY_FILLED
_FILLED = ExecType.FILLED
_CANCELLED = ExecType.CANCELLED
_REPLACED = ExecType.REPLACED
_REJECTED = ExecType.REJECTED


class Rejected(Exception):
    """Raised inside the engine to turn a failed check into a reject report."""

    def __init__(self, reason: Reason, text: str) -> None:
        self.reason = reason
        self.text = text
        super().__init__(f"{reason}: {text}")


class SymbolState:
    """Everything the engine keeps for one symbol."""

    __slots__ = (
        "account_orders",
        "blank",
        "book",
        "book_seq",
        "coid_open",
        "inst",
        "last_quote",
        "lot",
        "lots_of",
        "next_oid",
        "next_trade",
        "prices",
        "qtys",
        "seq",
        "symbol",
        "tick",
        "ticks_of",
    )

    def __init__(self, inst: Instrument, venue: str) -> None:
        self.symbol = inst.symbol
        self.inst = inst
        self.tick = inst.tick
        self.lot = inst.lot
        self.book = OrderBook(inst.symbol)
        self.seq = 0
        """The last sequence number given to an output of this symbol."""
        self.book_seq = 0
        """`seq` when the last book delta was taken."""
        self.next_oid = 1
        self.next_trade = 1
        self.account_orders: dict[str, dict[int, Order]] = {}
        """Open orders per account by order id (cancel-all goes in order id order)."""
        self.coid_open: dict[str, int] = {}
        """How many open orders use a client order id (any account): tells NOT_OWNER from UNKNOWN_ORDER."""
        self.last_quote: tuple[int | None, int, int | None, int] | None = None
        self.prices: dict[int, Decimal] = {}
        self.qtys: dict[int, Decimal] = {}
        self.ticks_of = CheckedValues(inst, checked_ticks)
        self.lots_of = CheckedValues(inst, checked_lots)
        self.blank = ExecReport(
            account="", client_order_id="", exec_type=_ACCEPTED, symbol=inst.symbol, venue=venue
        )
        """What an order's first report starts from (reports are copies with fields set: see _report)."""

    # Ticks and lots become decimals only in reports; the same few values recur, so they are cached
    # (a dict lookup instead of a Decimal multiplication).

    def price(self, ticks: int) -> Decimal:
        px = self.prices.get(ticks)
        if px is None:
            if len(self.prices) > _CACHE_MAX:
                self.prices.clear()
            px = self.prices[ticks] = ticks * self.tick
        return px

    def average(self, notional: int, cum: int) -> Decimal | None:
        """The average price of `cum` lots filled for `notional` (ticks*lots); None before a fill."""
        if cum == 0:
            return None
        q, r = divmod(notional, cum)
        return self.price(q) if r == 0 else average_price(notional, cum, self.tick)

    def qty(self, lots: int) -> Decimal:
        q = self.qtys.get(lots)
        if q is None:
            if len(self.qtys) > _CACHE_MAX:
                self.qtys.clear()
            q = self.qtys[lots] = lots * self.lot
        return q


class MatchingEngine:
    """Books of the symbols this engine serves, the orders it knows, and the rules."""

    def __init__(
        self,
        instruments: Mapping[str, Instrument],
        *,
        venue: str = "nexus",
        symbols: Iterable[str] | None = None,
        memory: int = 100_000,
        primary: bool = True,
    ) -> None:
        """`symbols` limits the engine to a partition's share (default: every instrument); `memory` is
        how many closed orders and request answers are remembered for queries and duplicate checks;
        `primary` marks the partition that acknowledges account-wide cancel-alls."""
        owned = set(instruments) if symbols is None else set(symbols)
        self.instruments = dict(instruments)
        self.venue = venue
        self.memory = memory
        self.primary = primary
        self.syms: dict[str, SymbolState] = {
            s: SymbolState(inst, venue) for s, inst in sorted(instruments.items()) if s in owned
        }
        self.known: dict[tuple[str, str], Order | ExecReport] = {}
        """(account, client order id) -> the order (open or closed) or the answer to a request."""
        self.closed: deque[tuple[str, str]] = deque()
        """Keys of closed entries of `known`, oldest first; the oldest are forgotten beyond `memory`."""
        self.all_seq = 0
        """Sequence of the outputs of account-wide cancel-alls (symbol `_all`)."""
        # counters for the heartbeat
        self.commands_total = 0
        self.trades_total = 0
        self.rejects: dict[str, int] = {}

    # -- entry point --------------------------------------------------------------------------------

    def process(
        self, cmd: Command, ts: int, *, cancel_reason: str = Reason.CANCELLED_BY_CLIENT
    ) -> list[Output]:
        """Apply one command; return its outputs in publication order. `cancel_reason` is the reason the
        orders a cancel-all closes carry (CANCELLED_BY_RISK when the kill switch sent it)."""
        self.commands_total += 1
        out: list[Output] = []
        try:
            if type(cmd) is NewOrder:
                self._new(cmd, ts, out)
            elif type(cmd) is CancelOrder:
                self._cancel(cmd, ts, out)
            elif type(cmd) is ReplaceOrder:
                self._replace(cmd, ts, out)
            elif type(cmd) is CancelAll:
                self._cancel_all(cmd, ts, out, cancel_reason)
            else:
                raise Rejected(Reason.INVALID_FIELD, f"not an order command: {type(cmd).__name__}")
        except Rejected as rej:
            assert not out, "a command is rejected before it changes anything"
            if type(cmd) is CancelAll and not self.primary and cmd.symbol in (None, ALL_SYMBOLS):
                return out  # only the primary partition answers an account-wide cancel-all
            out.append(self._reject(cmd, rej.reason, rej.text, ts))
        return out

    def reject(self, cmd: Command, reason: str, text: str, ts: int) -> list[Output]:
        """A reject for a command that failed a check outside the engine (e.g. account not matching
        its subject); it takes a sequence number like every other output."""
        self.commands_total += 1
        return [self._reject(cmd, reason, text, ts)]

    def reject_raw(
        self, account: str, symbol: str, coid: str, reason: str, text: str, ts: int
    ) -> list[Output]:
        """A reject addressed from what the command's subject says: for bytes that did not decode, or a
        command whose account or symbol does not match the subject it was sent on."""
        self.commands_total += 1
        self._count_reject(reason)
        report = ExecReport(
            account=account,
            client_order_id=coid,
            exec_type=_REJECTED,
            symbol=symbol,
            reason=reason,
            text=text[:200],
            venue=self.venue,
            seq=self._next_seq(symbol),
            ts_event=ts,
        )
        return [report]

    # -- new orders ---------------------------------------------------------------------------------

    def _new(self, cmd: NewOrder, ts: int, out: list[Output]) -> None:
        st = self._symbol(cmd.symbol)
        if not st.inst.tradable:
            raise Rejected(Reason.INSTRUMENT_NOT_TRADABLE, f"{st.symbol} is not tradable")
        key = (cmd.account, cmd.client_order_id)
        self._check_new_key(key)
        lots = self._lots(st, cmd.qty)
        market = cmd.order_type is _MARKET
        is_buy = cmd.side is _BUY
        book = st.book
        ticks: int | None
        if market:
            if cmd.price is not None:
                raise Rejected(Reason.INVALID_FIELD, "a market order carries no price")
            if cmd.post_only:
                raise Rejected(Reason.INVALID_FIELD, "a market order cannot be post-only")
            ticks = None
        else:
            ticks = self._ticks(st, cmd.price)
            if cmd.post_only and cmd.tif is not TimeInForce.GTC:
                raise Rejected(Reason.INVALID_FIELD, "a post-only order must be GTC")
        if market and not (book.asks if is_buy else book.bids).keys:
            raise Rejected(Reason.NO_LIQUIDITY, "market order and the other side of the book is empty")
        if cmd.post_only and book.crosses(is_buy, ticks):
            raise Rejected(Reason.POST_ONLY_WOULD_TAKE, "post-only order would take liquidity")

        order = Order(
            st.next_oid,
            cmd.account,
            cmd.client_order_id,
            st.symbol,
            is_buy,
            0 if ticks is None else ticks,
            lots,
            STP_CODES[cmd.stp],
            cmd.ts,
            market,
            cmd.post_only,
        )
        st.next_oid += 1
        self.known[key] = order
        # The first report: the symbol's blank one with the order's own fields. Every later report of
        # the order is a copy of this one (see _report).
        st.seq += 1
        size = st.qty(lots)
        order.first = order.last = accepted = _copy_with(
            st.blank,
            account=order.account,
            client_order_id=order.coid,
            order_id=order.oid,
            side=cmd.side,
            order_type=cmd.order_type,
            price=None if market else st.price(order.price),
            qty=size,
            cum_qty=st.qty(0),
            leaves_qty=size,
            seq=st.seq,
            ts_cmd=order.ts_cmd,
            ts_event=ts,
        )
        out.append(accepted)

        tif = TimeInForce.IOC if market and cmd.tif is TimeInForce.GTC else cmd.tif
        if tif is TimeInForce.FOK and not book.fillable(order, ticks):
            out.append(self._close(st, order, Reason.FOK_NOT_FILLABLE, ts, "not enough liquidity to fill"))
            return
        if book.crosses(is_buy, ticks) and self._match(st, order, ticks, ts, out):
            return
        if tif is TimeInForce.GTC:
            self._rest(st, order)
        else:
            out.append(self._close(st, order, Reason.IOC_REMAINDER, ts, "unfilled remainder cancelled"))

    def _check_new_key(self, key: tuple[str, str]) -> None:
        if not key[1]:
            raise Rejected(Reason.INVALID_FIELD, "client_order_id must not be empty")
        if key in self.known:
            raise Rejected(Reason.DUPLICATE_ORDER_ID, f"client order id {key[1]!r} was already used")

    # -- matching -----------------------------------------------------------------------------------

    def _match(self, st: SymbolState, taker: Order, limit: int | None, ts: int, out: list[Output]) -> bool:
        """Trade `taker` against the book and report every event. True when the taker got its terminal
        report here (filled, or cancelled by self-trade prevention); False when something is left."""
        # The book updates both orders; the taker's reports need its state after each step.
        cum, leaves, qty, notional = taker.cum, taker.leaves, taker.qty, taker.notional
        events: list[tuple[Any, ...]] = []
        st.book.match(taker, limit, events)
        aggressor = _BUY if taker.is_buy else _SELL
        for tag, maker, lots, price in events:
            if tag == FILL:
                cum += lots
                leaves -= lots
                notional += lots * price
                trade_id = str(st.next_trade)
                st.next_trade += 1
                px = st.price(price)
                size = st.qty(lots)
                maker_leaves = maker.leaves
                maker.last = self._fill(
                    st, maker, maker_leaves, maker.cum, maker.notional, size, px, trade_id, "maker", ts
                )
                out.append(maker.last)
                if maker_leaves == 0:
                    self._unindex(st, maker)
                    self._closed(maker)
                taker.last = self._fill(
                    st, taker, leaves, cum, notional, size, px, trade_id, "taker", ts, qty
                )
                out.append(taker.last)
                st.seq += 1
                out.append(
                    Trade(
                        venue=self.venue,
                        symbol=st.symbol,
                        venue_symbol=st.symbol,
                        seq=st.seq,
                        ts_event=ts,
                        ts_recv=ts,
                        ts_pub=ts,
                        trade_id=trade_id,
                        price=px,
                        size=size,
                        aggressor=aggressor,
                    )
                )
                self.trades_total += 1
                if leaves == 0:
                    self._closed(taker)
                    return True
            elif tag == STP_CANCEL_MAKER:
                self._unindex(st, maker)
                out.append(self._close(st, maker, Reason.SELF_TRADE, ts, "resting order cancelled (STP)"))
            elif tag == STP_CANCEL_TAKER:
                taker.leaves = 0
                out.append(self._close(st, taker, Reason.SELF_TRADE, ts, "incoming order cancelled (STP)"))
                return True
            else:  # STP_DECREMENT_BOTH
                qty -= lots
                leaves -= lots
                if maker.leaves == 0:
                    self._unindex(st, maker)
                    out.append(self._close(st, maker, Reason.SELF_TRADE, ts, "decremented to zero (STP)"))
                else:
                    maker.last = self._report(
                        st, maker, _REPLACED, ts, reason=Reason.SELF_TRADE, text="decremented (STP)"
                    )
                    out.append(maker.last)
                if leaves == 0:
                    out.append(self._close(st, taker, Reason.SELF_TRADE, ts, "decremented to zero (STP)"))
                    return True
                taker.last = self._report(
                    st,
                    taker,
                    _REPLACED,
                    ts,
                    qty=qty,
                    cum=cum,
                    leaves=leaves,
                    notional=notional,
                    reason=Reason.SELF_TRADE,
                    text="decremented (STP)",
                )
                out.append(taker.last)
        return False

    # -- cancel and replace -------------------------------------------------------------------------

    def _target(self, st: SymbolState, account: str, orig: str) -> Order:
        """The open order a cancel or replace is about, or the reason it cannot be touched."""
        rec = self.known.get((account, orig))
        if type(rec) is Order and rec.symbol == st.symbol:
            if not rec.live:
                raise Rejected(Reason.ORDER_CLOSED, f"order {orig!r} is no longer open")
            return rec
        if rec is None and st.coid_open.get(orig):
            raise Rejected(Reason.NOT_OWNER, f"order {orig!r} belongs to another account")
        raise Rejected(Reason.UNKNOWN_ORDER, f"no order {orig!r} of {account} in {st.symbol}")

    def _cancel(self, cmd: CancelOrder, ts: int, out: list[Output]) -> None:
        st = self._symbol(cmd.symbol)
        key = (cmd.account, cmd.client_order_id)
        self._check_new_key(key)
        order = self._target(st, cmd.account, cmd.orig_client_order_id)
        self._unrest(st, order)
        report = self._report(
            st,
            order,
            _CANCELLED,
            ts,
            leaves=0,
            client_order_id=cmd.client_order_id,
            orig_client_order_id=order.coid,
            reason=Reason.CANCELLED_BY_CLIENT,
            ts_cmd=cmd.ts,
        )
        order.last = report
        self._closed(order)
        self._remember(key, report)
        out.append(report)

    def _replace(self, cmd: ReplaceOrder, ts: int, out: list[Output]) -> None:
        st = self._symbol(cmd.symbol)
        key = (cmd.account, cmd.client_order_id)
        self._check_new_key(key)
        order = self._target(st, cmd.account, cmd.orig_client_order_id)
        price = order.price if cmd.price is None else self._ticks(st, cmd.price)
        qty = order.qty if cmd.qty is None else self._lots(st, cmd.qty)
        if qty <= order.cum:
            raise Rejected(
                Reason.INVALID_FIELD, f"new quantity {cmd.qty} does not exceed the filled {st.qty(order.cum)}"
            )
        book = st.book
        if order.post_only and price != order.price:
            other = book.asks if order.is_buy else book.bids
            best = other.best()
            if best is not None and (price >= best if order.is_buy else price <= best):
                raise Rejected(Reason.POST_ONLY_WOULD_TAKE, "post-only order would take liquidity")

        if price == order.price and qty <= order.qty:
            # same price, same or smaller size: keeps its place in the queue
            if qty < order.qty:
                book.side(order.is_buy).reduce(order, order.qty - qty)
                order.qty = qty
            out.append(self._replaced(st, order, cmd, ts))
            return
        # a new price or a larger size: back of the queue (a new entry; the old one is dead)
        self._unrest(st, order)
        new = order.clone()
        new.price = price
        new.qty = qty
        new.leaves = qty - order.cum
        self.known[(order.account, order.coid)] = new
        out.append(self._replaced(st, new, cmd, ts))
        if not (book.crosses(new.is_buy, price) and self._match(st, new, price, ts, out)):
            self._rest(st, new)

    def _replaced(self, st: SymbolState, order: Order, cmd: ReplaceOrder, ts: int) -> ExecReport:
        report = self._report(
            st,
            order,
            _REPLACED,
            ts,
            client_order_id=cmd.client_order_id,
            orig_client_order_id=order.coid,
            ts_cmd=cmd.ts,
        )
        order.last = report
        self._remember((cmd.account, cmd.client_order_id), report)
        return report

    def _cancel_all(self, cmd: CancelAll, ts: int, out: list[Output], reason: str) -> None:
        everywhere = cmd.symbol is None or cmd.symbol == ALL_SYMBOLS
        scope = list(self.syms.values()) if everywhere else [self._symbol(cmd.symbol or "")]
        key = (cmd.account, cmd.client_order_id)
        if not key[1]:
            raise Rejected(Reason.INVALID_FIELD, "client_order_id must not be empty")
        if key in self.known:
            raise Rejected(Reason.DUPLICATE_ORDER_ID, f"client order id {key[1]!r} was already used")
        symbol = ALL_SYMBOLS if everywhere else scope[0].symbol
        ack = ExecReport(
            account=cmd.account,
            client_order_id=cmd.client_order_id,
            exec_type=_ACCEPTED,
            symbol=symbol,
            text="cancel_all",
            venue=self.venue,
            seq=0,
            ts_cmd=cmd.ts,
            ts_event=ts,
        )
        if not everywhere or self.primary:
            ack = _copy_with(ack, seq=self._next_seq(symbol))
            out.append(ack)
        self._remember(key, ack)
        for st in scope:
            orders = st.account_orders.get(cmd.account, {})
            for order in sorted(orders.values(), key=_by_order_id):
                self._unrest(st, order)
                report = self._report(
                    st,
                    order,
                    _CANCELLED,
                    ts,
                    leaves=0,
                    client_order_id=cmd.client_order_id,
                    orig_client_order_id=order.coid,
                    reason=reason,
                    ts_cmd=cmd.ts,
                )
                order.last = report
                self._closed(order)
                out.append(report)

    # -- book and memory bookkeeping ----------------------------------------------------------------

    def _rest(self, st: SymbolState, order: Order) -> None:
        st.book.add(order)
        st.account_orders.setdefault(order.account, {})[order.oid] = order
        st.coid_open[order.coid] = st.coid_open.get(order.coid, 0) + 1

    def _unrest(self, st: SymbolState, order: Order) -> None:
        st.book.remove(order)
        self._unindex(st, order)

    @staticmethod
    def _unindex(st: SymbolState, order: Order) -> None:
        orders = st.account_orders[order.account]
        del orders[order.oid]
        if not orders:
            del st.account_orders[order.account]
        n = st.coid_open[order.coid] - 1
        if n:
            st.coid_open[order.coid] = n
        else:
            del st.coid_open[order.coid]

    def _close(self, st: SymbolState, order: Order, reason: str, ts: int, text: str) -> ExecReport:
        """Cancel what is left of an order that is not on the book (or was just taken off by matching)."""
        report = self._report(st, order, _CANCELLED, ts, leaves=0, reason=reason, text=text)
        order.last = report
        order.leaves = 0
        self._closed(order)
        return report

    def _closed(self, order: Order) -> None:
        key = (order.account, order.coid)
        if self.known.get(key) is order:
            self._forget_beyond_memory(key)

    def _remember(self, key: tuple[str, str], answer: ExecReport) -> None:
        self.known[key] = answer
        self._forget_beyond_memory(key)

    def _forget_beyond_memory(self, key: tuple[str, str]) -> None:
        closed, known = self.closed, self.known
        closed.append(key)
        while len(closed) > self.memory:
            old = closed.popleft()
            rec = known.pop(old, None)
            if type(rec) is Order and rec.live:
                known[old] = rec  # open again under that id since: not forgotten

    # -- reports ------------------------------------------------------------------------------------

    def _fill(
        self,
        st: SymbolState,
        order: Order,
        leaves: int,
        cum: int,
        notional: int,
        size: Decimal,
        px: Decimal,
        trade_id: str,
        liquidity: str,
        ts: int,
        qty: int | None = None,
    ) -> ExecReport:
        """The report of a fill of `order`, with its state right after it (a taker's is passed in: the
        book has moved on past this fill by the time its reports are built). Positional: the hot path."""
        st.seq += 1
        first: ExecReport = order.first
        return _copy_with(
            first,
            exec_type=_PARTIAL if leaves else _FILLED,
            price=None if order.market else st.price(order.price),
            qty=st.qty(order.qty if qty is None else qty),
            last_qty=size,
            last_px=px,
            cum_qty=st.qty(cum),
            leaves_qty=st.qty(leaves),
            avg_px=st.average(notional, cum),
            trade_id=trade_id,
            liquidity=liquidity,
            seq=st.seq,
            ts_event=ts,
        )

    def _report(
        self,
        st: SymbolState,
        order: Order,
        exec_type: ExecType,
        ts: int,
        *,
        qty: int | None = None,
        cum: int | None = None,
        leaves: int | None = None,
        notional: int | None = None,
        client_order_id: str = "",
        orig_client_order_id: str = "",
        reason: str = "",
        text: str = "",
        ts_cmd: int | None = None,
    ) -> ExecReport:
        """Any other report of an accepted order: its first report (see _new) copied with what can have
        changed set (msgspec's replace sets a few fields about 3x faster than a Struct is built from
        keywords). Quantities are the order's unless given (a taker's during matching)."""
        st.seq += 1
        cum = order.cum if cum is None else cum
        first: ExecReport = order.first
        return _copy_with(
            first,
            exec_type=exec_type,
            client_order_id=client_order_id or order.coid,
            orig_client_order_id=orig_client_order_id,
            price=None if order.market else st.price(order.price),
            qty=st.qty(order.qty if qty is None else qty),
            cum_qty=st.qty(cum),
            leaves_qty=st.qty(order.leaves if leaves is None else leaves),
            avg_px=st.average(order.notional if notional is None else notional, cum),
            reason=reason,
            text=text,
            seq=st.seq,
            ts_cmd=order.ts_cmd if ts_cmd is None else ts_cmd,
            ts_event=ts,
        )

    def _reject(self, cmd: Command, reason: str, text: str, ts: int) -> ExecReport:
        self._count_reject(reason)
        symbol = _command_symbol(cmd)
        orig = getattr(cmd, "orig_client_order_id", "")
        report = ExecReport(
            account=cmd.account,
            client_order_id=cmd.client_order_id,
            exec_type=_REJECTED,
            symbol=symbol,
            orig_client_order_id=orig,
            side=getattr(cmd, "side", None),
            order_type=getattr(cmd, "order_type", None),
            price=cmd.price if isinstance(cmd, NewOrder) else None,
            qty=cmd.qty if isinstance(cmd, NewOrder) else None,
            cum_qty=Decimal(0),
            leaves_qty=Decimal(0),
            reason=reason,
            text=text,
            venue=self.venue,
            seq=self._next_seq(symbol),
            ts_cmd=cmd.ts,
            ts_event=ts,
        )
        key = (cmd.account, cmd.client_order_id)
        if reason != Reason.DUPLICATE_ORDER_ID and cmd.client_order_id and key not in self.known:
            self._remember(key, report)
        return report

    def _count_reject(self, reason: str) -> None:
        self.rejects[reason] = self.rejects.get(reason, 0) + 1

    def _next_seq(self, symbol: str) -> int:
        """The next sequence number of `symbol`; 0 for a symbol this engine does not serve."""
        st = self.syms.get(symbol)
        if st is not None:
            st.seq += 1
            return st.seq
        if symbol == ALL_SYMBOLS:
            self.all_seq += 1
            return self.all_seq
        return 0

    # -- conversions --------------------------------------------------------------------------------

    def _symbol(self, symbol: str) -> SymbolState:
        st = self.syms.get(symbol)
        if st is None:
            if symbol in self.instruments:
                raise Rejected(Reason.UNKNOWN_SYMBOL, f"{symbol} is not served by this engine partition")
            raise Rejected(Reason.UNKNOWN_SYMBOL, f"unknown symbol {symbol!r}")
        return st

    @staticmethod
    def _lots(st: SymbolState, qty: Decimal) -> int:
        try:
            return st.lots_of[qty]
        except TypeError:  # a signalling NaN cannot be hashed
            return checked_lots(st.inst, qty)

    @staticmethod
    def _ticks(st: SymbolState, price: Decimal | None) -> int:
        if price is None:
            raise Rejected(Reason.PRICE_REQUIRED, "a limit order needs a price")
        try:
            return st.ticks_of[price]
        except TypeError:  # a signalling NaN cannot be hashed
            return checked_ticks(st.inst, price)

    # -- queries and market data --------------------------------------------------------------------

    def query(self, account: str, coid: str, *, latest: bool = False) -> ExecReport | None:
        """The first answer to a command (accepted/rejected, cancelled, replaced), or with `latest` the
        latest report about that order; None when the engine does not know (or no longer remembers) it."""
        rec = self.known.get((account, coid))
        if rec is None or type(rec) is ExecReport:
            return rec
        assert type(rec) is Order
        report: ExecReport = rec.last if latest else rec.first
        return report

    def serves(self, symbol: str) -> bool:
        return symbol in self.syms

    def open_orders(self, account: str | None = None) -> list[Order]:
        out: list[Order] = []
        for st in self.syms.values():
            if account is None:
                for orders in st.account_orders.values():
                    out.extend(orders.values())
            else:
                out.extend(st.account_orders.get(account, {}).values())
        return out

    def snapshot(self, symbol: str, depth: int | None = 10, ts: int = 0) -> BookSnapshot:
        """L2 of one symbol (best first); `seq` is the last output of the symbol it includes."""
        st = self._symbol(symbol)
        return BookSnapshot(
            venue=self.venue,
            symbol=st.symbol,
            venue_symbol=st.symbol,
            seq=st.seq,
            ts_event=ts,
            ts_pub=ts,
            bids=tuple((st.price(p), st.qty(s)) for p, s in st.book.bids.depth(depth)),
            asks=tuple((st.price(p), st.qty(s)) for p, s in st.book.asks.depth(depth)),
        )

    def book_updates(self, ts: int) -> list[BookDelta | Quote]:
        """Book deltas (changed levels, absolute sizes) and top-of-book quotes since the last call.
        A delta covers outputs `first_seq`..`seq` of its symbol; apply those with `seq` above a snapshot's."""
        out: list[BookDelta | Quote] = []
        for st in self.syms.values():
            book = st.book
            if not (book.bids.dirty or book.asks.dirty):
                continue
            bids, asks = book.take_changes()
            if st.seq == st.book_seq:
                continue
            out.append(
                BookDelta(
                    venue=self.venue,
                    symbol=st.symbol,
                    venue_symbol=st.symbol,
                    seq=st.seq,
                    first_seq=st.book_seq + 1,
                    ts_event=ts,
                    ts_pub=ts,
                    bids=tuple((st.price(p), st.qty(bids[p])) for p in sorted(bids, reverse=True)),
                    asks=tuple((st.price(p), st.qty(asks[p])) for p in sorted(asks)),
                )
            )
            st.book_seq = st.seq
            quote = self._quote(st, ts, force=False)
            if quote is not None:
                out.append(quote)
        return out

    def _quote(self, st: SymbolState, ts: int, *, force: bool) -> Quote | None:
        bid, ask = st.book.bids.best(), st.book.asks.best()
        top = (
            bid,
            st.book.bids.levels[bid].size if bid is not None else 0,
            ask,
            st.book.asks.levels[ask].size if ask is not None else 0,
        )
        if top == st.last_quote and not force:
            return None
        st.last_quote = top
        return Quote(
            venue=self.venue,
            symbol=st.symbol,
            venue_symbol=st.symbol,
            seq=st.seq,
            ts_event=ts,
            ts_pub=ts,
            bid_px=None if bid is None else st.price(bid),
            bid_sz=st.qty(top[1]),
            ask_px=None if ask is None else st.price(ask),
            ask_sz=st.qty(top[3]),
        )

    def full_book(self, ts: int, depth: int | None = None) -> list[BookSnapshot | Quote]:
        """A snapshot and a quote of every symbol (published after start-up so consumers resync)."""
        out: list[BookSnapshot | Quote] = []
        for st in self.syms.values():
            st.book.take_changes()
            st.book_seq = st.seq
            out.append(self.snapshot(st.symbol, depth, ts))
            quote = self._quote(st, ts, force=True)
            assert quote is not None
            out.append(quote)
        return out

    def stats(self) -> dict[str, float]:
        out: dict[str, float] = {
            "commands_total": float(self.commands_total),
            "trades_total": float(self.trades_total),
            "rejects_total": float(sum(self.rejects.values())),
            "open_orders": float(len(self.open_orders())),
            "known_orders": float(len(self.known)),
        }
        for reason, n in self.rejects.items():
            out[f"rejects_{reason.lower()}_total"] = float(n)
        return out


class CheckedValues(dict[Decimal, int]):
    """Prices (or quantities) of one instrument that passed `check`, as ticks (or lots). The same values
    recur: one seen before is a dict lookup (~26 ns) instead of the checks and a Decimal division
    (~300 ns). A value not seen before is checked, and remembered only if it passes (Rejected otherwise).
    Equal decimals are one key: 100 and 100.0 are the same number of lots."""

    __slots__ = ("check", "inst")

    def __init__(self, inst: Instrument, check: Callable[[Instrument, Decimal], int]) -> None:
        super().__init__()
        self.inst = inst
        self.check = check

    def __missing__(self, value: Decimal) -> int:
        n = self.check(self.inst, value)
        if len(self) >= _CACHE_MAX:
            self.clear()
        self[value] = n
        return n


def checked_lots(inst: Instrument, qty: Decimal) -> int:
    if not qty.is_finite():
        raise Rejected(Reason.INVALID_FIELD, f"quantity {qty} is not a number")
    if qty <= 0:
        raise Rejected(Reason.QTY_NOT_POSITIVE, f"quantity {qty} must be > 0")
    if qty > inst.max_qty:
        raise Rejected(Reason.QTY_ABOVE_MAX, f"quantity {qty} is above the maximum {inst.max_qty}")
    if qty < inst.min_qty:
        raise Rejected(Reason.QTY_BELOW_MIN, f"quantity {qty} is below the minimum {inst.min_qty}")
    lots = inst.to_lots(qty)
    if lots is None:
        raise Rejected(Reason.QTY_NOT_LOT_MULTIPLE, f"quantity {qty} is not a multiple of {inst.lot}")
    return lots


def checked_ticks(inst: Instrument, price: Decimal) -> int:
    if not price.is_finite():
        raise Rejected(Reason.INVALID_FIELD, f"price {price} is not a number")
    if price <= 0:
        raise Rejected(Reason.PRICE_NOT_POSITIVE, f"price {price} must be > 0")
    try:
        ticks = inst.to_ticks(price)
    except InvalidOperation:
        raise Rejected(Reason.INVALID_FIELD, f"price {price} is out of range") from None
    if ticks is None:
        raise Rejected(Reason.PRICE_OFF_TICK, f"price {price} is not a multiple of the tick {inst.tick}")
    return ticks


def average_price(notional: int, cum: int, tick: Decimal) -> Decimal | None:
    """notional (ticks*lots) / cum (lots) as a price, rounded half-even to a millionth of a tick."""
    if cum == 0:
        return None
    q, r = divmod(notional, cum)
    if r == 0:
        return q * tick
    return (Decimal(notional) / Decimal(cum)).quantize(_AVG_QUANTUM) * tick


def _by_order_id(order: Order) -> int:
    return order.oid


def _command_symbol(cmd: Command) -> str:
    if isinstance(cmd, CancelAll):
        return cmd.symbol or ALL_SYMBOLS
    return cmd.symbol
