"""In-process matching throughput and per-command latency on a mixed workload, no NATS.

    python bench/bench_engine_matching.py [--runs 5] [--quick]

Workload (seeded, 4 symbols, 8 accounts): 45% passive GTC limits near the touch, 10% marketable GTC
limits, 8% IOC, 2% FOK, 2% market, 25% cancels and 8% replaces of earlier passive orders.

Two figures:
- book core: the workload as integer ticks/lots against order_engine.book (add, cancel, match, events out);
- full engine: decoded commands through MatchingEngine.process, execution reports and trades out
  (Decimal prices and quantities, msgspec Structs) — what the service runs per command.
Same-run baseline: a pure-Python loop doing per command what any Python engine does at least (one dict
insert, one lookup, one delete), so the figures can be read against this machine's speed at the time.
"""

from __future__ import annotations

import gc
import random
import time

import numpy as np

from common import Latency, Runs, header, parser
from nexus.instruments import load_instruments
from nexus.messages import CancelOrder, NewOrder, OrderType, ReplaceOrder, Side, TimeInForce
from nexus.runtime.heap import FREEZE_EVERY
from order_engine.book import Order, OrderBook
from order_engine.engine import MatchingEngine

SYMBOLS = ("AAPL", "MSFT", "BTC-USD", "ETH-USD")
FREEZE_CHECK = 255
"""Every 256 commands the loops look at the clock, to freeze the heap every FREEZE_EVERY seconds."""
ACCOUNTS = tuple(f"acct{i}" for i in range(8))
Command = NewOrder | CancelOrder | ReplaceOrder


def workload(n: int, seed: int = 42) -> list[Command]:
    rng = random.Random(seed)
    insts = load_instruments()
    mids = {s: insts[s].to_ticks(insts[s].ref_price) or 1 for s in SYMBOLS}
    passive: list[tuple[str, str, str]] = []
    out: list[Command] = []
    for i in range(n):
        symbol = rng.choice(SYMBOLS)
        inst = insts[symbol]
        account = rng.choice(ACCOUNTS)
        coid = f"o{i}"
        side = rng.choice((Side.BUY, Side.SELL))
        sign = 1 if side is Side.BUY else -1
        qty = inst.min_qty * rng.randint(1, 10)
        if rng.random() < 0.01:
            mids[symbol] += rng.randint(-2, 2)
        mid = mids[symbol]
        r = rng.random()
        if r < 0.45:
            price = inst.price(mid - sign * rng.randint(1, 10))
            out.append(
                NewOrder(
                    account=account, client_order_id=coid, symbol=symbol, side=side, qty=qty, price=price
                )
            )
            passive.append((account, coid, symbol))
        elif r < 0.67:
            price = inst.price(mid + sign * rng.randint(0, 2))
            if r < 0.55:
                tif, kind = TimeInForce.GTC, OrderType.LIMIT
            elif r < 0.63:
                tif, kind = TimeInForce.IOC, OrderType.LIMIT
            elif r < 0.65:
                tif, kind = TimeInForce.FOK, OrderType.LIMIT
            else:
                tif, kind, price = TimeInForce.IOC, OrderType.MARKET, None
            out.append(
                NewOrder(
                    account=account,
                    client_order_id=coid,
                    symbol=symbol,
                    side=side,
                    qty=qty,
                    price=price,
                    order_type=kind,
                    tif=tif,
                )
            )
        elif passive:
            acct, orig, sym = passive[rng.randrange(max(0, len(passive) - 3000), len(passive))]
            if r < 0.92:
                out.append(
                    CancelOrder(account=acct, client_order_id=coid, symbol=sym, orig_client_order_id=orig)
                )
            else:
                move = rng.random() < 0.6
                out.append(
                    ReplaceOrder(
                        account=acct,
                        client_order_id=coid,
                        symbol=sym,
                        orig_client_order_id=orig,
                        price=insts[sym].price(mids[sym] + rng.randint(-12, 12)) if move else None,
                        qty=None if move else insts[sym].min_qty,
                    )
                )
        if len(passive) > 20_000:
            del passive[:10_000]
    return out


# -- book core ---------------------------------------------------------------------------------------

CoreOp = tuple[int, str, str, str, bool, int | None, int, int]
NEW, CANCEL, REPLACE = 0, 1, 2


def core_ops(commands: list[Command]) -> list[CoreOp]:
    """The workload pre-translated to ticks and lots (the engine does this at its edge)."""
    insts = load_instruments()
    ops: list[CoreOp] = []
    for c in commands:
        inst = insts[c.symbol]
        if isinstance(c, NewOrder):
            ticks = None if c.price is None else inst.to_ticks(c.price)
            tif = 0 if c.tif is TimeInForce.GTC and c.order_type is OrderType.LIMIT else 1
            if c.tif is TimeInForce.FOK:
                tif = 2
            ops.append(
                (
                    NEW,
                    c.account,
                    c.client_order_id,
                    c.symbol,
                    c.side is Side.BUY,
                    ticks,
                    inst.to_lots(c.qty) or 1,
                    tif,
                )
            )
        elif isinstance(c, CancelOrder):
            ops.append((CANCEL, c.account, c.orig_client_order_id, c.symbol, False, None, 0, 0))
        else:
            ticks = None if c.price is None else inst.to_ticks(c.price)
            lots = 0 if c.qty is None else inst.to_lots(c.qty) or 1
            ops.append((REPLACE, c.account, c.orig_client_order_id, c.symbol, False, ticks, lots, 0))
    return ops


