"""Solve a Problem: validate, formulate, call Clarabel, turn the answer into weights and figures.

    solver = PortfolioSolver()                       # one per portfolio: it keeps warm state
    solution = solver.solve(problem)                 # OptimizerError(code, reason) when there is no answer

Working set (long-only min variance, target return and max Sharpe without a turnover cap, from
`screen_min_assets` assets up): a long-only optimum holds few assets, so the model is solved over a working
set S with every other asset held at 0, and the answer is accepted only when it is optimal for the whole
problem — every asset outside S has a nonnegative reduced cost (the multiplier of its bound w_i >= 0,
computed from Clarabel's duals: λ_i = (Σ̂x)_i + Σ_r A_ri z_r). Otherwise the most violating assets join S
and the model is solved again. Warm start: the next solve of the same universe starts from the previous
optimum's holdings and the assets that were close to entering; each model shape keeps its Clarabel set-up
(conic.py), so a periodic re-solve is a data update and one or two small solves.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt
from scipy.linalg import cho_solve

from nexus.messages import Objective
from optimizer.conic import ConicSolver, Result
from optimizer.errors import ErrorCode, OptimizerError
from optimizer.formulation import Layout, build, return_scale
from optimizer.problem import PSD_JITTER, Constraints, Prepared, Problem, prepare

Array = npt.NDArray[np.float64]
Index = npt.NDArray[np.int64]

DUST = 1e-12
"""Weights smaller than this are reported as 0 (then the weights are rescaled to sum to 1 exactly)."""
SCREENABLE = (Objective.MIN_VARIANCE, Objective.TARGET_RETURN, Objective.MAX_SHARPE)
KAPPA_MIN = 1e-7
"""Below this κ the max-Sharpe optimum runs off to infinite weights (no fully invested portfolio has it)."""


@dataclass(frozen=True)
class Solution:
    """Weights and the portfolio's annualised expected return, volatility and Sharpe ratio."""

    objective: Objective
    weights: Array
    exp_return: float
    volatility: float
    sharpe: float
    risk_contributions: Array
    status: str
    iterations: int
    rounds: int
    """Working-set rounds (1 when the whole problem was solved at once)."""
    working_set: int
    """Assets in the last model solved."""
    warm: bool
    """Started from the previous solution's working set."""
    solve_us: int
    symbols: tuple[str, ...] = ()


@dataclass
class SolverOptions:
    screen_min_assets: int = 40
    """Use the working set from this many assets up (below, one model of every asset is as fast)."""
    max_rounds: int = 25
    reduced_cost_tol: float = 1e-8
    """Relative to the largest marginal risk in the working set."""
    solver_tol: float = 1e-10
    cache_shapes: int = 8
    max_assets: int = 0
    """Refuse problems with more assets (0 = no limit)."""


@dataclass
class _Warm:
    key: tuple[object, ...]
    start: Index
    """The last optimum's holdings and the assets that were close to entering."""
    ranking: Index
    """The other assets, most likely to enter first."""


def _sizes() -> Index:
    out = {16}
    size = 16.0
    while size < 1 << 20:
        size *= 1.25
        out.add(round(size / 4) * 4)
    return np.array(sorted(out), dtype=np.int64)


SIZES = _sizes()
"""Working-set sizes (16, 20, 24, 32, 40, 48, 60, 76, ...): a working set is padded up to the next one, so
that successive solves keep hitting the same model shapes and reuse their Clarabel set-ups."""


def _pad(work: npt.NDArray[np.bool_], ranking: Index, holdable: npt.NDArray[np.bool_]) -> None:
    """Grow the working set to the next size in SIZES with the best-ranked assets not yet in it."""
    have = int(np.count_nonzero(work))
    room = int(np.count_nonzero(holdable))
    target = min(int(SIZES[np.searchsorted(SIZES, have)]), room)
    if have >= target:
        return
    candidates = ranking[~work[ranking] & holdable[ranking]]
    work[candidates[: target - have]] = True


