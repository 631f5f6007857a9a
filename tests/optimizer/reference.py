"""Test inputs and reference solutions computed by a general-purpose solver (scipy SLSQP / L-BFGS-B),
written from the textbook definitions, independent of the service's conic formulations."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize

Array = npt.NDArray[np.float64]
Fn = Callable[[Array], float]
Grad = Callable[[Array], Array]


def market(n: int, seed: int, *, factors: int = 2) -> tuple[Array, Array]:
    """Annualised expected returns and a factor-model covariance (vols ~15-50%)."""
    rng = np.random.default_rng(seed)
    loadings = rng.normal(0.0, 0.12, (n, factors))
    idio = rng.uniform(0.10, 0.40, n) ** 2
    cov = loadings @ loadings.T + np.diag(idio)
    mu = rng.normal(0.08, 0.06, n)
    return mu, cov


def equity_market(n: int, seed: int) -> tuple[Array, Array]:
    """A market where long-only optima hold a fraction of the assets: a market factor (beta ~ 1 ± 0.35),
    eight sectors and idiosyncratic vols of 15-60%; expected returns rise with beta, plus noise."""
    rng = np.random.default_rng(seed)
    beta = rng.normal(1.0, 0.35, n)
    sectors = np.zeros((n, 8))
    sectors[np.arange(n), rng.integers(0, 8, n)] = rng.normal(1.0, 0.3, n)
    idio = rng.uniform(0.15, 0.6, n)
    cov = 0.16**2 * np.outer(beta, beta) + 0.08**2 * sectors @ sectors.T + np.diag(idio**2)
    mu = 0.02 + 0.06 * beta + rng.normal(0.0, 0.08, n)
    return mu, cov


def variance(cov: Array) -> tuple[Fn, Grad]:
    return (lambda w: float(w @ cov @ w)), (lambda w: 2.0 * cov @ w)


def neg_sharpe(mu: Array, cov: Array, rf: float) -> tuple[Fn, Grad]:
    excess = mu - rf

    def f(w: Array) -> float:
        return float(-(excess @ w) / np.sqrt(w @ cov @ w))

    def g(w: Array) -> Array:
        var = w @ cov @ w
        sd = np.sqrt(var)
        return np.asarray(-(excess * sd - (excess @ w) * (cov @ w) / sd) / var)

    return f, g


def neg_return(mu: Array) -> tuple[Fn, Grad]:
    return (lambda w: float(-(mu @ w))), (lambda w: -mu)


def slsqp(
    objective: tuple[Fn, Grad],
    n: int,
    *,
    lower: Array | None = None,
    upper: Array | None = None,
    ineq: list[tuple[Fn, Grad]] | None = None,
    anchor: Array | None = None,
    l1_cap: float | None = None,
) -> Array:
    """min f(w) s.t. sum w = 1, lower <= w <= upper, g(w) >= 0 for g in ineq, and (with l1_cap)
    sum |w - anchor| <= l1_cap written smoothly as w = anchor + p - q, p, q >= 0, sum(p + q) <= l1_cap."""
    f, grad = objective
    lo = np.full(n, -np.inf) if lower is None else lower
    hi = np.full(n, np.inf) if upper is None else upper
    ineq = ineq or []
    if l1_cap is None:

        def to_w(x: Array) -> Array:
            return x

        def chain(gw: Array) -> Array:
            return gw

        x0 = np.clip(np.full(n, 1.0 / n), lo, hi)
        bounds = list(
            zip(np.where(np.isfinite(lo), lo, None), np.where(np.isfinite(hi), hi, None), strict=True)
        )
        extra: list[dict[str, object]] = []
    else:
        base = np.zeros(n) if anchor is None else anchor

        def to_w(x: Array) -> Array:
            return base + x[:n] - x[n:]

        def chain(gw: Array) -> Array:
            return np.concatenate((gw, -gw))

        start = np.full(n, 1.0 / n) - base
        x0 = np.concatenate((np.maximum(start, 0), np.maximum(-start, 0)))
        bounds = [(0.0, None)] * (2 * n)
        extra = [
            {"type": "ineq", "fun": lambda x: l1_cap - np.sum(x), "jac": lambda x: -np.ones(2 * n)},
        ]
        finite_lo, finite_hi = np.isfinite(lo), np.isfinite(hi)
        if finite_lo.any():
            extra.append(
                {
                    "type": "ineq",
                    "fun": lambda x: (to_w(x) - lo)[finite_lo],
                    "jac": lambda x: np.hstack((np.eye(n), -np.eye(n)))[finite_lo],
                }
            )
        if finite_hi.any():
            extra.append(
                {
                    "type": "ineq",
                    "fun": lambda x: (hi - to_w(x))[finite_hi],
                    "jac": lambda x: np.hstack((-np.eye(n), np.eye(n)))[finite_hi],
                }
            )
    constraints = [
        {"type": "eq", "fun": lambda x: np.sum(to_w(x)) - 1.0, "jac": lambda x: chain(np.ones(n))},
        *extra,
        *(
            {"type": "ineq", "fun": (lambda x, g=g: g(to_w(x))), "jac": (lambda x, dg=dg: chain(dg(to_w(x))))}
            for g, dg in ineq
        ),
    ]
    res = minimize(
        lambda x: f(to_w(x)),
        x0,
        jac=lambda x: chain(grad(to_w(x))),
        method="SLSQP",
        bounds=bounds,
        constraints=constraints,
        options={"ftol": 1e-12, "maxiter": 2000},
    )
    assert res.success, res.message
    return to_w(res.x)


def risk_parity_objective(cov: Array, budgets: Array) -> Fn:
    """½ y'Σy - b'log y, whose minimiser y has risk contributions y_i (Σy)_i = b_i."""
    return lambda y: float(0.5 * y @ cov @ y - budgets @ np.log(y))


def risk_parity_reference(cov: Array, budgets: Array) -> Array:
    f = risk_parity_objective(cov, budgets)
    n = cov.shape[0]
    res = minimize(
        f,
        np.full(n, 1.0),
        jac=lambda y: cov @ y - budgets / y,
        method="L-BFGS-B",
        bounds=[(1e-12, None)] * n,
        options={"ftol": 1e-16, "gtol": 1e-12, "maxiter": 10_000},
    )
    assert res.success, res.message
    return np.asarray(res.x)
