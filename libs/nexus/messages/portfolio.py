"""On-demand portfolio optimisation: the request a client sends on `pf.solve` (or POSTs to the optimizer's
`/optimize`). The answer is a PortfolioTarget (nexus.messages.system), or an ErrorReply naming the reason.

Inputs are either `mu` + `cov` or a `returns` matrix (rows = periods, columns = assets), in units of one
period; `periods_per_year` annualises what is reported (1 = the inputs are already annual). Rates given in
the request (`risk_free`, `target_return`, `target_volatility`) are annual.
"""

from __future__ import annotations

from enum import StrEnum

from nexus.messages.base import Message


class Objective(StrEnum):
    MAX_SHARPE = "max_sharpe"
    MIN_VARIANCE = "min_variance"
    TARGET_RETURN = "target_return"
    TARGET_VOLATILITY = "target_volatility"
    RISK_PARITY = "risk_parity"


class CovEstimator(StrEnum):
    SAMPLE = "sample"
    EWMA = "ewma"
    LEDOIT_WOLF = "ledoit_wolf"


class MeanEstimator(StrEnum):
    MEAN = "mean"
    EWMA = "ewma"


class OptimizeRequest(Message, frozen=True, kw_only=True, tag="optimize_request"):
    """Solve one portfolio problem now.

    Inputs: `mu` (n) and `cov` (n x n), or `returns` (T x n, T >= 2) estimated with `cov_estimator` and
    `mean_estimator` (`ewma_halflife` in periods). Objective: see Objective; `target_return` /
    `target_volatility` are required by the objectives of the same name, `risk_budgets` (n, positive) is
    optional for risk parity (default: equal).
    Constraints (weights always sum to 1): `long_only`; `lower` / `upper` bounds (one number for every
    asset, or one per asset); `max_leverage` caps sum(|w|); `max_turnover` caps sum(|w - current_weights|);
    `l2` >= 0 adds l2 * (mean asset variance) * ||w||^2 to the risk being minimised (dimensionless).
    """

    objective: Objective
    portfolio: str = "adhoc"
    symbols: tuple[str, ...] = ()
    mu: tuple[float, ...] | None = None
    cov: tuple[tuple[float, ...], ...] | None = None
    returns: tuple[tuple[float, ...], ...] | None = None
    cov_estimator: CovEstimator = CovEstimator.SAMPLE
    mean_estimator: MeanEstimator = MeanEstimator.MEAN
    ewma_halflife: float = 60.0
    periods_per_year: float = 1.0
    risk_free: float = 0.0
    target_return: float | None = None
    target_volatility: float | None = None
    long_only: bool = True
    lower: float | tuple[float, ...] | None = None
    upper: float | tuple[float, ...] | None = None
    max_leverage: float | None = None
    max_turnover: float | None = None
    current_weights: tuple[float, ...] = ()
    l2: float = 0.0
    risk_budgets: tuple[float, ...] = ()
