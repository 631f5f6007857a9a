"""Each objective as a conic Model over a subset of the assets (all of them, or a working set).

Notation: Σ̂ the scaled risk matrix (problem.py), S the assets in the model (others are held at 0), m = |S|.
Constraint rows read  a'x + s = b,  s in the cone (zero cone: a'x = b; nonnegative: a'x <= b).

min_variance        min ½ w'Σ̂w                 1'w = 1, bounds, leverage, turnover
target_return       min ½ w'Σ̂w                 ... and μ'w >= r
max_sharpe          min ½ y'Σ̂y                 (μ - rf)'y = 1, 1'y = κ, κ >= 0, bounds and caps scaled by κ;
                    (homogenised: w = y / κ maximises (μ - rf)'w / sqrt(w'Σ̂w) over the same constraints)
target_volatility   max μ'w                     1'w = 1, ||L'w|| <= σ (second-order cone), bounds, caps
risk_parity         min ½ y'Σ̂y - b'log y       t_i <= log y_i as (t_i, 1, y_i) in the exponential cone;
                    w = y / 1'y has risk contributions w_i(Σ̂w)_i / w'Σ̂w = b_i

Caps: leverage sum u <= L with u >= ±w; turnover sum v <= τ with v >= ±(w - w0). For max Sharpe every
right-hand side 1 becomes κ (lb·κ <= y <= ub·κ, sum u <= L·κ, v >= ±(y - κ·w0), sum v <= τ·κ).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from nexus.messages import Objective
from optimizer.conic import Cone, Model
from optimizer.problem import Prepared

Array = npt.NDArray[np.float64]
Index = npt.NDArray[np.int64]

_TRIU_CACHE: dict[int, tuple[Index, Index]] = {}


def _triu(m: int) -> tuple[Index, Index]:
    """Row and column indices of the upper triangle (with the diagonal) of an m x m matrix."""
    hit = _TRIU_CACHE.get(m)
    if hit is None:
        r, c = np.triu_indices(m)
        hit = _TRIU_CACHE[m] = (r.astype(np.int64), c.astype(np.int64))
        if len(_TRIU_CACHE) > 64:
            _TRIU_CACHE.pop(next(iter(_TRIU_CACHE)))
    return hit


@dataclass
class _Rows:
    """Collects constraint rows block by block, merging neighbouring blocks of the same cone."""

    rows: list[Index] = field(default_factory=list)
    cols: list[Index] = field(default_factory=list)
    vals: list[Array] = field(default_factory=list)
    rhs: list[Array] = field(default_factory=list)
    cones: list[Cone] = field(default_factory=list)
    m: int = 0
    tags: dict[str, int] = field(default_factory=dict)

    def add(
        self,
        cone: str,
        count: int,
        rows: Index,
        cols: Index,
        vals: Array | list[float],
        rhs: Array | list[float],
        tag: str = "",
    ) -> None:
        if count == 0:
            return
        if tag:
            self.tags[tag] = self.m
        self.rows.append(rows + self.m)
        self.cols.append(cols)
        self.vals.append(np.asarray(vals, dtype=np.float64))
        self.rhs.append(np.asarray(rhs, dtype=np.float64))
        if cone in ("zero", "nonneg") and self.cones and self.cones[-1][0] == cone:
            self.cones[-1] = (cone, self.cones[-1][1] + count)
        else:
            self.cones.append((cone, count if cone != "exp" else count // 3))
        self.m += count


def _ints(*parts: Index | list[int] | range) -> Index:
    return np.concatenate([np.asarray(p, dtype=np.int64) for p in parts]) if parts else np.empty(0, np.int64)


@dataclass(frozen=True)
class Layout:
    """Where each variable block starts in x."""

    m: int
    w: int = 0
    kappa: int = -1
    u: int = -1
    v: int = -1
    t: int = -1
    n_vars: int = 0


def _layout(m: int, *, kappa: bool, leverage: bool, turnover: bool, t: bool = False) -> Layout:
    pos = m
    k = u = v = tt = -1
    if kappa:
        k, pos = pos, pos + 1
    if leverage:
        u, pos = pos, pos + m
    if turnover:
        v, pos = pos, pos + m
    if t:
        tt, pos = pos, pos + m
    return Layout(m=m, kappa=k, u=u, v=v, t=tt, n_vars=pos)


def _risk_block(prep: Prepared, idx: Index, offset: int = 0) -> tuple[Index, Index, Array]:
    r, c = _triu(idx.size)
    sub = prep.risk[np.ix_(idx, idx)]
    return r + offset, c + offset, sub[r, c]


def uses_leverage_rows(prep: Prepared) -> bool:
    """Long-only weights that sum to 1 have sum |w| = 1: the cap (already checked >= 1) is vacuous."""
    return prep.max_leverage is not None and not prep.long_only


def build(prep: Prepared, idx: Index) -> tuple[Model, Layout]:
    """The Model of prep.objective over the assets `idx`."""
    match prep.objective:
        case Objective.MIN_VARIANCE | Objective.TARGET_RETURN:
            return _min_risk(prep, idx)
        case Objective.MAX_SHARPE:
            return _max_sharpe(prep, idx)
        case Objective.TARGET_VOLATILITY:
            return _target_volatility(prep, idx)
        case Objective.RISK_PARITY:
            return _risk_parity(prep, idx)
    raise ValueError(f"unknown objective {prep.objective!r}")


def _bounds_and_caps(rows: _Rows, prep: Prepared, idx: Index, lay: Layout, homogeneous: bool) -> None:
    """Bounds, leverage and turnover rows; with `homogeneous`, right-hand sides move onto κ."""
    m, k = lay.m, lay.kappa
    lb, ub = prep.lower[idx], prep.upper[idx]
    ones = np.ones(m)
    for sign, bound, tag in ((-1.0, lb, "lower"), (1.0, ub, "upper")):
        which = np.flatnonzero(np.isfinite(bound)).astype(np.int64)
        count = which.size
        local = np.arange(count, dtype=np.int64)
        if homogeneous:  # sign*y_i - sign*bound_i*κ <= 0
            rows.add(
                "nonneg",
                count,
                _ints(local, local),
                _ints(which, np.full(count, k)),
                np.concatenate((np.full(count, sign), -sign * bound[which])),
                np.zeros(count),
                tag,
            )
        else:  # sign*w_i <= sign*bound_i
            rows.add("nonneg", count, local, which, np.full(count, sign), sign * bound[which], tag)
    local = np.arange(m, dtype=np.int64)
    cols = np.arange(m, dtype=np.int64)
    if lay.u >= 0:
        assert prep.max_leverage is not None
        u = lay.u + cols
        # w - u <= 0 ; -w - u <= 0 ; 1'u <= L  (or 1'u - L κ <= 0)
        rows.add("nonneg", m, _ints(local, local), _ints(cols, u), np.r_[ones, -ones], np.zeros(m))
        rows.add("nonneg", m, _ints(local, local), _ints(cols, u), np.r_[-ones, -ones], np.zeros(m))
        if homogeneous:
            rows.add(
                "nonneg", 1, np.zeros(m + 1, np.int64), _ints(u, [k]), np.r_[ones, -prep.max_leverage], [0.0]
            )
        else:
            rows.add("nonneg", 1, np.zeros(m, np.int64), u, ones, [prep.max_leverage])
    if lay.v >= 0:
        assert prep.current is not None
        assert prep.max_turnover is not None
        w0 = prep.current[idx]
        v = lay.v + cols
        if homogeneous:
            # y - κ w0 - v <= 0 ; -y + κ w0 - v <= 0 ; 1'v - τ κ <= 0
            kk = np.full(m, k)
            rows.add(
                "nonneg",
                m,
                _ints(local, local, local),
                _ints(cols, kk, v),
                np.r_[ones, -w0, -ones],
                np.zeros(m),
            )
            rows.add(
                "nonneg",
                m,
                _ints(local, local, local),
                _ints(cols, kk, v),
                np.r_[-ones, w0, -ones],
                np.zeros(m),
            )
            rows.add(
                "nonneg", 1, np.zeros(m + 1, np.int64), _ints(v, [k]), np.r_[ones, -prep.max_turnover], [0.0]
            )
        else:
            # w - v <= w0 ; -w - v <= -w0 ; 1'v <= τ
            rows.add("nonneg", m, _ints(local, local), _ints(cols, v), np.r_[ones, -ones], w0)
            rows.add("nonneg", m, _ints(local, local), _ints(cols, v), np.r_[-ones, -ones], -w0)
            rows.add("nonneg", 1, np.zeros(m, np.int64), v, ones, [prep.max_turnover])


def _model(lay: Layout, p: tuple[Index, Index, Array], q: Array, rows: _Rows) -> Model:
    return Model(
        n=lay.n_vars,
        p_rows=p[0],
        p_cols=p[1],
        p_vals=p[2],
        q=q,
        a_rows=_ints(*rows.rows),
        a_cols=_ints(*rows.cols),
        a_vals=np.concatenate(rows.vals) if rows.vals else np.empty(0),
        b=np.concatenate(rows.rhs) if rows.rhs else np.empty(0),
        cones=tuple(rows.cones),
        tags=rows.tags,
    )


def return_scale(values: Array) -> float:
    """Largest magnitude, used to bring a return vector near 1 (1 if all zero)."""
    top = float(np.max(np.abs(values))) if values.size else 0.0
    return top if top > 0 else 1.0


def _min_risk(prep: Prepared, idx: Index) -> tuple[Model, Layout]:
    m = idx.size
    lay = _layout(m, kappa=False, leverage=uses_leverage_rows(prep), turnover=prep.max_turnover is not None)
    rows = _Rows()
    cols = np.arange(m, dtype=np.int64)
    rows.add("zero", 1, np.zeros(m, np.int64), cols, np.ones(m), [1.0], "budget")
    _bounds_and_caps(rows, prep, idx, lay, homogeneous=False)
    if prep.target_return is not None:
        s = return_scale(prep.mu)
        rows.add(
            "nonneg", 1, np.zeros(m, np.int64), cols, -prep.mu[idx] / s, [-prep.target_return / s], "ret"
        )
    return _model(lay, _risk_block(prep, idx), np.zeros(lay.n_vars), rows), lay


def _max_sharpe(prep: Prepared, idx: Index) -> tuple[Model, Layout]:
    m = idx.size
    lay = _layout(m, kappa=True, leverage=uses_leverage_rows(prep), turnover=prep.max_turnover is not None)
    k = lay.kappa
    excess = prep.mu - prep.rf
    s = return_scale(excess)
    rows = _Rows()
    cols = np.arange(m, dtype=np.int64)
    rows.add("zero", 1, np.zeros(m, np.int64), cols, excess[idx] / s, [1.0], "ret")
    rows.add("zero", 1, np.zeros(m + 1, np.int64), _ints(cols, [k]), np.r_[np.ones(m), -1.0], [0.0], "budget")
    rows.add("nonneg", 1, np.zeros(1, np.int64), np.array([k]), [-1.0], [0.0], "kappa")
    _bounds_and_caps(rows, prep, idx, lay, homogeneous=True)
    return _model(lay, _risk_block(prep, idx), np.zeros(lay.n_vars), rows), lay


def _target_volatility(prep: Prepared, idx: Index) -> tuple[Model, Layout]:
    m = idx.size
    lay = _layout(m, kappa=False, leverage=uses_leverage_rows(prep), turnover=prep.max_turnover is not None)
    assert prep.target_variance is not None
    rows = _Rows()
    cols = np.arange(m, dtype=np.int64)
    rows.add("zero", 1, np.zeros(m, np.int64), cols, np.ones(m), [1.0], "budget")
    _bounds_and_caps(rows, prep, idx, lay, homogeneous=False)
    # (σ, L'w) in the second-order cone of dimension m + 1: row 0 is σ, rows 1..m are -(L'w)
    assert idx.size == prep.n, "target volatility is solved over every asset"
    chol = prep.chol
    r, c = _triu(m)  # L' is upper triangular: (L')[r, c] = L[c, r]
    rows.add(
        "soc",
        m + 1,
        r + 1,
        c,
        -chol[c, r],
        np.r_[np.sqrt(prep.target_variance), np.zeros(m)],
        "soc",
    )
    q = np.zeros(lay.n_vars)
    q[:m] = -prep.mu[idx] / return_scale(prep.mu)
    empty = np.empty(0, np.int64)
    return _model(lay, (empty, empty, np.empty(0)), q, rows), lay


def _risk_parity(prep: Prepared, idx: Index) -> tuple[Model, Layout]:
    m = idx.size
    lay = _layout(m, kappa=False, leverage=False, turnover=False, t=True)
    assert prep.budgets is not None
    rows = _Rows()
    i = np.arange(m, dtype=np.int64)
    # per asset: row 3i is t_i (A = -1), row 3i+1 is the constant 1, row 3i+2 is y_i (A = -1)
    rows.add(
        "exp",
        3 * m,
        _ints(3 * i, 3 * i + 2),
        _ints(lay.t + i, i),
        -np.ones(2 * m),
        np.tile([0.0, 1.0, 0.0], m),
    )
    q = np.zeros(lay.n_vars)
    q[lay.t : lay.t + m] = -prep.budgets[idx]
    return _model(lay, _risk_block(prep, idx), q, rows), lay
