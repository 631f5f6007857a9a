"""Risk: the full check set in process, and the order round trip through risk + engine over NATS.

    python bench/bench_risk.py [--runs 5] [--quick] [--rate 2000] [--only checks|e2e]

1. In process (no NATS): Checker.check_new on one decoded NewOrder — every check of a new order (state,
   instrument, quantity, price, duplicate id, reduce/REDUCING, collar, notional, open orders, position,
   gross/net exposure, buying power, daily loss, rate limit) and the bookkeeping of an approved order —
   timed one call at a time, p50/p99 in ns. The account holds positions in 4 symbols and ~100 open
   orders; marks move every 100 orders (so the exposure cache is rebuilt as in live trading).
   Same-run baselines: msgspec decoding of the same order from JSON (what receiving it costs anyway) and
   the timer's own overhead.
2. End to end, durable: the engine benchmark's workload (resting sell, then a buy IOC that fills it) sent
   into ORD_IN; submit -> accepted p50/p99 at a fixed rate and the highest sustained orders/s, with risk
   in front of the engine (engine reads ORD_OK) beside the engine alone (engine reads ORD_IN), each on a
   fresh nats-server, alternating within the same run.
"""

from __future__ import annotations

import gc
import random
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import numpy as np

from bench_engine_e2e import PRICE, SYMBOL, fixed_rate, saturated
from common import Latency, Runs, header, nats_server, parser, run
from nexus import messages as m
from nexus import subjects
from nexus.instruments import load_instruments
from nexus.messages import NewOrder, Quote, Side, now_ns
from nexus.testing import ServiceProcess
from risk.checks import Checker
from risk.limits import load_limits

LIMITS = Path(__file__).with_name("risk_limits.toml")
SYMBOLS = ("AAPL", "MSFT", "SPY", "NVDA")


def _orders(n: int, seed: int) -> list[NewOrder]:
    rng = random.Random(seed)
    insts = load_instruments()
    out = []
    for i in range(n):
        sym = SYMBOLS[i % len(SYMBOLS)]
        ref = insts[sym].ref_price
        side = Side.BUY if rng.random() < 0.5 else Side.SELL
        offset = Decimal(rng.randint(-50, 50)) / 100
        out.append(
            NewOrder(
                account="bench",
                client_order_id=f"c{i}",
                symbol=sym,
                side=side,
                qty=Decimal(rng.randint(1, 5)),
                price=ref + offset,
            )
        )
    return out


def checks_once(n: int, seed: int) -> tuple[Latency, Latency, Latency, dict[str, int]]:
    insts = load_instruments()
    checker = Checker(load_limits(LIMITS, insts))
    market = checker.market
    for sym in SYMBOLS:
        ref = insts[sym].ref_price
        market.quote(sym, ref - Decimal("0.01"), ref + Decimal("0.01"))
    orders = _orders(n, seed)
    encoded = [m.encode(o) for o in orders]
    decoder = m.decoder(m.OrderCommandMsg)
    acct = checker.account("bench")
    perf = time.perf_counter_ns
    t_check = np.empty(n, dtype=np.int64)
    t_decode = np.empty(n, dtype=np.int64)
    t_empty = np.empty(n, dtype=np.int64)
    rejected: dict[str, int] = {}
    gc.collect()
    gc.disable()
    try:
        now = 1_000.0
        for i, order in enumerate(orders):
            if i % 100 == 0:  # the market moves: marks change, exposure is revalued
                for sym in SYMBOLS:
                    ref = insts[sym].ref_price + Decimal(i % 700 - 350) / 1000
                    market.quote(sym, ref - Decimal("0.01"), ref + Decimal("0.01"))
            if len(acct.orders) > 100:  # the engine closes the oldest (filled or cancelled)
                oldest = next(iter(acct.orders))
                acct.set_leaves(oldest, Decimal(0))
            now += 0.0001
            t0 = perf()
            verdict = checker.check_new(order, now)
            t1 = perf()
            t_check[i] = t1 - t0
            if verdict is not None:
                rejected[verdict[0]] = rejected.get(verdict[0], 0) + 1
            data = encoded[i]
            t0 = perf()
            decoder.decode(data)
            t1 = perf()
            t_decode[i] = t1 - t0
            t0 = perf()
            t1 = perf()
            t_empty[i] = t1 - t0
    finally:
        gc.enable()
    return Latency.of(t_check), Latency.of(t_decode), Latency.of(t_empty), rejected


