"""The optimizer as a service over a real nats-server: live prices in, targets out on pf.target.<portfolio>,
on-demand solves over NATS request/reply and REST, bad input answered with its reason, service running on."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from nexus import messages as m
from nexus import subjects
from nexus.bus import Bus
from nexus.errors import RemoteError
from nexus.instruments import Instrument, load_instruments
from nexus.messages import Objective, OptimizeRequest, PortfolioTarget
from nexus.runtime import Runner
from nexus.settings import load_settings
from nexus.testing import InProcessService, ServiceProcess, wait_for
from optimizer.service import Optimizer, OptimizerSettings
from tests.optimizer.reference import market

pytestmark = pytest.mark.integration

INSTRUMENTS = list(load_instruments().values())
SYMBOLS = tuple(i.symbol for i in INSTRUMENTS)
MAX_WEIGHT = 0.35


def quantise(inst: Instrument, price: float) -> Decimal:
    return (Decimal(repr(float(price))) / inst.tick).to_integral_value() * inst.tick


async def gbm_market(bus: Bus, venue: str, stop: asyncio.Event, seed: int = 1) -> None:
    """Quotes and trades for every instrument: GBM mids (a 30x livelier vol than the instrument's, and a
    positive drift for some), a spread of a few ticks, until `stop` is set."""
    rng = np.random.default_rng(seed)
    mids = np.array([float(i.ref_price) for i in INSTRUMENTS])
    vols = np.array([i.vol for i in INSTRUMENTS]) * 0.004
    drift = np.where(np.arange(len(INSTRUMENTS)) % 3 == 0, 0.002, 0.0)
    seq = 0
    while not stop.is_set():
        mids *= np.exp(drift + vols * rng.standard_normal(len(INSTRUMENTS)))
        for inst, mid in zip(INSTRUMENTS, mids, strict=True):
            seq += 1
            bid, ask = quantise(inst, mid * 0.9999), quantise(inst, mid * 1.0001) + inst.tick
            await bus.publish(
                m.Quote(
                    venue=venue,
                    symbol=inst.symbol,
                    venue_symbol=inst.symbol,
                    bid_px=bid,
                    bid_sz=inst.lot,
                    ask_px=ask,
                    ask_sz=inst.lot,
                    seq=seq,
                    ts_event=m.now_ns(),
                )
            )
            await bus.publish(
                m.Trade(
                    venue=venue,
                    symbol=inst.symbol,
                    venue_symbol=inst.symbol,
                    trade_id=str(seq),
                    price=bid,
                    size=inst.lot,
                    seq=seq,
                    ts_event=m.now_ns(),
                )
            )
        await asyncio.sleep(0.004)


def assert_target(target: PortfolioTarget, portfolio: str) -> None:
    w = np.array(target.weights)
    assert target.portfolio == portfolio
    assert target.symbols == SYMBOLS
    assert w.sum() == pytest.approx(1.0, abs=1e-9)
    assert np.all(w >= -1e-9), w
    assert np.all(w <= MAX_WEIGHT + 1e-9), w
    assert target.objective in ("max_sharpe", "min_variance")
    assert target.status == "optimal" or target.status.startswith("fallback:INFEASIBLE_MAX_SHARPE")
    assert math.isfinite(target.exp_return)
    assert target.volatility > 0
    assert target.sharpe == pytest.approx(target.exp_return / target.volatility, rel=1e-9)
    assert sum(target.risk_contributions) == pytest.approx(1.0, abs=1e-9)


@pytest.fixture
async def optimizer(nats_url: str, uid: str) -> AsyncIterator[Runner]:
    settings = load_settings(
        OptimizerSettings,
        {},
        nats_url=[nats_url],
        instance=uid,
        portfolio=uid,
        venues=[uid],
        bar_seconds=0.02,
        min_bars=25,
        window=200,
        solve_interval=0.15,
        max_weight=MAX_WEIGHT,
        heartbeat_interval=0.2,
    )
    running = await InProcessService.start(Optimizer, settings, timeout=10)
    yield running.runner
    assert await running.stop(10) == 0


async def test_live_prices_become_targets_that_sum_to_one_within_bounds(
    optimizer: Runner, bus: Bus, uid: str
) -> None:
    targets: list[PortfolioTarget] = []

    async def on_target(t: PortfolioTarget) -> None:
        targets.append(t)

    await bus.subscribe(subjects.portfolio_target(uid), PortfolioTarget, on_target)
    await bus.flush()
    async with httpx.AsyncClient(base_url=optimizer.http_url) as http:
        early = await http.get("/target")
        assert early.status_code == 404
        assert early.json()["code"] == "NO_TARGET_YET"

        stop = asyncio.Event()
        feed = asyncio.create_task(gbm_market(bus, uid, stop))
        try:
            await wait_for(lambda: feed.done() or len(targets) >= 3, timeout=30)
        finally:
            stop.set()
            await feed
        for target in targets:
            assert_target(target, uid)

        latest = (await http.get("/target")).json()
        assert latest["type"] == "portfolio_target"
        assert math.isclose(sum(latest["weights"]), 1.0, abs_tol=1e-9)
        hb = (await http.get("/stats")).json()
    stats, details = hb["stats"], hb["details"]
    assert stats["solves_total"] >= 3
    assert stats["targets_published_total"] >= 3
    assert stats["assets"] == len(SYMBOLS)
    assert stats["prices_total"] > 0
    assert stats["last_solve_ms"] > 0
    assert details["state"] == "active"
    assert set(details["weights"]) == set(SYMBOLS)
    assert details["bars_per_year"] == pytest.approx(365 * 86400 / 0.02)


async def test_on_demand_solves_over_nats_and_rest_refuse_bad_input_and_keep_serving(
    optimizer: Runner, bus: Bus
) -> None:
    mu, cov = market(6, 3)
    good = OptimizeRequest(
        objective=Objective.MIN_VARIANCE,
        mu=tuple(mu.tolist()),
        cov=tuple(map(tuple, cov.tolist())),
        upper=0.4,
        portfolio="q",
    )
    target = await bus.request(subjects.optimize_request(), good, PortfolioTarget, timeout=5)
    assert target.portfolio == "q"
    assert sum(target.weights) == pytest.approx(1.0, abs=1e-9)
    assert max(target.weights) <= 0.4 + 1e-9

    bad_nan = OptimizeRequest(
        objective=Objective.MIN_VARIANCE, mu=(0.1, float("nan")), cov=((1.0, 0.0), (0.0, 1.0))
    )
    with pytest.raises(RemoteError) as err:
        await bus.request(subjects.optimize_request(), bad_nan, PortfolioTarget, timeout=5)
    assert err.value.code == "NAN_INPUT"
    infeasible = OptimizeRequest(
        objective=Objective.MAX_SHARPE, mu=(0.01, 0.02), cov=((1.0, 0.0), (0.0, 1.0)), risk_free=0.05
    )
    with pytest.raises(RemoteError) as err:
        await bus.request(subjects.optimize_request(), infeasible, PortfolioTarget, timeout=5)
    assert err.value.code == "INFEASIBLE_MAX_SHARPE"
    again = await bus.request(subjects.optimize_request(), good, PortfolioTarget, timeout=5)
    assert again.weights == pytest.approx(target.weights, abs=1e-9)

    async with httpx.AsyncClient(base_url=optimizer.http_url) as http:
        body: dict[str, Any] = json.loads(m.encode(good))
        ok = await http.post("/optimize", content=json.dumps(body))
        assert ok.status_code == 200
        assert ok.json()["weights"] == pytest.approx(list(target.weights), abs=1e-9)
        for change, status, code in [
            ({"upper": 0.1}, 422, "BOUNDS_INFEASIBLE"),
            ({"cov": [[1.0, 2.0], [2.0, 1.0]], "mu": [0.1, 0.2]}, 422, "NOT_PSD"),
            ({"mu": [0.1, 0.2]}, 422, "SHAPE_MISMATCH"),
        ]:
            r = await http.post("/optimize", content=json.dumps({**body, **change}))
            assert r.status_code == status
            assert r.json()["code"] == code
        r = await http.post("/optimize", content=b"{not json")
        assert (r.status_code, r.json()["code"]) == (400, "DECODE_ERROR")
        r = await http.post("/optimize", content=json.dumps({**body, "mu": [0.1, float("nan"), 0, 0, 0, 0]}))
        assert (r.status_code, r.json()["code"]) == (422, "NAN_INPUT")
        assert (await http.post("/optimize", content=json.dumps(body))).status_code == 200
        stats = (await http.get("/stats")).json()["stats"]
        spec = (await http.get("/openapi.json")).json()
    assert stats["requests_total"] == 11
    assert stats["request_errors_total"] == 7
    assert "OptimizeRequest" in spec["components"]["schemas"]


@pytest.mark.slow
async def test_synthetic_feed_process_to_optimizer_process(
    nats_url: str, uid: str, bus: Bus, tmp_path: Path
) -> None:
    """The live path end to end between real processes: the feed handler's synthetic venue -> NATS ->
    the optimizer -> pf.target.<portfolio>."""
    feeds = tmp_path / "feeds.toml"
    feeds.write_text(
        f'[[feed]]\nname = "{uid}"\nkind = "synthetic"\nvenue = "{uid}"\n'
        "rate = 800.0\nvol_scale = 30.0\nseed = 5\n"
    )
    targets: list[PortfolioTarget] = []

    async def on_target(t: PortfolioTarget) -> None:
        targets.append(t)

    await bus.subscribe(subjects.portfolio_target(uid), PortfolioTarget, on_target)
    await bus.flush()
    feed = ServiceProcess(
        "feed_handler",
        nats_url=nats_url,
        instance=f"{uid}-fh",
        env={"NEXUS_CONFIG_FILE": str(feeds), "NEXUS_DATA_DIR": str(tmp_path)},
        log_path=tmp_path / "feed_handler.log",
    )
    opt = ServiceProcess(
        "optimizer",
        nats_url=nats_url,
        instance=f"{uid}-opt",
        env={
            "NEXUS_PORTFOLIO": uid,
            "NEXUS_VENUES": uid,
            "NEXUS_BAR_SECONDS": "0.05",
            "NEXUS_MIN_BARS": "20",
            "NEXUS_SOLVE_INTERVAL": "0.3",
            "NEXUS_MAX_WEIGHT": str(MAX_WEIGHT),
        },
        log_path=tmp_path / "optimizer.log",
    )
    with feed, opt:
        await asyncio.gather(asyncio.to_thread(feed.wait_ready), asyncio.to_thread(opt.wait_ready))
        await wait_for(lambda: len(targets) >= 2, timeout=30)
        for target in targets:
            assert_target(target, uid)
        codes = await asyncio.gather(asyncio.to_thread(opt.terminate), asyncio.to_thread(feed.terminate))
    assert codes == [0, 0], opt.log_tail()
