"""Returns from prices, and the estimators of expected returns and covariance. Pure numpy, per period.

    returns = log_returns(prices)                    # (T+1) x n prices -> T x n returns
    mu = mean_returns(returns)  |  ewma_mean(returns, halflife)
    cov = sample_cov(returns)  |  ewma_cov(returns, halflife)  |  ledoit_wolf(returns)

Conventions (docs/optimizer.md):
- EWMA weights are w_t ∝ 0.5 ** ((T-1-t) / halflife) (the newest row weighs most), normalised to sum 1.
  The EWMA covariance is centred on the EWMA mean and bias-corrected for reliability weights,
  sum w_t (r_t - m)(r_t - m)' / (1 - sum w_t^2), so that an infinite half-life gives the sample covariance.
- Ledoit-Wolf (2004) shrinks the biased sample covariance S = X'X/T towards m·I, m = trace(S)/n, with the
  optimal intensity δ = min(1, b²/d²) where d² = ||S - mI||²/n and b² = sum_t ||x_t x_t' - S||² / (n T²).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from nexus.messages import CovEstimator, MeanEstimator
from optimizer.errors import ErrorCode, OptimizerError

Array = npt.NDArray[np.float64]


def log_returns(prices: Array) -> Array:
    """Log returns of a (T+1) x n price matrix. Prices must be positive."""
    if np.any(prices <= 0):
        raise OptimizerError(ErrorCode.INVALID_FIELD, "prices must be positive to take log returns")
    logp = np.log(prices)
    return np.asarray(np.diff(logp, axis=0), dtype=np.float64)


def simple_returns(prices: Array) -> Array:
    """Simple returns p_t / p_{t-1} - 1 of a (T+1) x n price matrix."""
    if np.any(prices <= 0):
        raise OptimizerError(ErrorCode.INVALID_FIELD, "prices must be positive to take returns")
    return np.asarray(prices[1:] / prices[:-1] - 1.0, dtype=np.float64)


def ewma_weights(t: int, halflife: float) -> Array:
    """Weights of T observations, oldest first, newest heaviest; they sum to 1."""
    if not halflife > 0:
        raise OptimizerError(ErrorCode.INVALID_FIELD, f"ewma_halflife must be > 0, got {halflife}")
    age = np.arange(t - 1, -1, -1, dtype=np.float64)
    w = np.power(0.5, age / halflife)
    return np.asarray(w / w.sum(), dtype=np.float64)


def _need_rows(returns: Array, rows: int) -> None:
    if returns.ndim != 2 or returns.shape[0] < rows:
        have = returns.shape[0] if returns.ndim == 2 else 0
        raise OptimizerError(
            ErrorCode.NOT_ENOUGH_DATA, f"need at least {rows} periods of returns to estimate, got {have}"
        )


def mean_returns(returns: Array) -> Array:
    _need_rows(returns, 1)
    return np.asarray(returns.mean(axis=0), dtype=np.float64)


def ewma_mean(returns: Array, halflife: float) -> Array:
    _need_rows(returns, 1)
    return np.asarray(ewma_weights(returns.shape[0], halflife) @ returns, dtype=np.float64)


def sample_cov(returns: Array) -> Array:
    """Unbiased sample covariance (divides by T - 1)."""
    _need_rows(returns, 2)
    x = returns - returns.mean(axis=0)
    return _symmetric(x.T @ x / (returns.shape[0] - 1))


def ewma_cov(returns: Array, halflife: float) -> Array:
    _need_rows(returns, 2)
    w = ewma_weights(returns.shape[0], halflife)
    x = returns - w @ returns
    return _symmetric((x.T * w) @ x / (1.0 - np.sum(w * w)))


def ledoit_wolf(returns: Array) -> tuple[Array, float]:
    """Ledoit-Wolf shrinkage covariance and its shrinkage intensity δ in [0, 1]."""
    _need_rows(returns, 2)
    t, n = returns.shape
    x = returns - returns.mean(axis=0)
    s = x.T @ x / t
    m = float(np.trace(s)) / n
    d2 = float(np.sum((s - m * np.eye(n)) ** 2)) / n
    if d2 <= 0.0:  # already a multiple of the identity: nothing to shrink
        return _symmetric(s), 0.0
    # sum_t ||x_t x_t' - S||_F^2 = sum_t ||x_t||^4 - T ||S||_F^2: O(T n) instead of T outer products
    sq = np.sum(x * x, axis=1)
    b2_sum = float(np.sum(sq * sq)) - t * float(np.sum(s * s))
    b2 = min(max(b2_sum, 0.0) / (n * t * t), d2)
    delta = b2 / d2
    return _symmetric(delta * m * np.eye(n) + (1.0 - delta) * s), delta


def _symmetric(a: Array) -> Array:
    return np.asarray((a + a.T) * 0.5, dtype=np.float64)


def estimate(
    returns: Array,
    cov_estimator: CovEstimator = CovEstimator.SAMPLE,
    mean_estimator: MeanEstimator = MeanEstimator.MEAN,
    halflife: float = 60.0,
) -> tuple[Array, Array]:
    """(expected returns, covariance) per period from a T x n returns matrix."""
    if returns.ndim != 2 or returns.shape[1] == 0:
        raise OptimizerError(ErrorCode.SHAPE_MISMATCH, f"returns must be T x n, got shape {returns.shape}")
    bad = np.flatnonzero(~np.isfinite(returns))
    if bad.size:
        t, i = divmod(int(bad[0]), returns.shape[1])
        raise OptimizerError(ErrorCode.NAN_INPUT, f"returns[{t},{i}] is {returns.flat[bad[0]]}")
    _need_rows(returns, 2)
    match mean_estimator:
        case MeanEstimator.EWMA:
            mu = ewma_mean(returns, halflife)
        case _:
            mu = mean_returns(returns)
    match cov_estimator:
        case CovEstimator.EWMA:
            cov = ewma_cov(returns, halflife)
        case CovEstimator.LEDOIT_WOLF:
            cov, _ = ledoit_wolf(returns)
        case _:
            cov = sample_cov(returns)
    return mu, cov