async def _quote(url: str) -> None:
    import nats

    nc = await nats.connect(url)
    q = Quote(
        venue="bench",
        symbol=SYMBOL,
        venue_symbol=SYMBOL,
        bid_px=PRICE - Decimal("0.01"),
        bid_sz=Decimal(100),
        ask_px=PRICE + Decimal("0.01"),
        ask_sz=Decimal(100),
        ts_event=now_ns(),
    )
    await nc.publish(subjects.quote("bench", SYMBOL), m.encode(q))
    await nc.flush()
    await nc.close()


def e2e_once(with_risk: bool, rate: float, seconds: float, n_sat: int, tag: str) -> tuple[Latency, float]:
    """One measurement on a fresh nats-server: fixed-rate latency and the saturated rate."""
    with tempfile.TemporaryDirectory(prefix="nexus-bench-risk-") as tmp, nats_server() as url:
        engine = ServiceProcess(
            "order_engine",
            nats_url=url,
            instance="bench",
            env={
                "NEXUS_DATA_DIR": str(Path(tmp) / "var"),
                "NEXUS_LOG_LEVEL": "warning",
                "NEXUS_ENGINE_INPUT": "approved" if with_risk else "direct",
            },
            log_path=Path(tmp) / "engine.log",
        ).start()
        procs = [engine]
        try:
            engine.wait_ready(30)
            if with_risk:
                risk = ServiceProcess(
                    "risk",
                    nats_url=url,
                    instance="bench",
                    env={"NEXUS_CONFIG_FILE": str(LIMITS), "NEXUS_LOG_LEVEL": "warning"},
                    log_path=Path(tmp) / "risk.log",
                ).start()
                procs.append(risk)
                risk.wait_ready(30)
                run(_quote(url))
                time.sleep(0.3)  # the quote reaches risk (the collar needs a reference price)
            accepted, _, _ = run(fixed_rate(url, rate, seconds, f"L{tag}-"))
            sat = run(saturated(url, n_sat, 4_000, f"S{tag}-"))
        finally:
            for proc in reversed(procs):
                proc.terminate()
    return accepted, sat


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("--rate", type=float, default=2_000.0, help="orders/s of the fixed-rate latency run")
    p.add_argument("--only", choices=("checks", "e2e"), default="")
    args = p.parse_args()
    header("risk: full check set in process; order round trip with and without risk (durable)")
    if args.only != "e2e":
        n = 20_000 if args.quick else 200_000
        c50, c99, d50, e50 = Runs(), Runs(), Runs(), Runs()
        for r in range(args.runs):
            check, decode, empty, rejected = checks_once(n, seed=r)
            c50.add(check.p50_us * 1000)
            c99.add(check.p99_us * 1000)
            d50.add(decode.p50_us * 1000)
            e50.add(empty.p50_us * 1000)
            print(f"run {r + 1}: check {check}   decode {decode}   rejected {rejected or 'none'}")
        print()
        print(f"check_new, every check, p50 ns                   {c50}")
        print(f"check_new, every check, p99 ns                   {c99}")
        print(f"baseline: msgspec decode of the order, p50 ns    {d50}")
        print(f"baseline: timer overhead (empty), p50 ns         {e50}")
        print(f"goal p50 <= 2 µs: {'met' if c50.median <= 2_000 else 'NOT met'}")
    if args.only != "checks":
        seconds = 3.0 if args.quick else 8.0
        n_sat = 10_000 if args.quick else 50_000
        lat = {True: (Runs(), Runs()), False: (Runs(), Runs())}
        sat = {True: Runs(), False: Runs()}
        for r in range(args.runs):
            for with_risk in (False, True):  # alternate, so both see the same machine noise
                accepted, rate = e2e_once(with_risk, args.rate, seconds, n_sat, f"{r}{int(with_risk)}")
                lat[with_risk][0].add(accepted.p50_us)
                lat[with_risk][1].add(accepted.p99_us)
                sat[with_risk].add(rate)
                label = "risk + engine" if with_risk else "engine alone "
                print(f"run {r + 1}: {label} accepted {accepted}   saturated {rate:,.0f} orders/s")
        print()
        for with_risk, label in ((False, "engine alone (ORD_IN)  "), (True, "risk + engine (ORD_OK) ")):
            p50, p99 = lat[with_risk]
            print(f"{label} submit->accepted at {args.rate:,.0f}/s  p50 µs {p50}")
            print(f"{label} submit->accepted at {args.rate:,.0f}/s  p99 µs {p99}")
            print(f"{label} highest sustained orders/s        {sat[with_risk]}")
        print(
            f"risk's cost: p50 +{lat[True][0].median - lat[False][0].median:,.0f} µs, "
            f"throughput ratio {sat[True].median / sat[False].median:.2f}"
        )


if __name__ == "__main__":
    main()
