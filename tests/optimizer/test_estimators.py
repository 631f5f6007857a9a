"""Estimators against naive implementations written here from their definitions (differential tests on
seeded random returns), plus the properties that make them usable by the solver."""

from __future__ import annotations

import numpy as np
import pytest

from nexus.messages import CovEstimator, MeanEstimator
from optimizer.errors import ErrorCode, OptimizerError
from optimizer.estimators import (
    estimate,
    ewma_cov,
    ewma_mean,
    ledoit_wolf,
    log_returns,
    mean_returns,
    sample_cov,
    simple_returns,
)


@pytest.fixture(params=[(60, 5), (30, 40)], ids=["T>n", "T<n"])
def returns(request: pytest.FixtureRequest) -> np.ndarray:
    t, n = request.param
    rng = np.random.default_rng(t * n)
    common = rng.normal(0, 0.01, (t, 1))
    return common + rng.normal(0.0005, 0.02, (t, n)) * rng.uniform(0.5, 2, n)


def test_returns_from_prices() -> None:
    prices = np.array([[100.0, 10.0], [110.0, 9.0], [99.0, 9.9]])
    np.testing.assert_allclose(simple_returns(prices), [[0.1, -0.1], [-0.1, 0.1]])
    np.testing.assert_allclose(log_returns(prices), np.log([[1.1, 0.9], [0.9, 1.1]]))
    with pytest.raises(OptimizerError) as err:
        log_returns(np.array([[1.0], [0.0]]))
    assert err.value.code == ErrorCode.INVALID_FIELD


def test_sample_moments_equal_numpy(returns: np.ndarray) -> None:
    np.testing.assert_allclose(mean_returns(returns), returns.mean(axis=0))
    np.testing.assert_allclose(sample_cov(returns), np.cov(returns, rowvar=False), rtol=1e-12, atol=1e-18)


def naive_ewma(returns: np.ndarray, halflife: float) -> tuple[np.ndarray, np.ndarray]:
    t, n = returns.shape
    raw = [0.5 ** ((t - 1 - i) / halflife) for i in range(t)]
    total = sum(raw)
    w = [r / total for r in raw]
    mean = sum(w[i] * returns[i] for i in range(t))
    cov = np.zeros((n, n))
    for i in range(t):
        d = returns[i] - mean
        cov += w[i] * np.outer(d, d)
    return mean, cov / (1 - sum(x * x for x in w))


def test_ewma_equals_the_definition(returns: np.ndarray) -> None:
    mean, cov = naive_ewma(returns, 12.0)
    np.testing.assert_allclose(ewma_mean(returns, 12.0), mean, rtol=1e-12)
    np.testing.assert_allclose(ewma_cov(returns, 12.0), cov, rtol=1e-10, atol=1e-18)


def test_ewma_with_an_infinite_half_life_is_the_sample_estimate(returns: np.ndarray) -> None:
    np.testing.assert_allclose(ewma_cov(returns, 1e12), sample_cov(returns), rtol=1e-8)
    np.testing.assert_allclose(ewma_mean(returns, 1e12), mean_returns(returns), rtol=1e-8)


def naive_ledoit_wolf(returns: np.ndarray) -> tuple[np.ndarray, float]:
    """Ledoit & Wolf (2004), 'A well-conditioned estimator for large-dimensional covariance matrices'."""
    t, n = returns.shape
    x = returns - returns.mean(axis=0)
    s = x.T @ x / t
    m = np.trace(s) / n
    d2 = np.linalg.norm(s - m * np.eye(n), "fro") ** 2 / n
    b2_bar = sum(np.linalg.norm(np.outer(x[k], x[k]) - s, "fro") ** 2 / n for k in range(t)) / t**2
    b2 = min(b2_bar, d2)
    return (b2 / d2) * m * np.eye(n) + (1 - b2 / d2) * s, b2 / d2


def test_ledoit_wolf_equals_the_paper(returns: np.ndarray) -> None:
    cov, delta = ledoit_wolf(returns)
    ref, ref_delta = naive_ledoit_wolf(returns)
    assert delta == pytest.approx(ref_delta, rel=1e-10)
    assert 0 < delta < 1
    np.testing.assert_allclose(cov, ref, rtol=1e-10, atol=1e-18)
    # shrinkage makes it positive definite even with fewer periods than assets
    assert np.linalg.eigvalsh(cov)[0] > 0


@pytest.mark.parametrize("cov_estimator", list(CovEstimator))
@pytest.mark.parametrize("mean_estimator", list(MeanEstimator))
def test_estimate_dispatches_and_checks(
    returns: np.ndarray, cov_estimator: CovEstimator, mean_estimator: MeanEstimator
) -> None:
    mu, cov = estimate(returns, cov_estimator, mean_estimator, 20.0)
    assert mu.shape == (returns.shape[1],)
    assert cov.shape == (returns.shape[1],) * 2
    np.testing.assert_array_equal(cov, cov.T)
    assert np.linalg.eigvalsh(cov)[0] > -1e-15


def test_estimate_refuses_nan_and_short_windows() -> None:
    bad = np.ones((5, 2))
    bad[3, 1] = np.nan
    with pytest.raises(OptimizerError) as err:
        estimate(bad)
    assert err.value.code == ErrorCode.NAN_INPUT
    assert "returns[3,1]" in err.value.reason
    with pytest.raises(OptimizerError) as err:
        estimate(np.ones((1, 3)))
    assert err.value.code == ErrorCode.NOT_ENOUGH_DATA
