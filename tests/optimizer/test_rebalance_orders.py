"""Rebalance orders over a real nats-server: the optimizer's live target becomes IOC orders for an account,
sent through the real risk service in front of the real engine (approved input), filled against a
counterparty's resting liquidity; the account's position, as risk reports it, ends within a lot of the
target. A reject from risk is counted and the rest of the rebalance goes through."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from nexus import subjects
from nexus.bus import Bus
from nexus.client import OrderClient
from nexus.messages import AccountRisk, ExecType, PortfolioTarget, Side, TimeInForce
from nexus.natsserver import NatsServer
from nexus.settings import load_settings
from nexus.testing import InProcessService, wait_for
from optimizer.service import Optimizer, OptimizerSettings
from tests.order_engine.conftest import RunningEngine, start_engine
from tests.risk.conftest import RunningRisk, publish_quote, start_risk

pytestmark = pytest.mark.integration

D = Decimal
LIMITS = Path(__file__).with_name("rebalance_limits.toml")
BASE = {"SPY": D("560.00"), "AAPL": D("228.50"), "MSFT": D("415.20")}
"""Quotes wander at most NOISE around these mids; the counterparty rests 0.30 outside them."""
NOISE = 8  # ticks of 0.01
CAPITAL = 60_000.0
VENUE = "feed"


@dataclass
class Market:
    engine: RunningEngine
    risk: RunningRisk
    bus: Bus
    url: str


async def quote_all(bus: Bus, rng: random.Random) -> None:
    for symbol, base in BASE.items():
        mid = base + D(rng.randint(-NOISE, NOISE)) * D("0.01")
        await publish_quote(bus, symbol, str(mid - D("0.01")), str(mid + D("0.01")), venue=VENUE)


async def feed(bus: Bus, stop: asyncio.Event) -> None:
    rng = random.Random(7)
    while not stop.is_set():
        await quote_all(bus, rng)
        await asyncio.sleep(0.005)


@pytest.fixture
async def market(fresh_nats: NatsServer, tmp_path: Path) -> AsyncIterator[Market]:
    engine = await start_engine(fresh_nats.url, tmp_path / "var", engine_input="approved")
    risk = await start_risk(fresh_nats.url, config_file=LIMITS)
    bus = Bus([fresh_nats.url], name="test-rebalance")
    await bus.connect(give_up_after=5)
    stop = asyncio.Event()
    await quote_all(bus, random.Random(1))
    await wait_for(lambda: set(BASE) <= set(risk.service.checker.market.marks), timeout=5)
    task = asyncio.create_task(feed(bus, stop))
    mm = OrderClient(bus, "mm", timeout=10)
    await mm.start()
    for symbol, base in BASE.items():  # the counterparty: plenty on both sides, just outside the quotes
        for side, px in ((Side.SELL, base + D("0.30")), (Side.BUY, base - D("0.30"))):
            report = await mm.new_order(symbol, side, "5000", price=str(px))
            assert report.exec_type is ExecType.ACCEPTED, report
    try:
        yield Market(engine, risk, bus, fresh_nats.url)
    finally:
        stop.set()
        await task
        await mm.close()
        await bus.close()
        assert await risk.stop() == 0
        assert await engine.stop() == 0


async def start_optimizer(url: str, account: str, **overrides: object) -> InProcessService:
    settings = load_settings(
        OptimizerSettings,
        {},
        nats_url=[url],
        instance=account,
        portfolio=account,
        venues=[VENUE],
        symbols=list(BASE),
        objective="min_variance",
        bar_seconds=0.02,
        min_bars=25,
        window=200,
        solve_interval=0.3,
        heartbeat_interval=0.2,
        rebalance_account=account,
        rebalance_capital=CAPITAL,
        rebalance_min_notional=100.0,
        rebalance_aggression_bps=20.0,
        rebalance_interval=3600.0,  # one rebalance: the first target
        **overrides,
    )
    return await InProcessService.start(Optimizer, settings, timeout=10)


class Watch:
    """The first target of a portfolio and the latest AccountRisk of an account, as published."""

    def __init__(self) -> None:
        self.targets: list[PortfolioTarget] = []
        self.state: AccountRisk | None = None
        self.state_at = 0.0

    async def start(self, bus: Bus, account: str) -> None:
        await bus.subscribe(subjects.portfolio_target(account), PortfolioTarget, self._target)
        await bus.subscribe(subjects.risk_state(account), AccountRisk, self._state)
        await bus.flush()

    async def _target(self, t: PortfolioTarget) -> None:
        self.targets.append(t)

    async def _state(self, s: AccountRisk) -> None:
        self.state, self.state_at = s, time.monotonic()

    def positions(self) -> dict[str, Decimal]:
        assert self.state is not None
        return {p.symbol: D(p.qty) for p in self.state.positions}


def target_range(weight: float, symbol: str) -> tuple[float, float]:
    """weight x capital / mark over every mark the quotes can have."""
    lo, hi = float(BASE[symbol]) - NOISE * 0.01, float(BASE[symbol]) + NOISE * 0.01
    return weight * CAPITAL / hi, weight * CAPITAL / lo


def below_one_lot(weights: dict[str, float], held: set[str]) -> int:
    """How many symbols, none held, have a target worth less than one share (lot 1) at any mark."""
    return sum(symbol not in held and target_range(w, symbol)[1] < 1 for symbol, w in weights.items())


async def rebalanced(running: InProcessService, watch: Watch) -> dict[str, float]:
    """Wait for the one rebalance and for risk's account state after it; the optimizer's stats."""
    service = running.service
    assert isinstance(service, Optimizer)
    assert service.rebalancer is not None
    await wait_for(lambda: service.rebalancer.counts["rebalances"] == 1, timeout=20)
    done = time.monotonic()
    await wait_for(lambda: service.rebalancer.stats()["rebalance_orders_accepted_total"] == sum(
        service.rebalancer.stats()[k] for k in (
            "rebalance_orders_filled_total", "rebalance_orders_partially_filled_total",
            "rebalance_orders_unfilled_total",
        )
    ), timeout=5)  # fmt: skip
    await wait_for(
        lambda: watch.state is not None and watch.state_at > done and watch.state.open_orders == 0, timeout=5
    )
    return service.stats()


async def test_a_target_becomes_orders_through_risk_and_the_position_reaches_it(market: Market) -> None:
    account = "pm"
    watch = Watch()
    await watch.start(market.bus, account)
    pm = OrderClient(market.bus, account, timeout=10)
    await pm.start()
    # pm holds more MSFT than any target can ask for (60,000 / 415 < 145): the rebalance must sell some
    held = await pm.new_order("MSFT", Side.BUY, "200", price="416.00", tif=TimeInForce.IOC)
    assert held.exec_type is ExecType.ACCEPTED, held
    await wait_for(lambda: watch.state is not None and watch.positions().get("MSFT") == 200, timeout=5)
    approved_before = market.risk.service.counters["approved_total"]

    running = await start_optimizer(market.url, account)
    try:
        stats = await rebalanced(running, watch)
        assert len(watch.targets) >= 1
        target = watch.targets[0]
        weights = dict(zip(target.symbols, target.weights, strict=True))
        positions = watch.positions()
        for symbol, weight in weights.items():
            lo, hi = target_range(weight, symbol)
            pos = float(positions.get(symbol, D(0)))
            assert lo - 1 < pos < hi + 1, (symbol, weight, pos, lo, hi)  # lot 1
        assert float(positions["MSFT"]) < 145  # sold down to the target
        sent = stats["rebalance_orders_sent_total"]
        # one order a symbol (from 0 to SPY and AAPL, MSFT sold down) but for a weight under one lot
        assert sent == 3 - below_one_lot(weights, held={"MSFT"})
        assert stats["rebalance_orders_accepted_total"] == sent
        assert stats["rebalance_orders_filled_total"] == sent
        assert stats["rebalance_orders_rejected_total"] == 0
        assert stats["rebalance_orders_resubmitted_total"] == 0
        assert stats["rebalances_total"] == 1
        assert stats["rebalances_skipped_interval_total"] >= len(watch.targets) - 1
        # every order went through risk (approved there), and the fills are risk's positions above
        assert market.risk.service.counters["approved_total"] - approved_before >= sent
        details = running.service.details()["rebalance"]
        assert details["last"]["orders"] == sent
        assert details["last"]["accepted"] == sent
    finally:
        assert await running.stop(10) == 0
        await pm.close()


async def test_a_reject_from_risk_is_counted_and_the_rest_goes_through(market: Market) -> None:
    account = "capped"  # SPY orders above 5 are refused by risk (MAX_ORDER_QTY)
    watch = Watch()
    await watch.start(market.bus, account)
    running = await start_optimizer(market.url, account)
    try:
        stats = await rebalanced(running, watch)
        weights = dict(zip(watch.targets[0].symbols, watch.targets[0].weights, strict=True))
        sent = stats["rebalance_orders_sent_total"]
        assert target_range(weights["SPY"], "SPY")[0] > 6  # the SPY order is one risk refuses
        assert sent == 3 - below_one_lot(weights, held=set())
        assert stats["rebalance_orders_rejected_total"] == 1
        assert stats["rebalance_rejects_max_order_qty_total"] == 1
        assert stats["rebalance_orders_filled_total"] == sent - 1
        positions = watch.positions()
        assert positions.get("SPY", D(0)) == 0
        for symbol in ("AAPL", "MSFT"):
            lo, hi = target_range(weights[symbol], symbol)
            assert lo - 1 < float(positions.get(symbol, D(0))) < hi + 1, (symbol, positions)
        # the service runs on: it keeps solving and publishing targets after the reject
        published = stats["targets_published_total"]
        await wait_for(lambda: running.service.stats()["targets_published_total"] > published, timeout=5)
    finally:
        assert await running.stop(10) == 0


async def test_orders_nobody_answers_are_sent_twice_then_counted_as_timed_out(
    fresh_nats: NatsServer, tmp_path: Path
) -> None:
    """Risk runs but no engine does: risk cannot store its decisions (ORD_OK is the engine's), so no order
    is ever answered. Each is submitted, resubmitted once unchanged, then counted; the service runs on."""
    risk = await start_risk(fresh_nats.url, config_file=LIMITS)
    bus = Bus([fresh_nats.url], name="test-rebalance")
    await bus.connect(give_up_after=5)
    stop = asyncio.Event()
    task = asyncio.create_task(feed(bus, stop))
    running = await start_optimizer(fresh_nats.url, "lonely", rebalance_timeout=0.5)
    try:
        service = running.service
        assert isinstance(service, Optimizer)
        assert service.rebalancer is not None
        await wait_for(lambda: service.rebalancer.counts["rebalances"] == 1, timeout=20)
        stats = service.stats()
        last = service.details()["rebalance"]["last"]
        sent = stats["rebalance_orders_sent_total"]
        # nothing is held, so every symbol gets an order but one whose weight is worth less than a lot
        assert sent == last["orders"] >= 1
        assert sent + last["skipped"].get("at_target", 0) == len(BASE)
        assert stats["rebalance_orders_timed_out_total"] == sent
        assert stats["rebalance_orders_resubmitted_total"] == sent
        assert stats["rebalance_orders_accepted_total"] == 0
        published = stats["targets_published_total"]
        await wait_for(lambda: service.stats()["targets_published_total"] > published, timeout=5)
    finally:
        assert await running.stop(10) == 0
        stop.set()
        await task
        await bus.close()
        assert await risk.stop() == 0
