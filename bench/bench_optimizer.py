"""Optimizer solve time: long-only min variance and max Sharpe at 50 / 100 / 250 / 500 assets, p50 over a
rolling window of re-solves: warm (one solver across the windows, as the service runs), without warm start
(the same solver, warm=False: Clarabel set-ups kept, the working set from scratch) and fresh (a new solver
per solve: nothing kept), beside baselines measured in the same run on the same problems:

- Clarabel on one model of every asset (set-up + solve, no working set): the library called plainly;
- scipy SLSQP on the textbook formulation (the general-purpose solver the tests use as reference);
- numpy's closed form of the *unconstrained* (long/short) problem: a floor, not the same problem.

Inputs: daily returns of an equity-like factor model (market beta, 8 sectors, idiosyncratic vol 15-60%);
each window is 252 days, the next window one day later; mean returns and Ledoit-Wolf covariance.
Solve time is PortfolioSolver.solve end to end (validation, Cholesky, models, Clarabel, figures).

    python bench/bench_optimizer.py [--runs 5] [--quick] [--windows 40] [--slsqp-max-assets 500]

Runs with OPENBLAS_NUM_THREADS=1 unless set (the service's setting too).
"""

from __future__ import annotations

import os

# Single-threaded BLAS, as the optimizer service runs (services/optimizer/__main__.py): on this shared 2-core
# machine OpenBLAS's spinning threads made numpy 10-50x slower under load. Numpy reads it on import.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import statistics
import time
from collections.abc import Callable

import numpy as np
from scipy.optimize import minimize

from common import header, parser
from nexus.messages import Objective
from optimizer.estimators import ledoit_wolf
from optimizer.problem import Constraints, Problem
from optimizer.solver import PortfolioSolver, SolverOptions

DAYS = 252
RF = 0.02
GOALS_MS = {100: 2.0, 500: 50.0}
Array = np.ndarray


def daily_returns(n: int, days: int, seed: int) -> Array:
    rng = np.random.default_rng(seed)
    beta = rng.normal(1.0, 0.35, n)
    sectors = np.zeros((n, 8))
    sectors[np.arange(n), rng.integers(0, 8, n)] = rng.normal(1.0, 0.3, n)
    idio = rng.uniform(0.15, 0.6, n)
    mu = 0.02 + 0.06 * beta + rng.normal(0.0, 0.08, n)
    factors = rng.normal(0.0, 1.0, (days, 9)) * np.r_[0.16, [0.08] * 8] / np.sqrt(DAYS)
    loadings = np.column_stack((beta, sectors))
    noise = rng.normal(0.0, 1.0, (days, n)) * idio / np.sqrt(DAYS)
    return np.asarray(mu / DAYS + factors @ loadings.T + noise)


def windows(n: int, count: int, seed: int) -> tuple[list[tuple[Array, Array]], list[float]]:
    """(mu, cov) per rolling window, and the Ledoit-Wolf estimation time of each (ms)."""
    returns = daily_returns(n, DAYS + count, seed)
    out, est = [], []
    for k in range(count):
        window = returns[k : k + DAYS]
        t0 = time.perf_counter()
        cov, _ = ledoit_wolf(window)
        mu = window.mean(axis=0)
        est.append((time.perf_counter() - t0) * 1e3)
        out.append((mu, cov))
    return out, est


def problem(mu: Array, cov: Array, objective: Objective) -> Problem:
    return Problem(
        mu=mu, cov=cov, objective=objective, risk_free=RF, periods_per_year=DAYS, constraints=Constraints()
    )


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e3


def slsqp(mu: Array, cov: Array, objective: Objective) -> Array:
    n = mu.size
    excess = mu - RF / DAYS
    if objective is Objective.MIN_VARIANCE:

        def f(w: Array) -> float:
            return float(w @ cov @ w)

        def g(w: Array) -> Array:
            return np.asarray(2 * cov @ w)
    else:

        def f(w: Array) -> float:
            return float(-(excess @ w) / np.sqrt(w @ cov @ w))

        def g(w: Array) -> Array:
            var = w @ cov @ w
            sd = np.sqrt(var)
            return np.asarray(-(excess * sd - (excess @ w) * (cov @ w) / sd) / var)

    res = minimize(
        f,
        np.full(n, 1.0 / n),
        jac=g,
        method="SLSQP",
        bounds=[(0.0, 1.0)] * n,
        constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1.0, "jac": lambda w: np.ones(n)}],
        options={"ftol": 1e-12, "maxiter": 1000},
    )
    return np.asarray(res.x)


def closed_form(mu: Array, cov: Array, objective: Objective) -> Array:
    rhs = np.ones(mu.size) if objective is Objective.MIN_VARIANCE else mu - RF / DAYS
    w = np.linalg.solve(cov, rhs)
    return np.asarray(w / w.sum())


