"""The engine's state as data: what a snapshot holds, and how an engine is rebuilt from it.

A snapshot is taken between batches, when every output of the commands it includes has been stored, so
"the state after input sequence N" plus "replay from N+1" is the whole story. Resting orders are kept in
priority order (that is the book); closed orders and request answers in the order they closed (that is
what the engine forgets first).
"""

from __future__ import annotations

import msgspec

from nexus.messages import ExecReport
from order_engine.book import Order
from order_engine.engine import MatchingEngine

VERSION = 1


class OrderState(msgspec.Struct, array_like=True, frozen=True):
    oid: int
    account: str
    coid: str
    is_buy: bool
    price: int
    qty: int
    leaves: int
    cum: int
    notional: int
    stp: int
    ts_cmd: int
    market: bool
    post_only: bool
    first: ExecReport | None
    last: ExecReport | None


class SymbolData(msgspec.Struct, array_like=True, frozen=True):
    symbol: str
    seq: int
    book_seq: int
    next_oid: int
    next_trade: int
    bids: list[OrderState]
    asks: list[OrderState]


class Closed(msgspec.Struct, array_like=True, frozen=True):
    """A closed order (`order`, with its symbol) or the answer to a request (`answer`)."""

    account: str
    coid: str
    symbol: str = ""
    order: OrderState | None = None
    answer: ExecReport | None = None


class EngineState(msgspec.Struct, frozen=True):
    venue: str
    all_seq: int
    symbols: list[SymbolData]
    closed: list[Closed]
    commands_total: int = 0
    trades_total: int = 0
    rejects: dict[str, int] = msgspec.field(default_factory=dict)


class Snapshot(msgspec.Struct, frozen=True):
    """An engine partition's state after input stream sequence `in_seq` (all of whose outputs are
    stored)."""

    in_stream: str
    in_seq: int
    partition: int
    partitions: int
    engine: EngineState
    ts: int = 0
    version: int = VERSION


def _order_state(o: Order) -> OrderState:
    return OrderState(
        o.oid,
        o.account,
        o.coid,
        o.is_buy,
        o.price,
        o.qty,
        o.leaves,
        o.cum,
        o.notional,
        o.stp,
        o.ts_cmd,
        o.market,
        o.post_only,
        o.first,
        o.last,
    )


def _order(s: OrderState, symbol: str) -> Order:
    o = Order(
        s.oid, s.account, s.coid, symbol, s.is_buy, s.price, s.qty, s.stp, s.ts_cmd, s.market, s.post_only
    )
    o.leaves = s.leaves
    o.cum = s.cum
    o.notional = s.notional
    o.first = s.first
    o.last = s.last
    return o


def export(engine: MatchingEngine) -> EngineState:
    symbols = [
        SymbolData(
            st.symbol,
            st.seq,
            st.book_seq,
            st.next_oid,
            st.next_trade,
            [_order_state(o) for o in st.book.bids.orders()],
            [_order_state(o) for o in st.book.asks.orders()],
        )
        for st in engine.syms.values()
    ]
    closed = []
    for key in engine.closed:
        rec = engine.known.get(key)
        if isinstance(rec, Order):
            closed.append(Closed(key[0], key[1], rec.symbol, order=_order_state(rec)))
        elif rec is not None:
            closed.append(Closed(key[0], key[1], answer=rec))
    return EngineState(
        venue=engine.venue,
        all_seq=engine.all_seq,
        symbols=symbols,
        closed=closed,
        commands_total=engine.commands_total,
        trades_total=engine.trades_total,
        rejects=dict(engine.rejects),
    )


def restore(engine: MatchingEngine, state: EngineState) -> None:
    """Load `state` into a freshly built engine (same instruments and partition)."""
    if engine.known or engine.closed:
        raise ValueError("restore needs a fresh engine")
    engine.all_seq = state.all_seq
    engine.commands_total = state.commands_total
    engine.trades_total = state.trades_total
    engine.rejects = dict(state.rejects)
    for data in state.symbols:
        st = engine.syms.get(data.symbol)
        if st is None:
            raise ValueError(f"snapshot has symbol {data.symbol} that this engine does not serve")
        st.seq, st.book_seq, st.next_oid, st.next_trade = (
            data.seq,
            data.book_seq,
            data.next_oid,
            data.next_trade,
        )
        for s in (*data.bids, *data.asks):
            order = _order(s, data.symbol)
            engine._rest(st, order)
            engine.known[(order.account, order.coid)] = order
    for c in state.closed:
        key = (c.account, c.coid)
        if c.order is not None:
            engine.known[key] = _order(c.order, c.symbol)
        elif c.answer is not None:
            engine.known[key] = c.answer
        engine.closed.append(key)


def encode(snapshot: Snapshot) -> bytes:
    return msgspec.msgpack.encode(snapshot)


def decode(data: bytes) -> Snapshot:
    return msgspec.msgpack.decode(data, type=Snapshot)
