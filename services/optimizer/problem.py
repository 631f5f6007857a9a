"""What to solve (Problem, Constraints) and its validation into the scaled arrays the formulations use.

    problem = Problem(mu=mu, cov=cov, objective=Objective.MAX_SHARPE, constraints=Constraints(upper=0.3))
    prep = prepare(problem)          # OptimizerError(code, reason) when the input cannot be solved

Units: `mu` and `cov` are per period; `periods_per_year` annualises; `risk_free`, `target_return` and
`target_volatility` are annual (divided by periods_per_year, or its square root for a volatility, inside).

Scaling (so that the solver sees numbers near 1 whatever the units): the covariance is divided by its mean
variance c = trace(cov)/n; the regularised, scaled risk matrix is Σ̂ = cov/c + l2·I. Return vectors are
divided by their largest magnitude. Weights are unchanged by these scalings.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from nexus.messages import Objective
from optimizer.errors import ErrorCode, OptimizerError

Array = npt.NDArray[np.float64]

BOUND_TOL = 1e-9
"""Slack allowed when checking that bounds can sum to 1."""
PSD_JITTER = 1e-10
"""Relative jitter under which a covariance still counts as positive semidefinite (rounding noise)."""


@dataclass(frozen=True)
class Constraints:
    """Weights always sum to 1. `lower`/`upper`: one number for every asset or one per asset (None = no
    bound; long-only adds lower = 0). `max_leverage` caps sum |w|, `max_turnover` caps sum |w - current|,
    `l2` >= 0 regularises the risk term (see the module docstring)."""

    long_only: bool = True
    lower: float | Array | None = None
    upper: float | Array | None = None
    max_leverage: float | None = None
    max_turnover: float | None = None
    current: Array | None = None
    l2: float = 0.0


@dataclass(frozen=True)
class Problem:
    mu: Array
    cov: Array
    objective: Objective
    constraints: Constraints = field(default_factory=Constraints)
    risk_free: float = 0.0
    target_return: float | None = None
    target_volatility: float | None = None
    risk_budgets: Array | None = None
    periods_per_year: float = 1.0
    symbols: tuple[str, ...] = ()


@dataclass(frozen=True)
class Prepared:
    """A validated problem in the solver's units."""

    problem: Problem
    n: int
    mu: Array
    cov: Array
    c: float
    """Mean asset variance (per period): the covariance scale."""
    risk: Array
    """Σ̂ = cov / c + l2·I."""
    lower: Array
    """Lower bounds, -inf where none."""
    upper: Array
    """Upper bounds, +inf where none."""
    max_leverage: float | None
    max_turnover: float | None
    current: Array | None
    rf: float
    """Risk-free rate per period."""
    target_return: float | None
    """Per period."""
    target_variance: float | None
    """Per period, scaled by 1/c (compared with w'Σ̂w)."""
    budgets: Array | None
    chol: Array
    """Lower Cholesky factor of Σ̂ (+ jitter): Σ̂ ≈ L L'."""

    @property
    def long_only(self) -> bool:
        return bool(np.all(self.lower >= 0.0))

    @property
    def objective(self) -> Objective:
        return self.problem.objective


def _finite(name: str, values: Array) -> None:
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        where = np.unravel_index(int(bad[0]), values.shape)
        index = ",".join(str(int(i)) for i in where)
        raise OptimizerError(
            ErrorCode.NAN_INPUT, f"{name}[{index}] is {values.flat[bad[0]]}: every input must be finite"
        )


def _vector(name: str, value: float | Array | None, n: int, default: float) -> Array:
    if value is None:
        return np.full(n, default)
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.shape != (n,):
        raise OptimizerError(ErrorCode.SHAPE_MISMATCH, f"{name} has shape {arr.shape}, expected ({n},)")
    if np.any(np.isnan(arr)):
        _finite(name, arr)
    return arr


def _scalar(name: str, value: float | None, *, positive: bool = False, nonneg: bool = False) -> None:
    if value is None:
        return
    if not np.isfinite(value):
        raise OptimizerError(ErrorCode.NAN_INPUT, f"{name} is {value}: every input must be finite")
    if positive and value <= 0:
        raise OptimizerError(ErrorCode.INVALID_FIELD, f"{name} must be > 0, got {value}")
    if nonneg and value < 0:
        raise OptimizerError(ErrorCode.INVALID_FIELD, f"{name} must be >= 0, got {value}")


