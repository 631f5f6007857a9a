"""Constrained problems: the optimizer's objective equals a reference solution computed here by scipy
(SLSQP on the textbook formulation, not the conic one) within 1e-6, and its weights satisfy every
constraint."""

from __future__ import annotations

import numpy as np
import pytest

from nexus.messages import Objective
from optimizer.solver import Constraints, PortfolioSolver, Problem, Solution, SolverOptions
from tests.optimizer.reference import (
    equity_market,
    market,
    neg_return,
    neg_sharpe,
    risk_parity_objective,
    risk_parity_reference,
    slsqp,
    variance,
)

TOL = 1e-6
FEAS = 1e-8


def assert_feasible(
    sol: Solution,
    lower: np.ndarray | None = None,
    upper: np.ndarray | None = None,
    *,
    leverage: float | None = None,
    turnover: tuple[np.ndarray, float] | None = None,
) -> None:
    w = sol.weights
    assert w.sum() == pytest.approx(1.0, abs=FEAS)
    if lower is not None:
        assert np.all(w >= lower - FEAS)
    if upper is not None:
        assert np.all(w <= upper + FEAS)
    if leverage is not None:
        assert np.abs(w).sum() <= leverage + FEAS
    if turnover is not None:
        current, cap = turnover
        assert np.abs(w - current).sum() <= cap + FEAS


def assert_matches(f: object, ours: np.ndarray, ref: np.ndarray) -> None:
    mine, theirs = f(ours), f(ref)  # type: ignore[operator]
    assert abs(mine - theirs) <= TOL, (mine, theirs)
    assert mine <= theirs + 1e-9, "the reference found a better point than the optimizer"


N = 10
SEEDS = [3, 4]


@pytest.mark.parametrize("seed", SEEDS)
def test_long_only_min_variance_with_bounds(seed: int) -> None:
    mu, cov = market(N, seed)
    lower, upper = np.full(N, 0.02), np.full(N, 0.25)
    sol = PortfolioSolver().solve(
        Problem(
            mu=mu, cov=cov, objective=Objective.MIN_VARIANCE, constraints=Constraints(lower=0.02, upper=0.25)
        )
    )
    ref = slsqp(variance(cov), N, lower=lower, upper=upper)
    assert_feasible(sol, lower, upper)
    assert_matches(variance(cov)[0], sol.weights, ref)


