"""The on-demand API without I/O: request bytes -> Problem -> Solution -> PortfolioTarget (or ErrorReply).
The NATS handler and the REST route both call `answer`, so they accept and refuse exactly the same things.

JSON cannot carry NaN or infinity: msgspec and orjson send NaN as null, Python's json module writes a bare
NaN token, and 1e999 overflows; all three are refused as NAN_INPUT (not as a generic decode error).
"""

from __future__ import annotations

import re

import msgspec
import numpy as np
import numpy.typing as npt

from nexus import messages
from nexus.messages import ErrorReply, Message, OptimizeRequest, PortfolioTarget, now_ns
from optimizer.errors import ErrorCode, OptimizerError
from optimizer.estimators import estimate
from optimizer.problem import Constraints, Problem
from optimizer.solver import PortfolioSolver, Solution

Array = npt.NDArray[np.float64]

_NUMERIC_FIELDS = re.compile(
    r"at `\$\.(mu|cov|returns|lower|upper|current_weights|risk_budgets|risk_free|target_return|"
    r"target_volatility|max_leverage|max_turnover|l2|periods_per_year|ewma_halflife)\b"
)
_NON_FINITE_TOKEN = re.compile(rb'(?<![A-Za-z"])-?(NaN|Infinity)(?![A-Za-z"])')


def decode_request(data: bytes) -> OptimizeRequest:
    try:
        req: OptimizeRequest = messages.decode(OptimizeRequest, data)
        return req
    except msgspec.ValidationError as exc:
        text = str(exc)
        if "Number out of range" in text or ("got `null`" in text and _NUMERIC_FIELDS.search(text)):
            raise OptimizerError(ErrorCode.NAN_INPUT, f"a number is NaN or infinite: {text}") from None
        raise OptimizerError(ErrorCode.INVALID_FIELD, text) from None
    except msgspec.DecodeError as exc:
        if _NON_FINITE_TOKEN.search(data):
            raise OptimizerError(
                ErrorCode.NAN_INPUT, "the JSON contains NaN or Infinity: every number must be finite"
            ) from None
        raise OptimizerError(ErrorCode.DECODE_ERROR, str(exc)) from None
    except RecursionError as exc:  # JSON nested deeper than msgspec follows (see messages.DECODE_ERRORS)
        raise OptimizerError(ErrorCode.DECODE_ERROR, str(exc)) from None


def _matrix(name: str, rows: tuple[tuple[float, ...], ...]) -> Array:
    widths = {len(r) for r in rows}
    if len(widths) > 1:
        raise OptimizerError(ErrorCode.SHAPE_MISMATCH, f"{name} rows have different lengths {sorted(widths)}")
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), widths.pop() if widths else 0)


def to_problem(req: OptimizeRequest) -> Problem:
    """The Problem a request describes (estimating mu and cov from `returns` when given)."""
    has_moments = req.mu is not None or req.cov is not None
    if has_moments and req.returns is not None:
        raise OptimizerError(ErrorCode.INVALID_FIELD, "give either mu + cov or returns, not both")
    if req.returns is not None:
        returns = _matrix("returns", req.returns)
        if returns.shape[0] < 2:
            raise OptimizerError(
                ErrorCode.NOT_ENOUGH_DATA, f"returns has {returns.shape[0]} rows: at least 2 are needed"
            )
        mu, cov = estimate(returns, req.cov_estimator, req.mean_estimator, req.ewma_halflife)
    elif req.mu is not None and req.cov is not None:
        mu = np.asarray(req.mu, dtype=np.float64)
        cov = _matrix("cov", req.cov)
    else:
        raise OptimizerError(ErrorCode.MISSING_INPUT, "give mu and cov, or returns")
    return Problem(
        mu=mu,
        cov=cov,
        objective=req.objective,
        constraints=Constraints(
            long_only=req.long_only,
            lower=None if req.lower is None else np.asarray(req.lower, dtype=np.float64),
            upper=None if req.upper is None else np.asarray(req.upper, dtype=np.float64),
            max_leverage=req.max_leverage,
            max_turnover=req.max_turnover,
            current=np.asarray(req.current_weights, dtype=np.float64) if req.current_weights else None,
            l2=req.l2,
        ),
        risk_free=req.risk_free,
        target_return=req.target_return,
        target_volatility=req.target_volatility,
        risk_budgets=np.asarray(req.risk_budgets, dtype=np.float64) if req.risk_budgets else None,
        periods_per_year=req.periods_per_year,
        symbols=req.symbols,
    )


def to_target(
    solution: Solution, portfolio: str, *, status: str = "", objective: str = ""
) -> PortfolioTarget:
    n = solution.weights.size
    symbols = solution.symbols or tuple(str(i) for i in range(n))
    return PortfolioTarget(
        portfolio=portfolio,
        objective=objective or solution.objective.value,
        symbols=symbols,
        weights=tuple(float(w) for w in solution.weights),
        exp_return=solution.exp_return,
        volatility=solution.volatility,
        sharpe=solution.sharpe,
        status=status or solution.status,
        solve_us=solution.solve_us,
        ts=now_ns(),
        risk_contributions=tuple(float(r) for r in solution.risk_contributions),
    )


def answer(data: bytes, solver: PortfolioSolver) -> Message:
    """The reply to one request: a PortfolioTarget, or an ErrorReply naming why there is none."""
    try:
        req = decode_request(data)
        solution = solver.solve(to_problem(req))
    except OptimizerError as exc:
        return ErrorReply(code=exc.code.value, reason=exc.reason)
    return to_target(solution, req.portfolio)