def check_covariance(cov: Array) -> tuple[float, Array]:
    """(mean variance c, Cholesky factor of cov/c + jitter); NOT_SYMMETRIC / NOT_PSD otherwise."""
    n = cov.shape[0]
    diag = np.diag(cov)
    c = float(diag.mean())
    if np.any(diag < 0) or c <= 0:
        raise OptimizerError(ErrorCode.NOT_PSD, "the covariance has a negative or all-zero diagonal")
    asym = float(np.max(np.abs(cov - cov.T)))
    if asym > 1e-9 * c:
        raise OptimizerError(
            ErrorCode.NOT_SYMMETRIC, f"the covariance is not symmetric (max |cov - cov'| = {asym:.3g})"
        )
    scaled = np.asarray(cov / c, dtype=np.float64)
    try:
        chol = np.asarray(np.linalg.cholesky(scaled + PSD_JITTER * np.eye(n)), dtype=np.float64)
    except np.linalg.LinAlgError:
        low = float(np.linalg.eigvalsh(scaled)[0]) * c
        raise OptimizerError(
            ErrorCode.NOT_PSD,
            f"the covariance is not positive semidefinite (smallest eigenvalue {low:.3g})",
        ) from None
    return c, chol


def prepare(problem: Problem, *, max_assets: int = 0) -> Prepared:
    """Validate `problem`; raise OptimizerError naming the first thing wrong with it."""
    mu = np.asarray(problem.mu, dtype=np.float64)
    cov = np.asarray(problem.cov, dtype=np.float64)
    if mu.ndim != 1 or mu.size == 0:
        raise OptimizerError(ErrorCode.SHAPE_MISMATCH, f"mu must be a non-empty vector, got shape {mu.shape}")
    n = mu.size
    if max_assets and n > max_assets:
        raise OptimizerError(ErrorCode.TOO_MANY_ASSETS, f"{n} assets > the limit of {max_assets}")
    if cov.shape != (n, n):
        raise OptimizerError(ErrorCode.SHAPE_MISMATCH, f"cov has shape {cov.shape}, mu has {n} assets")
    if problem.symbols and len(problem.symbols) != n:
        raise OptimizerError(ErrorCode.SHAPE_MISMATCH, f"{len(problem.symbols)} symbols for {n} assets")
    _finite("mu", mu)
    _finite("cov", cov)
    c, chol = check_covariance(cov)  # the data before the constraints
    cons = problem.constraints
    for name, value in (("risk_free", problem.risk_free), ("target_return", problem.target_return)):
        _scalar(name, value)
    _scalar("periods_per_year", problem.periods_per_year, positive=True)
    _scalar("target_volatility", problem.target_volatility, positive=True)
    _scalar("max_leverage", cons.max_leverage, positive=True)
    _scalar("max_turnover", cons.max_turnover, nonneg=True)
    _scalar("l2", cons.l2, nonneg=True)

    lower = _vector("lower", cons.lower, n, -np.inf)
    upper = _vector("upper", cons.upper, n, np.inf)
    if cons.long_only:
        lower = np.maximum(lower, 0.0)
    _check_bounds(lower, upper)
    if cons.max_leverage is not None and cons.max_leverage < 1.0 - BOUND_TOL:
        raise OptimizerError(
            ErrorCode.LEVERAGE_INFEASIBLE,
            f"max_leverage {cons.max_leverage} < 1: weights summing to 1 have sum |w| >= 1",
        )
    current = None
    if cons.max_turnover is not None:
        if cons.current is None or len(cons.current) == 0:
            raise OptimizerError(ErrorCode.MISSING_INPUT, "max_turnover needs current_weights")
        current = _vector("current_weights", cons.current, n, 0.0)
        _finite("current_weights", current)

    risk = cov / c
    if cons.l2 > 0:
        risk = risk + cons.l2 * np.eye(n)
        chol = np.asarray(np.linalg.cholesky(risk + PSD_JITTER * np.eye(n)), dtype=np.float64)

    ppy = problem.periods_per_year
    target_return = None
    target_variance = None
    budgets = None
    objective = problem.objective
    if objective is Objective.TARGET_RETURN:
        if problem.target_return is None:
            raise OptimizerError(ErrorCode.MISSING_INPUT, "objective target_return needs target_return")
        target_return = problem.target_return / ppy
    if objective is Objective.TARGET_VOLATILITY:
        if problem.target_volatility is None:
            raise OptimizerError(
                ErrorCode.MISSING_INPUT, "objective target_volatility needs target_volatility"
            )
        target_variance = problem.target_volatility**2 / ppy / c
    if objective is Objective.RISK_PARITY:
        budgets = _risk_budgets(problem.risk_budgets, n)
        _risk_parity_constraints(cons, lower, upper)
    if objective is Objective.MAX_SHARPE:
        _check_max_sharpe(mu, problem.risk_free / ppy, lower, upper, ppy)

    return Prepared(
        problem=problem,
        n=n,
        mu=mu,
        cov=cov,
        c=c,
        risk=risk,
        lower=lower,
        upper=upper,
        max_leverage=cons.max_leverage,
        max_turnover=cons.max_turnover,
        current=current,
        rf=problem.risk_free / ppy,
        target_return=target_return,
        target_variance=target_variance,
        budgets=budgets,
        chol=chol,
    )