def measure(
    n: int, objective: Objective, count: int, slsqp_count: int, seed: int
) -> tuple[dict[str, float], float]:
    """p50 (ms) of each method over the windows of one run, and the worst objective gap to SLSQP."""
    data, _ = windows(n, count + 1, seed)
    warm = PortfolioSolver()
    warm.solve(problem(*data[0], objective))  # the service's first solve is cold; the rest are warm
    nowarm = PortfolioSolver()
    nowarm.solve(problem(*data[0], objective))
    rows: dict[str, list[float]] = {k: [] for k in ("warm", "nowarm", "cold", "clarabel", "slsqp", "numpy")}
    gap = -np.inf
    for k, (mu, cov) in enumerate(data[1:]):
        p = problem(mu, cov, objective)
        rows["warm"].append(timed(lambda p=p: warm.solve(p)))
        rows["nowarm"].append(timed(lambda p=p: nowarm.solve(p, warm=False)))
        cold = PortfolioSolver()
        rows["cold"].append(timed(lambda p=p, s=cold: s.solve(p)))
        plain = PortfolioSolver(SolverOptions(screen_min_assets=1 << 30))
        rows["clarabel"].append(timed(lambda p=p, s=plain: s.solve(p)))
        rows["numpy"].append(timed(lambda mu=mu, cov=cov: closed_form(mu, cov, objective)))
        if k < slsqp_count:
            t0 = time.perf_counter()
            ref = slsqp(mu, cov, objective)
            rows["slsqp"].append((time.perf_counter() - t0) * 1e3)
            gap = max(gap, _objective_gap(mu, cov, objective, warm.solve(p).weights, ref))
    return {k: statistics.median(v) for k, v in rows.items() if v}, gap


def _objective_gap(mu: Array, cov: Array, objective: Objective, ours: Array, ref: Array) -> float:
    """How much worse ours is than SLSQP's (negative: ours is better), in the objective's units
    (annualised variance, or Sharpe ratio)."""
    if objective is Objective.MIN_VARIANCE:
        return float((ours @ cov @ ours - ref @ cov @ ref) * DAYS)
    excess = mu - RF / DAYS

    def sharpe(w: Array) -> float:
        return float(excess @ w / np.sqrt(w @ cov @ w) * np.sqrt(DAYS))

    return sharpe(ref) - sharpe(ours)


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("--windows", type=int, default=40, help="rolling re-solves per run")
    p.add_argument("--slsqp-max-assets", type=int, default=500, help="skip SLSQP above this size")
    args = p.parse_args()
    sizes = [50, 100] if args.quick else [50, 100, 250, 500]
    count = 10 if args.quick else args.windows
    header(
        f"optimizer: long-only solve time, p50 over {count} rolling re-solves "
        f"({DAYS} daily returns, Ledoit-Wolf), median of {args.runs} runs, "
        f"OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}"
    )
    print(
        f"{'assets':>6}  {'objective':<13}{'warm':>9}{'no warm':>10}{'fresh':>10}{'Clarabel*':>11}"
        f"{'SLSQP':>11}{'numpy**':>10}   {'goal: warm, no warm':<24}ours vs SLSQP"
    )
    for n in sizes:
        _, est = windows(n, 5, 0)
        for objective in (Objective.MIN_VARIANCE, Objective.MAX_SHARPE):
            slsqp_count = 0 if n > args.slsqp_max_assets else (3 if n <= 100 else 1)
            runs = [measure(n, objective, count, slsqp_count, seed) for seed in range(args.runs)]
            med = {k: statistics.median(r[0][k] for r in runs) for k in runs[0][0]}
            gap = max(r[1] for r in runs)
            goal = GOALS_MS.get(n)
            verdict = ""
            if goal is not None:
                verdict = f"<= {goal:g} ms: " + ", ".join(
                    "met" if med[k] <= goal else "MISSED" for k in ("warm", "nowarm")
                )
            slsqp_ms = f"{med['slsqp']:9.1f}ms" if "slsqp" in med else f"{'-':>11}"
            gap_text = f"{gap:+.1e}" if "slsqp" in med else "-"
            print(
                f"{n:>6}  {objective.value:<13}{med['warm']:7.2f}ms{med['nowarm']:8.2f}ms{med['cold']:8.2f}ms"
                f"{med['clarabel']:9.2f}ms{slsqp_ms}{med['numpy']:8.3f}ms   {verdict:<24}{gap_text}",
                flush=True,
            )
        label = f"(estimation: Ledoit-Wolf of {DAYS} x {n})"
        print(f"{'':>6}  {label:<33}{statistics.median(est):8.2f}ms")
    print(
        "\nwarm: one solver across the windows (previous working set + kept Clarabel set-ups), as the\n"
        "service runs; no warm: the same solver with warm=False (set-ups kept, working set from the cold\n"
        "heuristic); fresh: a new solver per solve (nothing kept).\n"
        "* one Clarabel model of every asset (set-up + solve), no working set.\n"
        "** np.linalg.solve closed form of the unconstrained long/short problem: a floor, not the same\n"
        "   problem.\n"
        "ours vs SLSQP: worst objective gap over the windows SLSQP solved (annualised variance or Sharpe\n"
        "ratio; negative = ours is better)."
    )


if __name__ == "__main__":
    main()
