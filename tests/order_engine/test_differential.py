"""Differential test: a seeded stream of 100k commands through the engine and through the naive reference
model; every output must be identical, and after every command the books are uncrossed and every lot is
accounted for."""

from __future__ import annotations

import time
from collections import Counter
from decimal import Decimal

import msgspec

from nexus.messages import ExecReport, ExecType, NewOrder, Reason, Side, StpMode, Trade
from order_engine.engine import MatchingEngine, Output
from tests.order_engine.gen import INSTRUMENTS, commands
from tests.order_engine.reference import Reference

N_COMMANDS = 100_000
MEMORY = 3_000  # small, so forgetting old orders is exercised too


def _comparable(out: Output | object) -> object:
    # `text` is for people and worded differently by each implementation; everything else must match.
    return msgspec.structs.replace(out, text="") if isinstance(out, ExecReport) else out


class Ledger:
    """Follows every order through its reports and checks that quantities are conserved."""

    def __init__(self) -> None:
        self.orders: dict[tuple[str, str, str], tuple[Decimal, Decimal]] = {}  # -> (cum, leaves)
        self.resting: Counter[tuple[str, Side]] = Counter()

    def apply(self, outputs: list[Output]) -> None:
        trades = maker = taker = Decimal(0)
        for out in outputs:
            if isinstance(out, Trade):
                trades += out.size
                continue
            if out.exec_type is ExecType.REJECTED or out.order_id == 0:
                continue
            assert out.cum_qty is not None
            assert out.leaves_qty is not None
            assert out.qty is not None
            assert out.side is not None
            key = (out.symbol, out.account, out.orig_client_order_id or out.client_order_id)
            cum, leaves = self.orders.get(key, (Decimal(0), Decimal(0)))
            filled = out.last_qty or Decimal(0)
            assert out.cum_qty == cum + filled, out
            assert out.cum_qty + out.leaves_qty <= out.qty, out
            if out.liquidity == "maker":
                maker += filled
            elif out.liquidity == "taker":
                taker += filled
            self.resting[(out.symbol, out.side)] += out.leaves_qty - leaves
            if out.leaves_qty:
                self.orders[key] = (out.cum_qty, out.leaves_qty)
            else:
                self.orders.pop(key, None)
        assert trades == maker == taker, (trades, maker, taker)


def _check_books(engine: MatchingEngine, ledger: Ledger) -> None:
    for symbol, st in engine.syms.items():
        bid, ask = st.book.bids.best(), st.book.asks.best()
        assert bid is None or ask is None or bid < ask, f"{symbol} crossed: {bid} >= {ask}"
        bids, asks = st.book.total()
        assert bids * st.lot == ledger.resting[(symbol, Side.BUY)], symbol
        assert asks * st.lot == ledger.resting[(symbol, Side.SELL)], symbol


def test_engine_equals_reference_model_on_100k_random_commands() -> None:
    engine = MatchingEngine(INSTRUMENTS, memory=MEMORY)
    ref = Reference(INSTRUMENTS, memory=MEMORY)
    ledger = Ledger()
    seen: Counter[str] = Counter()
    t0 = time.perf_counter()
    for i, cmd in enumerate(commands(seed=20240607, n=N_COMMANDS)):
        got = engine.process(cmd, i)
        want = ref.process(cmd, i)
        if [_comparable(o) for o in got] != [_comparable(o) for o in want]:
            lines = [f"command {i}: {cmd}", "engine:", *map(str, got), "reference:", *map(str, want)]
            raise AssertionError("\n".join(lines))
        ledger.apply(got)
        _check_books(engine, ledger)
        for out in got:
            if isinstance(out, Trade):
                seen["trade"] += 1
            else:
                seen[out.exec_type.value] += 1
                seen[out.reason or "-"] += 1
                if out.reason == Reason.SELF_TRADE and isinstance(cmd, NewOrder):
                    seen[f"stp:{cmd.stp.value}"] += 1
    elapsed = time.perf_counter() - t0

    for symbol in ("AAA", "BBB"):
        for side in (Side.BUY, Side.SELL):
            st = engine.syms[symbol]
            book_side = st.book.side(side is Side.BUY)
            assert [(st.price(p), st.qty(s)) for p, s in book_side.depth()] == ref.levels(symbol, side)
            assert [(o.account, o.coid, st.price(o.price), st.qty(o.leaves)) for o in book_side.orders()] == (
                ref.resting(symbol, side)
            )
    # The stream really exercised the rules (a generator that never crossed would prove nothing).
    for what, at_least in {
        "trade": 5_000,
        "accepted": 20_000,
        "filled": 3_000,
        "partially_filled": 1_000,
        "replaced": 3_000,
        "IOC_REMAINDER": 500,
        "FOK_NOT_FILLABLE": 500,
        "SELF_TRADE": 500,
        **{f"stp:{mode.value}": 200 for mode in StpMode},
        "POST_ONLY_WOULD_TAKE": 200,
        "NO_LIQUIDITY": 1,
        "DUPLICATE_ORDER_ID": 100,
        "UNKNOWN_ORDER": 100,
        "NOT_OWNER": 50,
        "ORDER_CLOSED": 500,
        "PRICE_OFF_TICK": 100,
        "QTY_NOT_LOT_MULTIPLE": 100,
        "QTY_NOT_POSITIVE": 100,
        "UNKNOWN_SYMBOL": 100,
        "INSTRUMENT_NOT_TRADABLE": 50,
        "CANCELLED_BY_CLIENT": 5_000,
    }.items():
        assert seen[what] >= at_least, (what, seen[what], dict(seen))
    print(f"\n{N_COMMANDS:,} commands in {elapsed:.1f}s (engine + reference + checks): {dict(seen)}")
