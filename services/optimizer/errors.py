"""Why an optimisation was refused. Every refusal carries a machine-readable code and a reason in words;
REST answers it as a 422 and NATS as an ErrorReply with the same code.

    OptimizerError(code, reason)
      codes: ErrorCode (bad input, infeasible problems, solver failures)
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    # the request itself
    DECODE_ERROR = "DECODE_ERROR"
    INVALID_FIELD = "INVALID_FIELD"
    MISSING_INPUT = "MISSING_INPUT"
    SHAPE_MISMATCH = "SHAPE_MISMATCH"
    NAN_INPUT = "NAN_INPUT"
    NOT_ENOUGH_DATA = "NOT_ENOUGH_DATA"
    TOO_MANY_ASSETS = "TOO_MANY_ASSETS"
    NOT_SYMMETRIC = "NOT_SYMMETRIC"
    NOT_PSD = "NOT_PSD"
    CONSTRAINT_NOT_SUPPORTED = "CONSTRAINT_NOT_SUPPORTED"
    # problems with no solution
    BOUNDS_INFEASIBLE = "BOUNDS_INFEASIBLE"
    LEVERAGE_INFEASIBLE = "LEVERAGE_INFEASIBLE"
    INFEASIBLE = "INFEASIBLE"
    INFEASIBLE_MAX_SHARPE = "INFEASIBLE_MAX_SHARPE"
    MAX_SHARPE_UNBOUNDED = "MAX_SHARPE_UNBOUNDED"
    INFEASIBLE_TARGET_RETURN = "INFEASIBLE_TARGET_RETURN"
    INFEASIBLE_TARGET_VOLATILITY = "INFEASIBLE_TARGET_VOLATILITY"
    # the solver
    SOLVER_FAILED = "SOLVER_FAILED"


class OptimizerError(Exception):
    """An optimisation that cannot be answered with weights: `code` says why for programs, `reason` for
    people."""

    def __init__(self, code: ErrorCode, reason: str) -> None:
        self.code = code
        self.reason = reason
        super().__init__(f"{code}: {reason}")
