"""A deliberately naive reference model of the matching rules, written separately from the engine.

Decimals instead of ticks and lots, one flat list of resting orders per symbol, the queue re-sorted on
every step, linear scans for everything. It exists to be obviously right, not fast: the differential test
runs the same seeded command stream through it and through the engine and compares every output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from nexus.instruments import Instrument
from nexus.messages import (
    CancelAll,
    CancelOrder,
    ExecReport,
    ExecType,
    NewOrder,
    OrderType,
    Reason,
    ReplaceOrder,
    Side,
    StpMode,
    TimeInForce,
    Trade,
)

ALL = "_all"
VENUE = "nexus"


class Reject(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason


@dataclass
class RefOrder:
    account: str
    coid: str
    symbol: str
    side: Side
    price: Decimal | None
    qty: Decimal
    oid: int
    prio: int
    stp: StpMode
    market: bool
    post_only: bool
    ts_cmd: int
    cum: Decimal = Decimal(0)
    value: Decimal = Decimal(0)
    open: bool = False
    first: ExecReport | None = None
    last: ExecReport | None = None

    @property
    def leaves(self) -> Decimal:
        return self.qty - self.cum


@dataclass
class RefSymbol:
    inst: Instrument
    resting: list[RefOrder] = field(default_factory=list)
    seq: int = 0
    oid: int = 0
    trades: int = 0


class Reference:
    def __init__(self, instruments: dict[str, Instrument], memory: int) -> None:
        self.instruments = instruments
        self.syms = {s: RefSymbol(i) for s, i in instruments.items()}
        self.known: dict[tuple[str, str], Any] = {}
        self.closed: list[tuple[str, str]] = []
        self.memory = memory
        self.all_seq = 0
        self.prio = 0
        self.out: list[Any] = []
        self.ts = 0

    # -- helpers ------------------------------------------------------------------------------------

    def seq(self, symbol: str) -> int:
        if symbol in self.syms:
            self.syms[symbol].seq += 1
            return self.syms[symbol].seq
        if symbol == ALL:
            self.all_seq += 1
            return self.all_seq
        return 0

    def forget(self, key: tuple[str, str]) -> None:
        self.closed.append(key)
        while len(self.closed) > self.memory:
            old = self.closed.pop(0)
            rec = self.known.get(old)
            if rec is not None and not (isinstance(rec, RefOrder) and rec.open):
                del self.known[old]

    def close(self, o: RefOrder) -> None:
        o.open = False
        if self.known.get((o.account, o.coid)) is o:
            self.forget((o.account, o.coid))

    def avg(self, o: RefOrder) -> Decimal | None:
        if o.cum == 0:
            return None
        tick = self.syms[o.symbol].inst.tick
        avg_ticks = o.value / o.cum / tick
        if avg_ticks == avg_ticks.to_integral_value():
            return avg_ticks * tick
        return avg_ticks.quantize(Decimal("0.000001")) * tick

    def report(self, o: RefOrder, kind: ExecType, **kw: Any) -> ExecReport:
        fields: dict[str, Any] = {
            "account": o.account,
            "client_order_id": o.coid,
            "exec_type": kind,
            "symbol": o.symbol,
            "order_id": o.oid,
            "side": o.side,
            "order_type": OrderType.MARKET if o.market else OrderType.LIMIT,
            "price": o.price,
            "qty": o.qty,
            "cum_qty": o.cum,
            "leaves_qty": o.leaves,
            "avg_px": self.avg(o),
            "venue": VENUE,
            "seq": self.seq(o.symbol),
            "ts_cmd": o.ts_cmd,
            "ts_event": self.ts,
        }
        fields.update(kw)
        r = ExecReport(**fields)
        self.out.append(r)
        return r

    def queue(self, sym: RefSymbol, side: Side) -> list[RefOrder]:
        """Resting orders of one side, best first then oldest first."""
        orders = [o for o in sym.resting if o.side == side]
        if side == Side.BUY:
            return sorted(orders, key=lambda o: (-(o.price or 0), o.prio))
        return sorted(orders, key=lambda o: (o.price or 0, o.prio))

    @staticmethod
    def acceptable(taker_side: Side, limit: Decimal | None, price: Decimal) -> bool:
        if limit is None:
            return True
        return price <= limit if taker_side == Side.BUY else price >= limit

    def check_qty(self, inst: Instrument, qty: Decimal) -> None:
        if not qty.is_finite():
            raise Reject(Reason.INVALID_FIELD)
        if qty <= 0:
            raise Reject(Reason.QTY_NOT_POSITIVE)
        if qty > inst.max_qty:
            raise Reject(Reason.QTY_ABOVE_MAX)
        if qty < inst.min_qty:
            raise Reject(Reason.QTY_BELOW_MIN)
        if qty % inst.lot != 0:
            raise Reject(Reason.QTY_NOT_LOT_MULTIPLE)

    def check_price(self, inst: Instrument, price: Decimal | None) -> None:
        if price is None:
            raise Reject(Reason.PRICE_REQUIRED)
        if not price.is_finite():
            raise Reject(Reason.INVALID_FIELD)
        if price <= 0:
            raise Reject(Reason.PRICE_NOT_POSITIVE)
        if price % inst.tick != 0:
            raise Reject(Reason.PRICE_OFF_TICK)

    def check_key(self, account: str, coid: str) -> None:
        if not coid:
            raise Reject(Reason.INVALID_FIELD)
        if (account, coid) in self.known:
            raise Reject(Reason.DUPLICATE_ORDER_ID)

    def symbol(self, name: str) -> RefSymbol:
        if name not in self.syms:
            raise Reject(Reason.UNKNOWN_SYMBOL)
        return self.syms[name]

    # -- commands -----------------------------------------------------------------------------------

    def process(self, cmd: Any, ts: int) -> list[Any]:
        self.out = []
        self.ts = ts
        try:
            if isinstance(cmd, NewOrder):
                self.new(cmd)
            elif isinstance(cmd, CancelOrder):
                self.cancel(cmd)
            elif isinstance(cmd, ReplaceOrder):
                self.replace(cmd)
            else:
                self.cancel_all(cmd)
        except Reject as rej:
            assert not self.out
            self.reject(cmd, rej.reason)
        return self.out

    def reject(self, cmd: Any, reason: str) -> None:
        symbol = cmd.symbol if not isinstance(cmd, CancelAll) else (cmd.symbol or ALL)
        is_new = isinstance(cmd, NewOrder)
        r = ExecReport(
            account=cmd.account,
            client_order_id=cmd.client_order_id,
            exec_type=ExecType.REJECTED,
            symbol=symbol,
            orig_client_order_id=getattr(cmd, "orig_client_order_id", ""),
            side=cmd.side if is_new else None,
            order_type=cmd.order_type if is_new else None,
            price=cmd.price if is_new else None,
            qty=cmd.qty if is_new else None,
            cum_qty=Decimal(0),
            leaves_qty=Decimal(0),
            reason=reason,
            venue=VENUE,
            seq=self.seq(symbol),
            ts_cmd=cmd.ts,
            ts_event=self.ts,
        )
        self.out.append(r)
        key = (cmd.account, cmd.client_order_id)
        if reason != Reason.DUPLICATE_ORDER_ID and cmd.client_order_id and key not in self.known:
            self.known[key] = r
            self.forget(key)

    def new(self, cmd: NewOrder) -> None:
        sym = self.symbol(cmd.symbol)
        inst = sym.inst
        if not inst.tradable:
            raise Reject(Reason.INSTRUMENT_NOT_TRADABLE)
        self.check_key(cmd.account, cmd.client_order_id)
        self.check_qty(inst, cmd.qty)
        market = cmd.order_type == OrderType.MARKET
        if market:
            if cmd.price is not None or cmd.post_only:
                raise Reject(Reason.INVALID_FIELD)
        else:
            self.check_price(inst, cmd.price)
            if cmd.post_only and cmd.tif != TimeInForce.GTC:
                raise Reject(Reason.INVALID_FIELD)
        other = self.queue(sym, cmd.side.opposite)
        if market and not other:
            raise Reject(Reason.NO_LIQUIDITY)
        if cmd.post_only and other and self.acceptable(cmd.side, cmd.price, other[0].price or Decimal(0)):
            raise Reject(Reason.POST_ONLY_WOULD_TAKE)
        sym.oid += 1
        self.prio += 1
        o = RefOrder(
            account=cmd.account,
            coid=cmd.client_order_id,
            symbol=cmd.symbol,
            side=cmd.side,
            price=cmd.price,
            qty=cmd.qty,
            oid=sym.oid,
            prio=self.prio,
            stp=cmd.stp,
            market=market,
            post_only=cmd.post_only,
            ts_cmd=cmd.ts,
        )
        self.known[(o.account, o.coid)] = o
        o.first = o.last = self.report(o, ExecType.ACCEPTED)
        tif = cmd.tif
        if market and tif == TimeInForce.GTC:
            tif = TimeInForce.IOC
        if tif == TimeInForce.FOK and not self.fillable(sym, o):
            self.cancel_rest(o, Reason.FOK_NOT_FILLABLE)
            return
        if self.match(sym, o):
            return
        if tif == TimeInForce.GTC:
            o.open = True
            sym.resting.append(o)
        else:
            self.cancel_rest(o, Reason.IOC_REMAINDER)

    def cancel_rest(self, o: RefOrder, reason: str) -> None:
        o.last = self.report(o, ExecType.CANCELLED, leaves_qty=Decimal(0), reason=reason)
        self.close(o)

    def fillable(self, sym: RefSymbol, o: RefOrder) -> bool:
        need = o.qty
        for m in self.queue(sym, o.side.opposite):
            if not self.acceptable(o.side, o.price, m.price or Decimal(0)):
                return False
            if m.account == o.account:
                return False
            need -= m.leaves
            if need <= 0:
                return True
        return False

    def take(self, sym: RefSymbol, m: RefOrder) -> None:
        sym.resting.remove(m)

    def match(self, sym: RefSymbol, t: RefOrder) -> bool:
        """True when the taker got its terminal report here."""
        while t.leaves > 0:
            other = self.queue(sym, t.side.opposite)
            if not other:
                return False
            m = other[0]
            assert m.price is not None
            if not self.acceptable(t.side, t.price, m.price):
                return False
            if m.account == t.account:
                if t.stp == StpMode.CANCEL_NEWEST:
                    self.cancel_rest(t, Reason.SELF_TRADE)
                    return True
                if t.stp == StpMode.CANCEL_OLDEST:
                    self.take(sym, m)
                    self.cancel_rest(m, Reason.SELF_TRADE)
                    continue
                if t.stp == StpMode.CANCEL_BOTH:
                    self.take(sym, m)
                    self.cancel_rest(m, Reason.SELF_TRADE)
                    self.cancel_rest(t, Reason.SELF_TRADE)
                    return True
                d = min(t.leaves, m.leaves)
                t.qty -= d
                m.qty -= d
                if m.leaves == 0:
                    self.take(sym, m)
                    self.cancel_rest(m, Reason.SELF_TRADE)
                else:
                    m.last = self.report(m, ExecType.REPLACED, reason=Reason.SELF_TRADE)
                if t.leaves == 0:
                    self.cancel_rest(t, Reason.SELF_TRADE)
                    return True
                t.last = self.report(t, ExecType.REPLACED, reason=Reason.SELF_TRADE)
                continue
            q = min(t.leaves, m.leaves)
            px = m.price
            sym.trades += 1
            trade_id = str(sym.trades)
            for o in (m, t):
                o.cum += q
                o.value += q * px
            m.last = self.report(
                m,
                ExecType.FILLED if m.leaves == 0 else ExecType.PARTIALLY_FILLED,
                last_qty=q,
                last_px=px,
                trade_id=trade_id,
                liquidity="maker",
            )
            if m.leaves == 0:
                self.take(sym, m)
                self.close(m)
            t.last = self.report(
                t,
                ExecType.FILLED if t.leaves == 0 else ExecType.PARTIALLY_FILLED,
                last_qty=q,
                last_px=px,
                trade_id=trade_id,
                liquidity="taker",
            )
            self.out.append(
                Trade(
                    venue=VENUE,
                    symbol=sym.inst.symbol,
                    venue_symbol=sym.inst.symbol,
                    seq=self.seq(sym.inst.symbol),
                    ts_event=self.ts,
                    ts_recv=self.ts,
                    ts_pub=self.ts,
                    trade_id=trade_id,
                    price=px,
                    size=q,
                    aggressor=t.side,
                )
            )
            if t.leaves == 0:
                self.close(t)
                return True
        return False

    def target(self, sym: RefSymbol, account: str, orig: str) -> RefOrder:
        rec = self.known.get((account, orig))
        if isinstance(rec, RefOrder) and rec.symbol == sym.inst.symbol:
            if not rec.open:
                raise Reject(Reason.ORDER_CLOSED)
            return rec
        if rec is None and any(o.coid == orig for o in sym.resting):
            raise Reject(Reason.NOT_OWNER)
        raise Reject(Reason.UNKNOWN_ORDER)

    def cancel(self, cmd: CancelOrder) -> None:
        sym = self.symbol(cmd.symbol)
        self.check_key(cmd.account, cmd.client_order_id)
        o = self.target(sym, cmd.account, cmd.orig_client_order_id)
        self.take(sym, o)
        o.last = r = self.report(
            o,
            ExecType.CANCELLED,
            leaves_qty=Decimal(0),
            client_order_id=cmd.client_order_id,
            orig_client_order_id=o.coid,
            reason=Reason.CANCELLED_BY_CLIENT,
            ts_cmd=cmd.ts,
        )
        self.close(o)
        self.known[(cmd.account, cmd.client_order_id)] = r
        self.forget((cmd.account, cmd.client_order_id))

    def replace(self, cmd: ReplaceOrder) -> None:
        sym = self.symbol(cmd.symbol)
        self.check_key(cmd.account, cmd.client_order_id)
        o = self.target(sym, cmd.account, cmd.orig_client_order_id)
        price = o.price
        if cmd.price is not None:
            self.check_price(sym.inst, cmd.price)
            price = cmd.price
        qty = o.qty
        if cmd.qty is not None:
            self.check_qty(sym.inst, cmd.qty)
            qty = cmd.qty
        if qty <= o.cum:
            raise Reject(Reason.INVALID_FIELD)
        assert price is not None
        assert o.price is not None
        if o.post_only and price != o.price:
            other = self.queue(sym, o.side.opposite)
            if other and self.acceptable(o.side, price, other[0].price or Decimal(0)):
                raise Reject(Reason.POST_ONLY_WOULD_TAKE)
        keeps = price == o.price and qty <= o.qty
        o.price = price
        o.qty = qty
        key = (cmd.account, cmd.client_order_id)
        o.last = r = self.report(
            o,
            ExecType.REPLACED,
            client_order_id=cmd.client_order_id,
            orig_client_order_id=o.coid,
            ts_cmd=cmd.ts,
        )
        self.known[key] = r
        self.forget(key)
        if keeps:
            return
        self.take(sym, o)
        self.prio += 1
        o.prio = self.prio
        if not self.match(sym, o):
            sym.resting.append(o)

    def cancel_all(self, cmd: CancelAll) -> None:
        everywhere = cmd.symbol in (None, ALL)
        scope = sorted(self.syms) if everywhere else [self.symbol(cmd.symbol or "").inst.symbol]
        self.check_key(cmd.account, cmd.client_order_id)
        symbol = ALL if everywhere else scope[0]
        ack = ExecReport(
            account=cmd.account,
            client_order_id=cmd.client_order_id,
            exec_type=ExecType.ACCEPTED,
            symbol=symbol,
            venue=VENUE,
            seq=self.seq(symbol),
            ts_cmd=cmd.ts,
            ts_event=self.ts,
        )
        self.out.append(ack)
        key = (cmd.account, cmd.client_order_id)
        self.known[key] = ack
        self.forget(key)
        for s in scope:
            sym = self.syms[s]
            for o in sorted((o for o in sym.resting if o.account == cmd.account), key=lambda o: o.oid):
                self.take(sym, o)
                o.last = self.report(
                    o,
                    ExecType.CANCELLED,
                    leaves_qty=Decimal(0),
                    client_order_id=cmd.client_order_id,
                    orig_client_order_id=o.coid,
                    reason=Reason.CANCELLED_BY_CLIENT,
                    ts_cmd=cmd.ts,
                )
                self.close(o)

    # -- views --------------------------------------------------------------------------------------

    def levels(self, symbol: str, side: Side) -> list[tuple[Decimal, Decimal]]:
        out: dict[Decimal, Decimal] = {}
        for o in self.queue(self.syms[symbol], side):
            assert o.price is not None
            out[o.price] = out.get(o.price, Decimal(0)) + o.leaves
        return list(out.items())

    def resting(self, symbol: str, side: Side) -> list[tuple[str, str, Decimal, Decimal]]:
        return [
            (o.account, o.coid, o.price or Decimal(0), o.leaves) for o in self.queue(self.syms[symbol], side)
        ]
