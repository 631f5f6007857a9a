"""Clarabel called directly on a conic model, with one solver set-up kept per problem shape.

    minimise ½ x'Px + q'x   subject to   Ax + s = b,  s ∈ K
    (K: products of zero, nonnegative, second-order and exponential cones)

A `Model` lists P (upper triangle) and A as (row, col, value) triplets in a fixed order. The first time a
shape is seen, the CSC structure, the permutation from triplet order to CSC order and a Clarabel solver are
built and kept (LRU); the next model of the same shape only writes its values through the permutation and
calls `solver.update(P=, q=, A=, b=)`, which keeps Clarabel's set-up (structure, symbolic factorisation,
allocations). The structure is compared, not assumed, so a different pattern under the same sizes rebuilds.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import clarabel
import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

Array = npt.NDArray[np.float64]
Index = npt.NDArray[np.int64]

SOLVED = {"Solved": "optimal", "AlmostSolved": "optimal_inaccurate"}
INFEASIBLE = {"PrimalInfeasible", "AlmostPrimalInfeasible"}

Cone = tuple[str, int]
"""("zero", rows) | ("nonneg", rows) | ("soc", dimension) | ("exp", count of 3-row cones)."""


@dataclass
class Model:
    """One conic problem. `tags` name rows whose duals the caller reads (e.g. the budget row)."""

    n: int
    p_rows: Index
    p_cols: Index
    p_vals: Array
    q: Array
    a_rows: Index
    a_cols: Index
    a_vals: Array
    b: Array
    cones: tuple[Cone, ...]
    tags: dict[str, int] = field(default_factory=dict)

    @property
    def m(self) -> int:
        return int(self.b.size)


@dataclass
class Result:
    status: str
    """Clarabel's status name (Solved, PrimalInfeasible, ...)."""
    x: Array
    z: Array
    iterations: int
    reused: bool
    """True when a cached set-up was updated instead of built."""

    @property
    def ok(self) -> bool:
        return self.status in SOLVED

    @property
    def quality(self) -> str:
        """optimal | optimal_inaccurate (Clarabel's AlmostSolved) | the status name otherwise."""
        return SOLVED.get(self.status, self.status)

    @property
    def infeasible(self) -> bool:
        return self.status in INFEASIBLE


class _Pattern:
    """CSC structure of a triplet list and the permutation that puts triplet values in CSC order."""

    def __init__(self, rows: Index, cols: Index, shape: tuple[int, int]) -> None:
        self.rows = rows
        self.cols = cols
        self.shape = shape
        self.order = np.lexsort((rows, cols))
        self.indices = rows[self.order].astype(np.int64)
        counts = np.bincount(cols, minlength=shape[1])
        self.indptr = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)

    def same(self, rows: Index, cols: Index, shape: tuple[int, int]) -> bool:
        return shape == self.shape and np.array_equal(rows, self.rows) and np.array_equal(cols, self.cols)

    def data(self, vals: Array) -> Array:
        return np.ascontiguousarray(vals[self.order], dtype=np.float64)

    def matrix(self, vals: Array) -> sp.csc_matrix:
        return sp.csc_matrix((self.data(vals), self.indices, self.indptr), shape=self.shape)


@dataclass
class _Entry:
    p: _Pattern
    a: _Pattern
    solver: clarabel.DefaultSolver


def _cones(spec: tuple[Cone, ...]) -> list[object]:
    out: list[object] = []
    for kind, size in spec:
        if kind == "zero":
            out.append(clarabel.ZeroConeT(size))
        elif kind == "nonneg":
            out.append(clarabel.NonnegativeConeT(size))
        elif kind == "soc":
            out.append(clarabel.SecondOrderConeT(size))
        elif kind == "exp":
            out.extend(clarabel.ExponentialConeT() for _ in range(size))
        else:
            raise ValueError(f"unknown cone {kind!r}")
    return out


def settings(n_vars: int, *, tol: float = 1e-10) -> clarabel.DefaultSettings:
    s = clarabel.DefaultSettings()
    s.verbose = False
    s.presolve_enable = False  # data updates need the problem as given
    s.input_sparse_dropzeros = False  # keep structural zeros, so the pattern never depends on values
    s.tol_gap_abs = tol
    s.tol_gap_rel = tol
    s.tol_feas = tol
    s.tol_ktratio = 1e-8
    s.max_iter = 100
    # faer's supernodal LDL beats QDLDL once the dense covariance block is large (measured: 2x at 500).
    s.direct_solve_method = "faer" if n_vars > 200 else "qdldl"
    return s


class ConicSolver:
    """Solves Models, keeping the Clarabel set-up of the `capacity` most recent shapes."""

    def __init__(self, capacity: int = 8, tol: float = 1e-10) -> None:
        self.capacity = capacity
        self.tol = tol
        self._cache: OrderedDict[tuple[object, ...], _Entry] = OrderedDict()
        self.setups_total = 0
        self.updates_total = 0

    def solve(self, model: Model) -> Result:
        key = (model.n, model.m, model.cones, model.p_rows.size, model.a_rows.size)
        entry = self._cache.get(key)
        p_shape, a_shape = (model.n, model.n), (model.m, model.n)
        if (
            entry is not None
            and entry.p.same(model.p_rows, model.p_cols, p_shape)
            and entry.a.same(model.a_rows, model.a_cols, a_shape)
        ):
            self._cache.move_to_end(key)
            entry.solver.update(
                P=entry.p.data(model.p_vals), q=model.q, A=entry.a.data(model.a_vals), b=model.b
            )
            self.updates_total += 1
            reused = True
        else:
            p = _Pattern(model.p_rows, model.p_cols, p_shape)
            a = _Pattern(model.a_rows, model.a_cols, a_shape)
            solver = clarabel.DefaultSolver(
                p.matrix(model.p_vals),
                model.q,
                a.matrix(model.a_vals),
                model.b,
                _cones(model.cones),
                settings(model.n, tol=self.tol),
            )
            entry = _Entry(p, a, solver)
            self._cache[key] = entry
            if len(self._cache) > self.capacity:
                self._cache.popitem(last=False)
            self.setups_total += 1
            reused = False
        sol = entry.solver.solve()
        return Result(
            status=str(sol.status),
            x=np.asarray(sol.x, dtype=np.float64),
            z=np.asarray(sol.z, dtype=np.float64),
            iterations=int(sol.iterations),
            reused=reused,
        )