class PortfolioSolver:
    """Solves problems one after the other, keeping Clarabel set-ups per shape and the last working set."""

    def __init__(self, options: SolverOptions | None = None) -> None:
        self.options = options or SolverOptions()
        self.conic = ConicSolver(capacity=self.options.cache_shapes, tol=self.options.solver_tol)
        self._warm: _Warm | None = None

    def forget(self) -> None:
        """Drop the warm state (the next solve starts cold)."""
        self._warm = None

    def solve(self, problem: Problem, *, warm: bool = True) -> Solution:
        t0 = time.perf_counter_ns()
        prep = prepare(problem, max_assets=self.options.max_assets)
        if self._screenable(prep):
            weights, status, iterations, rounds, size, used_warm = self._screened(prep, warm)
        else:
            idx = np.arange(prep.n, dtype=np.int64)
            res, lay = self._run(prep, idx)
            weights = self._weights(prep, idx, res, lay)
            status, iterations, rounds, size, used_warm = res.quality, res.iterations, 1, prep.n, False
        sol = _solution(prep, weights, status, t0)
        return replace(sol, iterations=iterations, rounds=rounds, working_set=size, warm=used_warm)

    # -- one model ----------------------------------------------------------------------------------

    def _run(self, prep: Prepared, idx: Index) -> tuple[Result, Layout]:
        model, lay = build(prep, idx)
        res = self.conic.solve(model)
        if not res.ok:
            raise self._failure(prep, res)
        return res, lay

    def _weights(self, prep: Prepared, idx: Index, res: Result, lay: Layout) -> Array:
        w = np.zeros(prep.n)
        x = res.x[: lay.m]
        match prep.objective:
            case Objective.MAX_SHARPE:
                kappa = float(res.x[lay.kappa])
                if kappa < KAPPA_MIN:
                    raise OptimizerError(
                        ErrorCode.MAX_SHARPE_UNBOUNDED,
                        "the highest Sharpe ratio is only approached by ever larger long/short positions "
                        "(no fully invested portfolio attains it): add bounds or max_leverage",
                    )
                w[idx] = x / kappa
            case Objective.RISK_PARITY:
                assert prep.budgets is not None
                y = _newton_polish(prep.risk, prep.budgets, x)
                w[idx] = y / float(np.sum(y))
            case _:
                w[idx] = x
        return w

    # -- working set --------------------------------------------------------------------------------

    def _screenable(self, prep: Prepared) -> bool:
        return (
            prep.objective in SCREENABLE
            and prep.n >= self.options.screen_min_assets
            and prep.long_only
            and prep.max_turnover is None
        )

    def _screened(self, prep: Prepared, warm: bool) -> tuple[Array, str, int, int, int, bool]:
        n = prep.n
        holdable = prep.upper > 0.0
        key = (n, prep.objective, prep.problem.symbols)
        used_warm = warm and self._warm is not None and self._warm.key == key
        if used_warm:
            assert self._warm is not None
            start, ranking = self._warm.start, self._warm.ranking
        else:
            start, ranking = _cold_start(prep)
        work = np.zeros(n, dtype=bool)
        work[start] = True
        work |= prep.lower > 0.0  # assets with a positive floor are always held
        work &= holdable
        _cover_budget(prep, work)
        tol = self.options.reduced_cost_tol
        iterations = 0
        for rounds in range(1, self.options.max_rounds + 1):
            _pad(work, ranking, holdable)
            idx = np.flatnonzero(work).astype(np.int64)
            model, lay = build(prep, idx)
            res = self.conic.solve(model)
            iterations += res.iterations
            if not res.ok:
                break  # the working set may be too small to be feasible: decide on the whole problem
            x = res.x[: lay.m]
            lam, out, scale = _reduced_costs(prep, idx, x, res.z, model.tags, work)
            order = np.argsort(lam)
            ranking = out[order]
            violating = int(np.count_nonzero(lam < -tol * scale))
            if violating == 0:
                weights = self._weights(prep, idx, res, lay)
                held = idx[x > 1e-9 * float(np.max(np.abs(x)))]
                near = out[lam < 0.05 * scale]
                self._warm = _Warm(key, np.union1d(held, near).astype(np.int64), ranking)
                return weights, res.quality, iterations, rounds, idx.size, used_warm
            work[ranking[: min(violating, max(8, idx.size // 2))]] = True
        # no proof of optimality within the rounds (or an infeasible working set): solve everything
        idx = np.arange(n, dtype=np.int64)
        res, lay = self._run(prep, idx)
        weights = self._weights(prep, idx, res, lay)
        held = idx[np.abs(weights) > 1e-9]
        self._warm = _Warm(key, held, np.argsort(-weights).astype(np.int64))
        rounds = self.options.max_rounds + 1
        return weights, res.quality, iterations + res.iterations, rounds, n, used_warm

    # -- failures -----------------------------------------------------------------------------------

    def _failure(self, prep: Prepared, res: Result) -> OptimizerError:
        if not res.infeasible:
            return OptimizerError(
                ErrorCode.SOLVER_FAILED,
                f"Clarabel stopped with {res.status} after {res.iterations} iterations",
            )
        ppy = prep.problem.periods_per_year
        objective = prep.objective
        if objective is not Objective.MIN_VARIANCE:
            floor = self._min_variance(prep)  # raises INFEASIBLE when the constraints alone are
            if objective is Objective.MAX_SHARPE:
                return OptimizerError(
                    ErrorCode.INFEASIBLE_MAX_SHARPE,
                    "no portfolio within the constraints has an expected return above the risk-free rate",
                )
            if objective is Objective.TARGET_RETURN:
                top = _highest_return(prep)
                reach = f" (the highest is {top * ppy:.6g})" if top is not None else ""
                return OptimizerError(
                    ErrorCode.INFEASIBLE_TARGET_RETURN,
                    f"target_return {prep.problem.target_return:.6g} is not reachable within the "
                    f"constraints{reach}",
                )
            if objective is Objective.TARGET_VOLATILITY:
                low = math.sqrt(max(float(floor @ prep.cov @ floor), 0.0) * ppy)
                return OptimizerError(
                    ErrorCode.INFEASIBLE_TARGET_VOLATILITY,
                    f"target_volatility {prep.problem.target_volatility:.6g} is below the lowest volatility "
                    f"reachable within the constraints ({low:.6g})",
                )
        return OptimizerError(
            ErrorCode.INFEASIBLE,
            "no portfolio satisfies the constraints together (bounds, leverage, turnover)",
        )

    def _min_variance(self, prep: Prepared) -> Array:
        """The minimum-variance weights under the same constraints (for diagnosing infeasibility)."""
        problem = prep.problem
        plain = Problem(
            mu=problem.mu,
            cov=problem.cov,
            objective=Objective.MIN_VARIANCE,
            constraints=problem.constraints,
            periods_per_year=problem.periods_per_year,
        )
        base = prepare(plain)
        idx = np.arange(base.n, dtype=np.int64)
        res, lay = self._run(base, idx)
        return self._weights(base, idx, res, lay)


SEED_PASSES = 8
"""Passes of the cold-start seed (each drops the assets with a negative weight and re-solves)."""


def _cold_start(prep: Prepared) -> tuple[Index, Index]:
    """A first working set, and a ranking of every asset for padding it.

    The unconstrained optimum over a set of assets is Σ̂⁻¹1 (minimum risk) or Σ̂⁻¹(μ - rf) (max Sharpe) up to
    scale; its negative entries are the assets a long-only optimum is least likely to hold. Dropping them
    and solving again (a few dense solves of shrinking size) leaves a set close to the long-only optimum's
    holdings. It is only a seed: Clarabel solves the model over it and the reduced costs decide.
    The ranking is the first pass's weights. A return target also seeds the best expected returns."""
    n = prep.n
    rhs = prep.mu - prep.rf if prep.objective is Objective.MAX_SHARPE else np.ones(n)
    score = cho_solve((prep.chol, True), rhs)
    ranking = np.argsort(-score).astype(np.int64)
    keep = np.flatnonzero(score > 0)
    for _ in range(SEED_PASSES):
        if keep.size == 0:
            break
        sub = prep.risk[np.ix_(keep, keep)] + PSD_JITTER * np.eye(keep.size)  # may be singular (T < n)
        try:
            x = np.linalg.solve(sub, rhs[keep])
        except np.linalg.LinAlgError:
            break
        if np.all(x > 0):
            break
        keep = keep[x > 0]
    k = min(n, max(16, 2 * math.isqrt(n)))
    picks = keep if keep.size else ranking[:k]
    if prep.objective is Objective.TARGET_RETURN:
        picks = np.union1d(picks, np.argsort(-prep.mu)[: max(1, k // 2)])
    return np.asarray(picks, dtype=np.int64), ranking


def _newton_polish(risk: Array, budgets: Array, y: Array, steps: int = 6) -> Array:
    """A few Newton steps on ½y'Σ̂y - b'log y from Clarabel's interior-point answer. The exponential cones
    stop near 1e-7; the objective is smooth and strictly convex for y > 0, so Newton converges
    quadratically to machine precision. Kept only if the gradient shrank."""

    def grad(v: Array) -> Array:
        return np.asarray(risk @ v - budgets / v)

    best, best_norm = y, float(np.max(np.abs(grad(y))))
    for _ in range(steps):
        g = grad(y)
        step = np.linalg.solve(risk + np.diag(budgets / (y * y)), g)
        t = 1.0
        while np.any(y - t * step <= 0.0) and t > 1e-6:
            t *= 0.5
        y = y - t * step
        norm = float(np.max(np.abs(grad(y))))
        if not norm < best_norm:
            break
        best, best_norm = y, norm
        if norm < 1e-15:
            break
    return best


def _cover_budget(prep: Prepared, work: npt.NDArray[np.bool_]) -> None:
    """Add assets (lowest variance first) until the working set's upper bounds can sum to 1."""
    if float(np.sum(prep.upper[work])) >= 1.0:
        return
    for i in np.argsort(np.diag(prep.risk)):
        if not work[i] and prep.upper[i] > 0:
            work[i] = True
            if float(np.sum(prep.upper[work])) >= 1.0:
                return


def _reduced_costs(
    prep: Prepared,
    idx: Index,
    x: Array,
    z: Array,
    tags: dict[str, int],
    inside: npt.NDArray[np.bool_],
) -> tuple[Array, Index, float]:
    """Multipliers λ_i of w_i >= 0 for the holdable assets outside the working set, and the scale of the
    marginal risks inside it (Clarabel's KKT: Px + q + A'z = 0)."""
    out = np.flatnonzero(~inside & (prep.upper > 0.0)).astype(np.int64)
    if out.size == 0:
        return np.empty(0), out, 1.0
    grad_in = prep.risk[np.ix_(idx, idx)] @ x
    scale = float(np.max(np.abs(grad_in))) if grad_in.size else 1.0
    lam = prep.risk[np.ix_(out, idx)] @ x + z[tags["budget"]]
    if "ret" in tags:
        if prep.objective is Objective.MAX_SHARPE:
            excess = prep.mu - prep.rf
            lam += z[tags["ret"]] * excess[out] / return_scale(excess)
        else:
            lam -= z[tags["ret"]] * prep.mu[out] / return_scale(prep.mu)
    return lam, out, scale if scale > 0 else 1.0


def _highest_return(prep: Prepared) -> float | None:
    """Highest expected return (per period) of a long-only portfolio within box bounds: fill the best
    assets up to their upper bounds after every floor is met. None when other constraints apply."""
    if not prep.long_only or prep.max_turnover is not None:
        return None
    w = prep.lower.copy()
    room = 1.0 - float(w.sum())
    for i in np.argsort(-prep.mu):
        add = min(room, float(prep.upper[i] - w[i]))
        w[i] += add
        room -= add
        if room <= 0:
            break
    return float(prep.mu @ w)


def _solution(prep: Prepared, weights: Array, status: str, t0: int) -> Solution:
    w = np.clip(weights, prep.lower, prep.upper)
    # interior-point dust (1e-14 where the answer is 0) reads badly on a dashboard: 0 where 0 is allowed
    dust = (np.abs(w) < DUST) & (prep.lower <= 0.0) & (prep.upper >= 0.0)
    if dust.any():
        w[dust] = 0.0
        w /= w.sum()
    ppy = prep.problem.periods_per_year
    marginal = prep.cov @ w
    var = float(w @ marginal)
    exp_return = float(prep.mu @ w) * ppy
    vol = math.sqrt(max(var, 0.0) * ppy)
    sharpe = (exp_return - prep.problem.risk_free) / vol if vol > 0 else 0.0
    rc = w * marginal / var if var > 0 else np.zeros_like(w)
    return Solution(
        objective=prep.objective,
        weights=w,
        exp_return=exp_return,
        volatility=vol,
        sharpe=sharpe,
        risk_contributions=rc,
        status=status,
        iterations=0,
        rounds=1,
        working_set=prep.n,
        warm=False,
        solve_us=(time.perf_counter_ns() - t0) // 1000,
        symbols=prep.problem.symbols,
    )


__all__ = ["Constraints", "PortfolioSolver", "Problem", "Solution", "SolverOptions"]