def run_core(ops: list[CoreOp]) -> float:
    """With the service's GC policy, as run_engine."""
    books = {s: OrderBook(s) for s in SYMBOLS}
    orders: dict[str, Order] = {}
    events: list[tuple[object, ...]] = []
    oid = 0
    gc.collect()
    gc.freeze()
    t0 = due = time.perf_counter()
    for i, (kind, account, coid, symbol, is_buy, ticks, lots, tif) in enumerate(ops):
        if not i & FREEZE_CHECK and time.perf_counter() >= due:
            gc.freeze()
            due += FREEZE_EVERY
        book = books[symbol]
        if kind == NEW:
            oid += 1
            order = Order(oid, account, coid, symbol, is_buy, ticks or 0, lots)
            if tif == 2 and not book.fillable(order, ticks):
                continue
            if book.crosses(is_buy, ticks):
                book.match(order, ticks, events)
                events.clear()
            if order.leaves and tif == 0:
                book.add(order)
                orders[coid] = order
        else:
            order = orders.get(coid)  # type: ignore[assignment]
            if order is None or not order.live:
                continue
            side = book.side(order.is_buy)
            if kind == CANCEL:
                side.remove(order)
            elif ticks is None or ticks == order.price:
                if lots and lots < order.leaves:
                    side.reduce(order, order.leaves - lots)
            else:
                side.remove(order)
                new = order.clone()
                new.price = ticks
                orders[coid] = new
                if book.crosses(new.is_buy, ticks):
                    book.match(new, ticks, events)
                    events.clear()
                if new.leaves:
                    book.add(new)
    rate = len(ops) / (time.perf_counter() - t0)
    gc.unfreeze()
    return rate


def run_engine(commands: list[Command], latencies: np.ndarray | None = None) -> float:
    """With the service's GC policy (nexus.runtime.heap): the heap is frozen every FREEZE_EVERY seconds,
    so a full collection does not rescan the books and remembered orders. The freezes are outside the
    timed commands."""
    engine = MatchingEngine(load_instruments(), memory=20_000)
    process = engine.process
    gc.collect()
    gc.freeze()
    now = time.perf_counter
    if latencies is None:
        t0 = due = now()
        for i, cmd in enumerate(commands):
            process(cmd, i)
            if not i & FREEZE_CHECK and now() >= due:
                gc.freeze()
                due += FREEZE_EVERY
        rate = len(commands) / (now() - t0)
    else:
        clock = time.perf_counter_ns
        t0 = due = now()
        for i, cmd in enumerate(commands):
            t = clock()
            process(cmd, i)
            latencies[i] = clock() - t
            if not i & FREEZE_CHECK and now() >= due:
                gc.freeze()
                due += FREEZE_EVERY
        rate = len(commands) / (now() - t0)
    gc.unfreeze()
    return rate


def run_baseline(commands: list[Command]) -> float:
    table: dict[str, Command] = {}
    t0 = time.perf_counter()
    for cmd in commands:
        key = cmd.client_order_id
        table[key] = cmd
        table.get(key)
        del table[key]
    return len(commands) / (time.perf_counter() - t0)


def main() -> None:
    args = parser(__doc__ or "").parse_args()
    n = 30_000 if args.quick else 200_000
    commands = workload(n)  # a draw of a cancel or replace before any order rested makes no command
    n = len(commands)
    header(f"order engine: in-process matching, mixed workload ({n:,} commands, {len(SYMBOLS)} symbols)")
    ops = core_ops(commands)
    engine = MatchingEngine(load_instruments())
    outputs = sum(len(engine.process(c, 0)) for c in commands)
    print(
        f"workload: {outputs / n:.2f} outputs per command, {engine.trades_total:,} trades, "
        f"{len(engine.open_orders()):,} orders resting at the end\n"
    )
    del engine  # its books and orders would otherwise sit in the heap every run scans
    base, core, full = Runs(), Runs(), Runs()
    latencies = np.empty(n, dtype=np.int64)
    lat_runs = []
    for _ in range(args.runs):  # interleaved, so every figure sees the same machine noise
        base.add(run_baseline(commands))
        core.add(run_core(ops))
        full.add(run_engine(commands))
        run_engine(commands, latencies)
        lat_runs.append(Latency.of(latencies))
    lat = sorted(lat_runs, key=lambda x: x.p99_us)[len(lat_runs) // 2]
    print(f"baseline: python dict insert+lookup+delete   ops/s   {base}")
    print(f"book core (ticks/lots, events)              cmds/s  {core}")
    print(f"full engine (commands -> reports, trades)   cmds/s  {full}")
    print(f"full engine per-command latency (median run by p99): {lat}")
    print(f"ratios to baseline: core {core.median / base.median:.3f}, full {full.median / base.median:.3f}")
    goal = 300_000
    print(
        f"goal >= {goal:,} cmds/s: book core {'met' if core.median >= goal else 'NOT met'}, "
        f"full engine {'met' if full.median >= goal else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
