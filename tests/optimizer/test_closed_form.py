"""Unconstrained problems (long/short, no bounds or caps) have closed forms; the solver must equal them."""

from __future__ import annotations

import numpy as np
import pytest

from nexus.messages import Objective
from optimizer.solver import Constraints, PortfolioSolver, Problem
from tests.optimizer.reference import market

FREE = Constraints(long_only=False)


@pytest.fixture(params=[0, 1, 2], ids=lambda s: f"seed{s}")
def inputs(request: pytest.FixtureRequest) -> tuple[np.ndarray, np.ndarray]:
    return market(12, request.param)


def frontier(mu: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float, float, float]:
    inv = np.linalg.inv(cov)
    ones = np.ones(mu.size)
    a, b, c = ones @ inv @ ones, ones @ inv @ mu, mu @ inv @ mu
    return inv @ ones, inv @ mu, a, b, c, a * c - b * b


def on_frontier(mu: np.ndarray, cov: np.ndarray, r: float) -> np.ndarray:
    """The minimum-variance weights with expected return r (two-fund theorem)."""
    inv1, invmu, a, b, c, d = frontier(mu, cov)
    return ((c - b * r) * inv1 + (a * r - b) * invmu) / d


def test_min_variance_is_the_global_minimum_variance_portfolio(inputs: tuple[np.ndarray, np.ndarray]) -> None:
    mu, cov = inputs
    sol = PortfolioSolver().solve(Problem(mu=mu, cov=cov, objective=Objective.MIN_VARIANCE, constraints=FREE))
    inv1, _, a, *_ = frontier(mu, cov)
    np.testing.assert_allclose(sol.weights, inv1 / a, atol=1e-8)
    assert sol.volatility == pytest.approx(np.sqrt(1 / a), rel=1e-9)


def test_max_sharpe_is_the_tangency_portfolio(inputs: tuple[np.ndarray, np.ndarray]) -> None:
    mu, cov = inputs
    rf = 0.02
    sol = PortfolioSolver().solve(
        Problem(mu=mu, cov=cov, objective=Objective.MAX_SHARPE, risk_free=rf, constraints=FREE)
    )
    tangent = np.linalg.solve(cov, mu - rf)
    assert tangent.sum() > 0
    expected = tangent / tangent.sum()
    np.testing.assert_allclose(sol.weights, expected, atol=1e-8)
    # the tangency Sharpe ratio is sqrt((mu - rf)' Σ^-1 (mu - rf))
    assert sol.sharpe == pytest.approx(np.sqrt((mu - rf) @ tangent), abs=1e-9)


def test_target_return_lies_on_the_efficient_frontier(inputs: tuple[np.ndarray, np.ndarray]) -> None:
    mu, cov = inputs
    _, _, a, b, _, _ = frontier(mu, cov)
    target = b / a + 0.05  # above the minimum-variance portfolio's return: the constraint binds
    sol = PortfolioSolver().solve(
        Problem(mu=mu, cov=cov, objective=Objective.TARGET_RETURN, target_return=target, constraints=FREE)
    )
    np.testing.assert_allclose(sol.weights, on_frontier(mu, cov, target), atol=1e-8)
    assert sol.exp_return == pytest.approx(target, abs=1e-9)


def test_target_volatility_takes_the_frontier_return_at_that_volatility(
    inputs: tuple[np.ndarray, np.ndarray],
) -> None:
    mu, cov = inputs
    _, _, a, b, c, d = frontier(mu, cov)
    sigma = 1.5 * np.sqrt(1 / a)  # above the minimum volatility
    # variance on the frontier is (a r^2 - 2 b r + c) / d; the upper branch at sigma:
    r = (b + np.sqrt(b * b - a * (c - d * sigma**2))) / a
    sol = PortfolioSolver().solve(
        Problem(
            mu=mu, cov=cov, objective=Objective.TARGET_VOLATILITY, target_volatility=sigma, constraints=FREE
        )
    )
    np.testing.assert_allclose(sol.weights, on_frontier(mu, cov, r), atol=1e-7)
    assert sol.volatility == pytest.approx(sigma, rel=1e-8)
    assert sol.exp_return == pytest.approx(r, abs=1e-8)


def test_risk_parity_with_a_diagonal_covariance_is_inverse_volatility() -> None:
    vols = np.array([0.1, 0.2, 0.3, 0.5, 0.8])
    budgets = np.array([1.0, 2.0, 3.0, 1.0, 3.0])
    sol = PortfolioSolver().solve(
        Problem(mu=np.zeros(5), cov=np.diag(vols**2), objective=Objective.RISK_PARITY, risk_budgets=budgets)
    )
    expected = np.sqrt(budgets) / vols  # y_i (Σy)_i = b_i  =>  σ_i² y_i² = b_i
    np.testing.assert_allclose(sol.weights, expected / expected.sum(), atol=1e-10)
    np.testing.assert_allclose(sol.risk_contributions, budgets / budgets.sum(), atol=1e-10)


def test_l2_regularisation_is_the_gmv_of_the_regularised_covariance(
    inputs: tuple[np.ndarray, np.ndarray],
) -> None:
    mu, cov = inputs
    gamma = 0.5
    sol = PortfolioSolver().solve(
        Problem(
            mu=mu,
            cov=cov,
            objective=Objective.MIN_VARIANCE,
            constraints=Constraints(long_only=False, l2=gamma),
        )
    )
    regularised = cov + gamma * np.mean(np.diag(cov)) * np.eye(mu.size)
    inv1 = np.linalg.solve(regularised, np.ones(mu.size))
    np.testing.assert_allclose(sol.weights, inv1 / inv1.sum(), atol=1e-8)


def test_per_period_inputs_annualise_to_the_same_answer(inputs: tuple[np.ndarray, np.ndarray]) -> None:
    mu, cov = inputs
    rf = 0.01
    annual = PortfolioSolver().solve(
        Problem(mu=mu, cov=cov, objective=Objective.MAX_SHARPE, risk_free=rf, constraints=FREE)
    )
    daily = PortfolioSolver().solve(
        Problem(
            mu=mu / 252,
            cov=cov / 252,
            objective=Objective.MAX_SHARPE,
            risk_free=rf,
            periods_per_year=252,
            constraints=FREE,
        )
    )
    np.testing.assert_allclose(daily.weights, annual.weights, atol=1e-8)
    assert daily.exp_return == pytest.approx(annual.exp_return, rel=1e-9)
    assert daily.volatility == pytest.approx(annual.volatility, rel=1e-9)
    assert daily.sharpe == pytest.approx(annual.sharpe, rel=1e-9)
    w = annual.weights
    assert annual.exp_return == pytest.approx(mu @ w, rel=1e-12)
    assert annual.volatility == pytest.approx(np.sqrt(w @ cov @ w), rel=1e-12)
    assert annual.sharpe == pytest.approx((mu @ w - rf) / np.sqrt(w @ cov @ w), rel=1e-12)
    assert annual.risk_contributions.sum() == pytest.approx(1.0, abs=1e-12)