def _check_bounds(lower: Array, upper: Array) -> None:
    crossed = np.flatnonzero(lower > upper)
    if crossed.size:
        i = int(crossed[0])
        raise OptimizerError(
            ErrorCode.BOUNDS_INFEASIBLE, f"lower[{i}] = {lower[i]:g} is above upper[{i}] = {upper[i]:g}"
        )
    low, high = float(np.sum(lower)), float(np.sum(upper))
    if low > 1.0 + BOUND_TOL:
        raise OptimizerError(
            ErrorCode.BOUNDS_INFEASIBLE, f"the lower bounds sum to {low:g} > 1: weights cannot sum to 1"
        )
    if high < 1.0 - BOUND_TOL:
        raise OptimizerError(
            ErrorCode.BOUNDS_INFEASIBLE, f"the upper bounds sum to {high:g} < 1: weights cannot sum to 1"
        )


def _check_max_sharpe(mu: Array, rf: float, lower: Array, upper: Array, ppy: float) -> None:
    """Long-only (lower >= 0): a portfolio beats the risk-free rate only if some asset it may hold does."""
    if not np.all(lower >= 0.0):
        return
    holdable = upper > 0.0
    best = float(np.max(mu[holdable]))
    if best <= rf:
        raise OptimizerError(
            ErrorCode.INFEASIBLE_MAX_SHARPE,
            f"every expected return is at or below the risk-free rate (best {best * ppy:.6g} <= "
            f"{rf * ppy:.6g} a year): no long-only portfolio has a positive Sharpe ratio",
        )


def _risk_budgets(budgets: Array | None, n: int) -> Array:
    if budgets is None or len(budgets) == 0:
        return np.full(n, 1.0 / n)
    b = _vector("risk_budgets", budgets, n, 0.0)
    _finite("risk_budgets", b)
    if np.any(b <= 0):
        raise OptimizerError(ErrorCode.INVALID_FIELD, "risk_budgets must all be > 0")
    return np.asarray(b / b.sum(), dtype=np.float64)


def _risk_parity_constraints(cons: Constraints, lower: Array, upper: Array) -> None:
    """Risk parity is long-only with budgets; other constraints would change what it means."""
    unsupported = []
    if not cons.long_only:
        unsupported.append("long_only=false")
    if np.any(lower > 0) or np.any(np.isfinite(upper)):
        unsupported.append("lower/upper")
    if cons.max_turnover is not None:
        unsupported.append("max_turnover")
    if cons.l2 > 0:
        unsupported.append("l2")
    if unsupported:
        raise OptimizerError(
            ErrorCode.CONSTRAINT_NOT_SUPPORTED,
            f"risk_parity takes risk_budgets only, not {', '.join(unsupported)}",
        )
