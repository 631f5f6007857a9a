"""Demo traffic: the maker's ladder never crosses, and with the engine running trades flow at once."""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal
from pathlib import Path

import pytest

from nexus import messages as m
from nexus import subjects
from nexus.bus import Bus
from nexus.instruments import load_instruments
from nexus.messages import Side
from nexus.natsserver import NatsServer
from nexus.runtime import Runner
from nexus.settings import load_settings
from nexus.testing import wait_for
from order_engine.demo.service import DemoSettings, DemoTraffic
from order_engine.demo.strategy import ladder, mid_ticks, taker_order
from tests.order_engine.conftest import start_engine


@pytest.mark.parametrize("symbol", sorted(load_instruments()))
def test_the_maker_ladder_is_on_tick_around_the_mid_and_never_crosses(symbol: str) -> None:
    inst = load_instruments()[symbol]
    mid = mid_ticks(inst, inst.ref_price * Decimal("0.999"), inst.ref_price * Decimal("1.001"))
    assert mid == mid_ticks(inst, None, None)  # a symmetric quote around the reference
    quotes = ladder(inst, mid, 3)
    bids = [q.price for q in quotes if q.side is Side.BUY]
    asks = [q.price for q in quotes if q.side is Side.SELL]
    assert max(bids) < mid < min(asks)
    assert bids == sorted(bids, reverse=True)
    assert asks == sorted(asks)
    rng = random.Random(1)
    for _ in range(200):
        order = taker_order(rng, inst, mid)
        assert inst.to_lots(order.qty) is not None
        assert order.price is None or inst.to_ticks(order.price) is not None


@pytest.mark.integration
async def test_demo_traffic_trades_from_the_start(
    fresh_nats: NatsServer, tmp_path: Path, client_bus: Bus
) -> None:
    trades: list[m.Trade] = []

    async def on_trade(t: m.Trade) -> None:
        trades.append(t)

    await client_bus.subscribe(subjects.trade("nexus", "*"), m.Trade, on_trade)
    engine = await start_engine(fresh_nats.url, tmp_path / "var")
    settings = load_settings(
        DemoSettings,
        {},
        nats_url=[fresh_nats.url],
        instance="demo",
        demo_rate=40.0,
        demo_refresh=0.5,
        demo_seed=3,
    )
    demo = Runner(DemoTraffic, settings)
    task = asyncio.create_task(demo.run(install_signals=False))
    try:
        await wait_for(lambda: len(trades) >= 10, timeout=30)
        stats = demo.all_stats()
        assert stats["demo_orders_total"] > 10
        assert stats["demo_errors_total"] == 0
        assert stats["demo_live_quotes"] > 0
        assert engine.runner.all_stats()["trades_total"] >= 10
    finally:
        demo.request_stop()
        assert await asyncio.wait_for(task, 30) == 0
        assert await engine.stop() == 0
