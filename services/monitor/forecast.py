"""The predictive rule's arithmetic: a least-squares line through recent samples, and when it meets a limit.

Method: ordinary least squares of value on time over the samples of the last `window` seconds (at least
`min_points` of them, spanning at least a third of the window). The fitted line gives the level now and
the slope. To keep a noisy but flat gauge from crying wolf, the slope used for the forecast is the lower
end of its one-sided 99.5% confidence interval, slope − t(0.995, n−2)·se(slope); if that is positive,
the estimated time to the limit is (limit − level_now) ÷ that slope, else infinity. A clean ramp has a
tiny standard error, so its forecast is the plain slope's. The monitor alerts when the time to the limit
is within its horizon.
"""

from __future__ import annotations

import bisect
import math
from collections import deque

import msgspec

_T995 = (
    (1, 63.657),
    (2, 9.925),
    (3, 5.841),
    (4, 4.605),
    (5, 4.033),
    (6, 3.708),
    (7, 3.5),
    (8, 3.356),
    (9, 3.25),
    (10, 3.17),
    (12, 3.055),
    (15, 2.947),
    (20, 2.846),
    (30, 2.75),
    (60, 2.661),
    (120, 2.618),
)
"""Student's t quantile 0.995 by degrees of freedom (scipy.stats.t.ppf, rounded up); between rows and
beyond the last one the value of the lower df is used (larger, so conservative)."""
_DFS = [df for df, _ in _T995]


def t995(df: int) -> float:
    if df < 1:
        return math.inf
    return _T995[bisect.bisect_right(_DFS, df) - 1][1]


class Trend(msgspec.Struct, frozen=True):
    """A fitted line: `level` at the newest sample's time, `slope` per second with its standard error
    `se`, over `points` samples."""

    level: float
    slope: float
    se: float
    points: int

    @property
    def slope_low(self) -> float:
        """The lower end of the slope's one-sided 99.5% confidence interval."""
        return self.slope - t995(self.points - 2) * self.se

    def eta(self, limit: float) -> float:
        """Seconds until the line reaches `limit` at the conservative slope (0 if already there, inf if
        it is not rising with confidence)."""
        if self.level >= limit:
            return 0.0
        slope = self.slope_low
        if slope <= 0:
            return math.inf
        return (limit - self.level) / slope


def fit(times: list[float], values: list[float]) -> Trend | None:
    """Least-squares line through (time, value); None with fewer than 3 points or 2 distinct times."""
    n = len(times)
    if n < 3 or n != len(values):
        return None
    t_mean = sum(times) / n
    v_mean = sum(values) / n
    stt = sum((t - t_mean) ** 2 for t in times)
    if stt <= 0:
        return None
    stv = sum((t - t_mean) * (v - v_mean) for t, v in zip(times, values, strict=True))
    slope = stv / stt
    ssr = sum((v - v_mean - slope * (t - t_mean)) ** 2 for t, v in zip(times, values, strict=True))
    se = math.sqrt(max(ssr, 0.0) / (n - 2) / stt)
    level = v_mean + slope * (times[-1] - t_mean)
    return Trend(level=level, slope=slope, se=se, points=n)


class Forecaster:
    """Keeps the last `window` seconds of one gauge and forecasts when it reaches a limit."""

    __slots__ = ("_samples", "min_points", "min_span", "window")

    def __init__(self, window: float, min_points: int) -> None:
        self.window = window
        self.min_points = max(3, min_points)
        self.min_span = window / 3
        self._samples: deque[tuple[float, float]] = deque()

    def add(self, t: float, value: float) -> None:
        self._samples.append((t, value))
        while self._samples and self._samples[0][0] < t - self.window:
            self._samples.popleft()

    def reset(self) -> None:
        """Forget the samples (the process behind the gauge restarted)."""
        self._samples.clear()

    def trend(self) -> Trend | None:
        """The fitted line, once there are enough samples over a long enough span."""
        if len(self._samples) < self.min_points:
            return None
        if self._samples[-1][0] - self._samples[0][0] < self.min_span:
            return None
        times, values = zip(*self._samples, strict=True)
        return fit(list(times), list(values))

    def eta(self, limit: float) -> float:
        """Seconds until the fitted line reaches `limit`; inf when unknown or never."""
        trend = self.trend()
        return math.inf if trend is None else trend.eta(limit)
