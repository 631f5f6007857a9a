"""The bus layer's cost: typed Trade publish->subscribe (msgspec encode + decode + handler) through
nexus.bus.Bus, beside the raw nats-py ceiling with the same payload bytes, in the same run.

    python bench/bench_bus.py [--runs 5] [--quick]
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

from common import Runs, header, nats_server, parser, raw_pubsub_ceiling, run
from nexus import messages as m
from nexus import subjects
from nexus.bus import Bus


def sample_trade(n: int) -> m.Trade:
    return m.Trade(
        venue="bench",
        symbol="BTC-USDT",
        venue_symbol="BTCUSDT",
        trade_id=str(n),
        price=Decimal("43123.45"),
        size=Decimal("0.0125"),
        seq=n,
        ts_event=time.time_ns(),
        ts_recv=time.time_ns(),
    )


async def typed_pubsub(url: str, n: int) -> float:
    pub = Bus([url], name="bench.pub")
    sub = Bus([url], name="bench.sub")
    await pub.connect(give_up_after=5)
    await sub.connect(give_up_after=5)
    done = asyncio.Event()
    count = 0

    async def on_trade(_: m.Trade) -> None:
        nonlocal count
        count += 1
        if count == n:
            done.set()

    await sub.subscribe(subjects.trade("bench", "*"), m.Trade, on_trade, pending_msgs_limit=n + 1)
    await sub.flush()
    trades = [sample_trade(i) for i in range(1000)]
    t0 = time.perf_counter()
    for i in range(n):
        await pub.publish(trades[i % 1000])
    await pub.flush()
    await asyncio.wait_for(done.wait(), 120)
    rate = n / (time.perf_counter() - t0)
    await pub.close()
    await sub.close()
    return rate


def main() -> None:
    args = parser(__doc__ or "").parse_args()
    n = 20_000 if args.quick else 200_000
    payload = m.encode(sample_trade(1))
    header(f"bus: typed Trade publish->subscribe vs raw nats-py ({n:,} msgs, {len(payload)} B)")
    raw, typed = Runs(), Runs()
    with nats_server(args.nats_url) as url:
        for _ in range(args.runs):  # interleave so both see the same machine noise
            raw.add(run(raw_pubsub_ceiling(url, n, payload)))
            typed.add(run(typed_pubsub(url, n)))
    print(f"raw nats-py ceiling     msgs/s  {raw}")
    print(f"nexus Bus (typed)       msgs/s  {typed}")
    print(f"ratio typed / raw               {typed.median / raw.median:.2f}")


if __name__ == "__main__":
    main()
