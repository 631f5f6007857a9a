"""The live portfolio's solve without NATS: a price window in, a target out; the fallback objective when
the configured one has no answer; settings refused with the variable named."""

from __future__ import annotations

import numpy as np
import pytest

from nexus.bus import Bus
from nexus.errors import SettingsError
from nexus.settings import load_settings
from optimizer.service import Optimizer, OptimizerSettings

SYMBOLS = ["A", "B", "C", "D"]


def optimizer(**env: str) -> Optimizer:
    settings = load_settings(
        OptimizerSettings, {"NEXUS_SYMBOLS": ",".join(SYMBOLS), "NEXUS_BAR_SECONDS": "60", **env}
    )
    return Optimizer(settings, Bus(["nats://127.0.0.1:1"], name="unconnected"))


def prices(drift: float, seed: int = 0, bars: int = 120) -> np.ndarray:
    rng = np.random.default_rng(seed)
    steps = drift + 0.001 * rng.standard_normal((bars, len(SYMBOLS)))
    return np.asarray(100 * np.exp(np.cumsum(steps, axis=0)))


def test_a_window_of_prices_becomes_an_annualised_target() -> None:
    opt = optimizer(NEXUS_MAX_WEIGHT="0.5", NEXUS_COV_ESTIMATOR="sample")
    target = opt.solve_live(prices(0.0002), None)
    assert target.status == "optimal"
    assert target.objective == "max_sharpe"
    assert target.symbols == tuple(SYMBOLS)
    assert sum(target.weights) == pytest.approx(1.0, abs=1e-9)
    assert max(target.weights) <= 0.5 + 1e-9
    # 1-minute bars: 525,600 a year; per-bar sd 0.001 annualises to about 0.001 * sqrt(525600) ≈ 0.72
    assert opt.settings.bars_per_year == 365 * 24 * 60
    assert 0.2 < target.volatility < 1.0
    assert opt.stats()["solves_total"] == 1
    assert opt.details()["weights"] == dict(zip(SYMBOLS, target.weights, strict=True))


def test_max_sharpe_without_an_answer_falls_back_to_min_variance() -> None:
    opt = optimizer()
    target = opt.solve_live(prices(-0.001), None)  # every asset falls: no positive Sharpe ratio exists
    assert target.objective == "min_variance"
    assert target.status == "fallback:INFEASIBLE_MAX_SHARPE"
    assert sum(target.weights) == pytest.approx(1.0, abs=1e-9)
    assert opt.stats()["fallbacks_total"] == 1
    assert opt.details()["last_error"]["code"] == "INFEASIBLE_MAX_SHARPE"
    recovered = opt.solve_live(prices(0.0005, seed=3), target.weights)
    assert recovered.status == "optimal"
    assert "last_error" not in opt.details()


def test_turnover_is_capped_against_the_last_target() -> None:
    opt = optimizer(NEXUS_MAX_TURNOVER="0.1", NEXUS_OBJECTIVE="min_variance")
    first = opt.solve_live(prices(0.0, seed=1), None)
    second = opt.solve_live(prices(0.0, seed=2), first.weights)
    assert np.abs(np.subtract(second.weights, first.weights)).sum() <= 0.1 + 1e-8


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"NEXUS_OBJECTIVE": "target_return"}, "NEXUS_TARGET_RETURN"),
        ({"NEXUS_FALLBACK_OBJECTIVE": "target_volatility"}, "NEXUS_TARGET_VOLATILITY"),
        ({"NEXUS_FALLBACK_OBJECTIVE": "best"}, "NEXUS_FALLBACK_OBJECTIVE"),
        ({"NEXUS_MIN_BARS": "500", "NEXUS_WINDOW": "100"}, "NEXUS_MIN_BARS"),
        ({"NEXUS_OBJECTIVE": "max_fun"}, "NEXUS_OBJECTIVE"),
        ({"NEXUS_VENUES": "sim,bad.venue"}, "NEXUS_VENUES"),
        ({"NEXUS_PRICE_SOURCE": "last"}, "NEXUS_PRICE_SOURCE"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError) as err:
        load_settings(OptimizerSettings, env)
    assert err.value.variable == variable


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"NEXUS_REBALANCE_ACCOUNT": "pm"}, "NEXUS_REBALANCE_CAPITAL"),
        ({"NEXUS_REBALANCE_ACCOUNT": "pm", "NEXUS_REBALANCE_CAPITAL": "-5"}, "NEXUS_REBALANCE_CAPITAL"),
        ({"NEXUS_REBALANCE_ACCOUNT": "p.m", "NEXUS_REBALANCE_CAPITAL": "1e6"}, "NEXUS_REBALANCE_ACCOUNT"),
        ({"NEXUS_REBALANCE_AGGRESSION_BPS": "-1"}, "NEXUS_REBALANCE_AGGRESSION_BPS"),
        ({"NEXUS_REBALANCE_MIN_NOTIONAL": "-1"}, "NEXUS_REBALANCE_MIN_NOTIONAL"),
        ({"NEXUS_REBALANCE_INTERVAL": "-1"}, "NEXUS_REBALANCE_INTERVAL"),
        ({"NEXUS_REBALANCE_TIMEOUT": "0"}, "NEXUS_REBALANCE_TIMEOUT"),
    ],
)
def test_bad_rebalance_settings_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError) as err:
        load_settings(OptimizerSettings, env)
    assert err.value.variable == variable


def test_rebalance_orders_are_off_by_default() -> None:
    opt = optimizer()
    assert opt.settings.rebalance_account == ""
    assert opt.rebalancer is None
    assert not any(k.startswith("rebalance") for k in opt.stats())
    assert "rebalance" not in opt.details()
    on = optimizer(NEXUS_REBALANCE_ACCOUNT="pm", NEXUS_REBALANCE_CAPITAL="1e6")
    assert on.rebalancer is not None
    assert on.rebalancer.config.capital == 1e6
    assert on.stats()["rebalances_total"] == 0