@pytest.mark.parametrize("seed", SEEDS)
def test_long_only_max_sharpe_with_a_cap(seed: int) -> None:
    mu, cov = market(N, seed)
    rf = 0.03
    upper = np.full(N, 0.3)
    sol = PortfolioSolver().solve(
        Problem(
            mu=mu, cov=cov, objective=Objective.MAX_SHARPE, risk_free=rf, constraints=Constraints(upper=0.3)
        )
    )
    ref = slsqp(neg_sharpe(mu, cov, rf), N, lower=np.zeros(N), upper=upper)
    assert_feasible(sol, np.zeros(N), upper)
    assert_matches(neg_sharpe(mu, cov, rf)[0], sol.weights, ref)
    assert sol.sharpe == pytest.approx(-neg_sharpe(mu, cov, rf)[0](sol.weights), rel=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_long_only_target_return(seed: int) -> None:
    mu, cov = market(N, seed)
    target = float(np.quantile(mu, 0.8))
    sol = PortfolioSolver().solve(
        Problem(mu=mu, cov=cov, objective=Objective.TARGET_RETURN, target_return=target)
    )
    ref = slsqp(variance(cov), N, lower=np.zeros(N), ineq=[(lambda w: mu @ w - target, lambda w: mu)])
    assert_feasible(sol, np.zeros(N))
    assert sol.exp_return >= target - FEAS
    assert_matches(variance(cov)[0], sol.weights, ref)


@pytest.mark.parametrize("seed", SEEDS)
def test_long_only_target_volatility(seed: int) -> None:
    mu, cov = market(N, seed)
    sigma = 0.2
    sol = PortfolioSolver().solve(
        Problem(mu=mu, cov=cov, objective=Objective.TARGET_VOLATILITY, target_volatility=sigma)
    )
    risk = (lambda w: sigma**2 - w @ cov @ w, lambda w: -2 * cov @ w)
    ref = slsqp(neg_return(mu), N, lower=np.zeros(N), ineq=[risk])
    assert_feasible(sol, np.zeros(N))
    assert sol.volatility <= sigma + FEAS
    assert_matches(neg_return(mu)[0], sol.weights, ref)


@pytest.mark.parametrize("seed", SEEDS)
def test_long_short_max_sharpe_with_a_leverage_cap_and_bounds(seed: int) -> None:
    mu, cov = market(N, seed)
    rf, cap = 0.02, 1.15
    lower, upper = np.full(N, -0.3), np.full(N, 0.6)
    sol = PortfolioSolver().solve(
        Problem(
            mu=mu,
            cov=cov,
            objective=Objective.MAX_SHARPE,
            risk_free=rf,
            constraints=Constraints(long_only=False, lower=-0.3, upper=0.6, max_leverage=cap),
        )
    )
    ref = slsqp(neg_sharpe(mu, cov, rf), N, lower=lower, upper=upper, l1_cap=cap)
    uncapped = PortfolioSolver().solve(
        Problem(
            mu=mu,
            cov=cov,
            objective=Objective.MAX_SHARPE,
            risk_free=rf,
            constraints=Constraints(long_only=False, lower=-0.3, upper=0.6),
        )
    )
    assert np.abs(uncapped.weights).sum() > cap + 0.05, "pick a cap that binds"
    assert_feasible(sol, lower, upper, leverage=cap)
    assert np.abs(sol.weights).sum() == pytest.approx(cap, abs=1e-6)
    assert_matches(neg_sharpe(mu, cov, rf)[0], sol.weights, ref)


@pytest.mark.parametrize("seed", SEEDS)
def test_long_short_min_variance_with_l2_and_a_leverage_cap(seed: int) -> None:
    mu, cov = market(N, seed)
    cap, gamma = 1.2, 0.1
    sol = PortfolioSolver().solve(
        Problem(
            mu=mu,
            cov=cov,
            objective=Objective.MIN_VARIANCE,
            constraints=Constraints(long_only=False, max_leverage=cap, l2=gamma),
        )
    )
    regularised = cov + gamma * np.mean(np.diag(cov)) * np.eye(N)
    ref = slsqp(variance(regularised), N, l1_cap=cap)
    assert_feasible(sol, leverage=cap)
    assert_matches(variance(regularised)[0], sol.weights, ref)


@pytest.mark.parametrize(
    "objective", [Objective.MIN_VARIANCE, Objective.MAX_SHARPE, Objective.TARGET_VOLATILITY]
)
def test_turnover_cap_against_current_weights(objective: Objective) -> None:
    mu, cov = market(N, 5)
    rf, sigma, cap = 0.02, 0.18, 0.3
    current = np.random.default_rng(9).dirichlet(np.ones(N))
    sol = PortfolioSolver().solve(
        Problem(
            mu=mu,
            cov=cov,
            objective=objective,
            risk_free=rf,
            target_volatility=sigma,
            constraints=Constraints(max_turnover=cap, current=current, upper=0.5),
        )
    )
    lower, upper = np.zeros(N), np.full(N, 0.5)
    f = {
        Objective.MIN_VARIANCE: variance(cov),
        Objective.MAX_SHARPE: neg_sharpe(mu, cov, rf),
        Objective.TARGET_VOLATILITY: neg_return(mu),
    }[objective]
    ineq = [(lambda w: sigma**2 - w @ cov @ w, lambda w: -2 * cov @ w)]
    ref = slsqp(
        f,
        N,
        lower=lower,
        upper=upper,
        anchor=current,
        l1_cap=cap,
        ineq=ineq if objective is Objective.TARGET_VOLATILITY else None,
    )
    assert_feasible(sol, lower, upper, turnover=(current, cap))
    assert_matches(f[0], sol.weights, ref)


def test_risk_parity_with_a_full_covariance_and_budgets() -> None:
    _, cov = market(N, 6)
    budgets = np.linspace(1.0, 3.0, N)
    budgets /= budgets.sum()
    sol = PortfolioSolver().solve(
        Problem(mu=np.zeros(N), cov=cov, objective=Objective.RISK_PARITY, risk_budgets=budgets)
    )
    ref = risk_parity_reference(cov, budgets)
    f = risk_parity_objective(cov, budgets)
    # the minimiser y has y'Σy = sum(b) = 1, so our y is w / sqrt(w'Σw)
    w = sol.weights
    y = w / np.sqrt(w @ cov @ w)
    assert abs(f(y) - f(ref)) <= TOL
    np.testing.assert_allclose(w, ref / ref.sum(), atol=1e-7)
    np.testing.assert_allclose(sol.risk_contributions, budgets, atol=1e-9)
    assert_feasible(sol, np.zeros(N))


# -- the working set: large long-only problems ------------------------------------------------------


@pytest.mark.parametrize("objective", [Objective.MIN_VARIANCE, Objective.MAX_SHARPE, Objective.TARGET_RETURN])
def test_working_set_solution_matches_the_reference(objective: Objective) -> None:
    n = 70
    mu, cov = equity_market(n, 7)
    rf, target = 0.02, float(np.quantile(mu, 0.9))
    sol = PortfolioSolver().solve(
        Problem(
            mu=mu,
            cov=cov,
            objective=objective,
            risk_free=rf,
            target_return=target,
            constraints=Constraints(upper=0.2),
        )
    )
    assert sol.working_set < n, "the working set was not used"
    lower, upper = np.zeros(n), np.full(n, 0.2)
    if objective is Objective.MAX_SHARPE:
        f = neg_sharpe(mu, cov, rf)
        ref = slsqp(f, n, lower=lower, upper=upper)
    elif objective is Objective.TARGET_RETURN:
        f = variance(cov)
        ref = slsqp(f, n, lower=lower, upper=upper, ineq=[(lambda w: mu @ w - target, lambda w: mu)])
    else:
        f = variance(cov)
        ref = slsqp(f, n, lower=lower, upper=upper)
    assert_feasible(sol, lower, upper)
    assert_matches(f[0], sol.weights, ref)


@pytest.mark.parametrize("objective", [Objective.MIN_VARIANCE, Objective.MAX_SHARPE])
@pytest.mark.parametrize("seed", [11, 12, 13])
def test_working_set_equals_one_model_of_every_asset_cold_and_warm(objective: Objective, seed: int) -> None:
    """Differential: the working-set path (cold, then warm on the next window's estimates) against one
    Clarabel model over all assets, on seeded random problems."""
    n = 150
    rng = np.random.default_rng(seed)
    returns = rng.multivariate_normal(*equity_market(n, seed), size=400) / 16
    full = PortfolioSolver(SolverOptions(screen_min_assets=10**9))
    screened = PortfolioSolver()
    for window in (returns[:300], returns[20:320], returns[40:340]):
        mu, cov = window.mean(axis=0), np.cov(window, rowvar=False)
        if objective is Objective.MAX_SHARPE and mu.max() <= 0:
            continue
        problem = Problem(mu=mu, cov=cov, objective=objective, periods_per_year=256)
        a, b = full.solve(problem), screened.solve(problem)
        assert a.working_set == n
        assert b.working_set < n
        f = variance(cov)[0] if objective is Objective.MIN_VARIANCE else neg_sharpe(mu, cov, 0.0)[0]
        assert abs(f(a.weights) - f(b.weights)) <= 1e-7 * max(1.0, abs(f(a.weights)))
        assert_feasible(b, np.zeros(n))
    assert b.warm, "the last solve should have started from the previous working set"
    assert screened.conic.updates_total > 0, "no Clarabel set-up was reused"


@pytest.mark.parametrize("objective", [Objective.MIN_VARIANCE, Objective.MAX_SHARPE])
def test_working_set_with_a_singular_sample_covariance(objective: Objective) -> None:
    """Fewer periods than assets: the sample covariance is singular (rank 39 for 80 assets)."""
    n = 80
    rng = np.random.default_rng(4)
    mu_true, cov_true = equity_market(n, 4)
    returns = rng.multivariate_normal(mu_true / 252, cov_true / 252, size=40)
    mu, cov = returns.mean(axis=0) + 0.001, np.cov(returns, rowvar=False)
    assert np.linalg.matrix_rank(cov) < n
    problem = Problem(mu=mu, cov=cov, objective=objective, periods_per_year=252)
    full = PortfolioSolver(SolverOptions(screen_min_assets=10**9)).solve(problem)
    screened = PortfolioSolver().solve(problem)
    assert screened.working_set < n
    f = variance(cov)[0] if objective is Objective.MIN_VARIANCE else neg_sharpe(mu, cov, 0.0)[0]
    assert abs(f(full.weights) - f(screened.weights)) <= 1e-7 * max(1.0, abs(f(full.weights)))
    assert_feasible(screened, np.zeros(n))
