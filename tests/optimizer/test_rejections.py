"""Every problem without an answer is refused with a code naming the reason, through the same `answer`
that the REST route and the NATS handler call; the solver keeps working afterwards."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import numpy as np
import pytest

from nexus import messages as m
from nexus.messages import ErrorReply, Objective, OptimizeRequest, PortfolioTarget
from optimizer.api import answer
from optimizer.errors import ErrorCode
from optimizer.solver import PortfolioSolver, SolverOptions
from tests.optimizer.reference import market

MU, COV = market(4, 21)
GOOD: dict[str, Any] = {"objective": "max_sharpe", "mu": MU.tolist(), "cov": COV.tolist(), "risk_free": 0.01}
NOT_PSD = [[1.0, 0.9, 0.0], [0.9, 1.0, -0.9], [0.0, -0.9, 1.0]]  # a "correlation" with eigenvalue < 0


def body(**changes: Any) -> bytes:
    return json.dumps({**GOOD, **changes}).encode()


CASES: list[tuple[str, bytes, ErrorCode, str]] = [
    (
        "max sharpe when every return is below the risk-free rate",
        body(mu=[0.01, 0.02, 0.015, 0.0], risk_free=0.03),
        ErrorCode.INFEASIBLE_MAX_SHARPE,
        "risk-free",
    ),
    (
        "long/short max sharpe when no portfolio beats the risk-free rate",
        body(mu=[0.1, 0.1, 0.1, 0.1], risk_free=0.2, long_only=False, lower=-1.0),
        ErrorCode.INFEASIBLE_MAX_SHARPE,
        "risk-free",
    ),
    (
        "long/short max sharpe only approached by infinite leverage",
        body(mu=[0.0, 0.15], cov=[[0.04, 0.0], [0.0, 0.04]], risk_free=0.1, long_only=False),
        ErrorCode.MAX_SHARPE_UNBOUNDED,
        "max_leverage",
    ),
    (
        "upper bounds that cannot sum to 1",
        body(upper=0.2),
        ErrorCode.BOUNDS_INFEASIBLE,
        "upper bounds sum to 0.8",
    ),
    (
        "lower bounds above 1 in total",
        body(lower=[0.3, 0.3, 0.3, 0.3]),
        ErrorCode.BOUNDS_INFEASIBLE,
        "lower bounds sum to 1.2",
    ),
    (
        "a lower bound above its upper bound",
        body(lower=[0, 0.5, 0, 0], upper=[1, 0.4, 1, 1]),
        ErrorCode.BOUNDS_INFEASIBLE,
        "lower[1]",
    ),
    ("a covariance that is not PSD", body(mu=[0.1, 0.1, 0.1], cov=NOT_PSD), ErrorCode.NOT_PSD, "eigenvalue"),
    (
        "a covariance that is not symmetric",
        body(mu=[0.1, 0.1], cov=[[1.0, 0.2], [0.3, 1.0]]),
        ErrorCode.NOT_SYMMETRIC,
        "symmetric",
    ),
    (
        "a NaN token in the JSON (Python's json module)",
        body(mu=[0.1, float("nan"), 0.1, 0.1]),
        ErrorCode.NAN_INPUT,
        "NaN",
    ),
    ("NaN sent as null (msgspec, orjson)", body(mu=[0.1, None, 0.1, 0.1]), ErrorCode.NAN_INPUT, "mu[1]"),
    ("an Infinity token", body(risk_free=float("inf")), ErrorCode.NAN_INPUT, "Infinity"),
    (
        "a number too large for a double",
        body().replace(b'"risk_free": 0.01', b'"risk_free": 1e999'),
        ErrorCode.NAN_INPUT,
        "NaN or infinite",
    ),
    (
        "mu and cov of different sizes",
        body(mu=[0.1, 0.2, 0.3]),
        ErrorCode.SHAPE_MISMATCH,
        "cov has shape (4, 4)",
    ),
    (
        "a ragged covariance",
        body(cov=[[1, 0, 0, 0], [0, 1, 0], [0, 0, 1, 0], [0, 0, 0, 1]]),
        ErrorCode.SHAPE_MISMATCH,
        "different lengths",
    ),
    ("bounds of the wrong length", body(upper=[0.5, 0.5]), ErrorCode.SHAPE_MISMATCH, "upper"),
    ("symbols of the wrong length", body(symbols=["A", "B"]), ErrorCode.SHAPE_MISMATCH, "2 symbols"),
    (
        "a ragged returns matrix",
        json.dumps({"objective": "min_variance", "returns": [[0.1, 0.2], [0.1]]}).encode(),
        ErrorCode.SHAPE_MISMATCH,
        "returns",
    ),
    (
        "one row of returns",
        json.dumps({"objective": "min_variance", "returns": [[0.1, 0.2]]}).encode(),
        ErrorCode.NOT_ENOUGH_DATA,
        "at least 2",
    ),
    ("both mu+cov and returns", body(returns=[[0.1, 0.2], [0.0, 0.1]]), ErrorCode.INVALID_FIELD, "not both"),
    (
        "no inputs at all",
        json.dumps({"objective": "min_variance"}).encode(),
        ErrorCode.MISSING_INPUT,
        "mu and cov",
    ),
    (
        "target_return without a target",
        body(objective="target_return"),
        ErrorCode.MISSING_INPUT,
        "target_return",
    ),
    (
        "a target return above every asset",
        body(objective="target_return", target_return=5.0),
        ErrorCode.INFEASIBLE_TARGET_RETURN,
        "highest",
    ),
    (
        "a target volatility below the minimum",
        body(objective="target_volatility", target_volatility=0.01),
        ErrorCode.INFEASIBLE_TARGET_VOLATILITY,
        "lowest volatility",
    ),
    (
        "a leverage cap below 1",
        body(long_only=False, max_leverage=0.5),
        ErrorCode.LEVERAGE_INFEASIBLE,
        "max_leverage",
    ),
    (
        "turnover too small to reach the bounds",
        body(objective="min_variance", upper=0.3, max_turnover=0.1, current_weights=[1, 0, 0, 0]),
        ErrorCode.INFEASIBLE,
        "constraints",
    ),
    ("turnover without current weights", body(max_turnover=0.1), ErrorCode.MISSING_INPUT, "current_weights"),
    (
        "risk parity with bounds",
        body(objective="risk_parity", upper=0.5),
        ErrorCode.CONSTRAINT_NOT_SUPPORTED,
        "lower/upper",
    ),
    (
        "negative risk budgets",
        body(objective="risk_parity", risk_budgets=[1, 1, -1, 1]),
        ErrorCode.INVALID_FIELD,
        "risk_budgets",
    ),
    ("an unknown objective", body(objective="max_fun"), ErrorCode.INVALID_FIELD, "objective"),
    ("not JSON", b"{mu: [1, 2", ErrorCode.DECODE_ERROR, "malformed"),
]


@pytest.fixture(scope="module")
def solver() -> PortfolioSolver:
    return PortfolioSolver(SolverOptions(max_assets=50))


@pytest.mark.parametrize(("case", "data", "code", "says"), CASES, ids=[c[0] for c in CASES])
def test_refused_with_its_reason(
    solver: PortfolioSolver, case: str, data: bytes, code: ErrorCode, says: str
) -> None:
    reply = answer(data, solver)
    assert isinstance(reply, ErrorReply), reply
    assert reply.code == code, reply.reason
    assert says in reply.reason
    # the same solver answers the next good request
    assert isinstance(answer(body(), solver), PortfolioTarget)


def test_too_many_assets(solver: PortfolioSolver) -> None:
    n = 51
    reply = answer(body(mu=[0.1] * n, cov=np.eye(n).tolist()), solver)
    assert isinstance(reply, ErrorReply)
    assert reply.code == ErrorCode.TOO_MANY_ASSETS


def test_msgspec_encodes_nan_as_null_and_that_is_refused_as_nan(solver: PortfolioSolver) -> None:
    req = OptimizeRequest(
        objective=Objective.MIN_VARIANCE, mu=(0.1, 0.2), cov=((1.0, float("nan")), (0.0, 1.0))
    )
    reply = answer(m.encode(req), solver)
    assert isinstance(reply, ErrorReply)
    assert reply.code == ErrorCode.NAN_INPUT
    assert "cov" in reply.reason


def test_a_good_request_answers_a_target_with_its_figures(solver: PortfolioSolver) -> None:
    reply = answer(body(symbols=["A", "B", "C", "D"], portfolio="demo", upper=0.6), solver)
    assert isinstance(reply, PortfolioTarget)
    assert reply.portfolio == "demo"
    assert reply.symbols == ("A", "B", "C", "D")
    w = np.array(reply.weights)
    assert w.sum() == pytest.approx(1.0, abs=1e-9)
    assert np.all(w >= -1e-9)
    assert np.all(w <= 0.6 + 1e-9)
    assert reply.sharpe == pytest.approx((reply.exp_return - 0.01) / reply.volatility, rel=1e-12)
    assert sum(reply.risk_contributions) == pytest.approx(1.0, abs=1e-9)
    decoded = msgspec.json.decode(m.encode(reply))
    assert decoded["type"] == "portfolio_target"


def test_returns_matrix_inputs_are_estimated_then_solved(solver: PortfolioSolver) -> None:
    rng = np.random.default_rng(2)
    returns = rng.multivariate_normal(MU / 252, COV / 252, size=300)
    for estimator in ("sample", "ewma", "ledoit_wolf"):
        reply = answer(
            json.dumps(
                {
                    "objective": "min_variance",
                    "returns": returns.tolist(),
                    "cov_estimator": estimator,
                    "periods_per_year": 252,
                }
            ).encode(),
            solver,
        )
        assert isinstance(reply, PortfolioTarget), reply
        assert sum(reply.weights) == pytest.approx(1.0, abs=1e-9)
        assert 0.05 < reply.volatility < 0.5  # annualised from daily returns
