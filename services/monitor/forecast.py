"""The predictive rule's arithmetic: a least-squares line through recent samples, and when it meets a limit.

Method: ordinary least squares of value on time over the samples of the last `window` seconds (at least
`min_points` of them). The fitted line gives the level now and the slope; if the slope is positive the
estimated time to the limit is (limit - level_now) / slope, else infinity. The monitor alerts when that
time is within its horizon while the measured value is still below the limit.
"""

from __future__ import annotations

import math
from collections import deque

import msgspec


class Trend(msgspec.Struct, frozen=True):
    """A fitted line: `level` at the newest sample's time, `slope` per second, over `points` samples."""

    level: float
    slope: float
    points: int

    def eta(self, limit: float) -> float:
        """Seconds until the line reaches `limit` (0 if already there, inf if it never will)."""
        if self.level >= limit:
            return 0.0
        if self.slope <= 0:
            return math.inf
        return (limit - self.level) / self.slope


def fit(times: list[float], values: list[float]) -> Trend | None:
    """Least-squares line through (time, value); None with fewer than 2 distinct times."""
    n = len(times)
    if n < 2 or n != len(values):
        return None
    t_mean = sum(times) / n
    v_mean = sum(values) / n
    stt = sum((t - t_mean) ** 2 for t in times)
    if stt <= 0:
        return None
    stv = sum((t - t_mean) * (v - v_mean) for t, v in zip(times, values, strict=True))
    slope = stv / stt
    level = v_mean + slope * (times[-1] - t_mean)
    return Trend(level=level, slope=slope, points=n)


class Forecaster:
    """Keeps the last `window` seconds of one gauge and forecasts when it reaches a limit."""

    __slots__ = ("_samples", "min_points", "window")

    def __init__(self, window: float, min_points: int) -> None:
        self.window = window
        self.min_points = min_points
        self._samples: deque[tuple[float, float]] = deque()

    def add(self, t: float, value: float) -> None:
        self._samples.append((t, value))
        while self._samples and self._samples[0][0] < t - self.window:
            self._samples.popleft()

    def reset(self) -> None:
        """Forget the samples (the process behind the gauge restarted)."""
        self._samples.clear()

    def trend(self) -> Trend | None:
        if len(self._samples) < self.min_points:
            return None
        times, values = zip(*self._samples, strict=True)
        return fit(list(times), list(values))

    def eta(self, limit: float) -> float:
        """Seconds until the fitted line reaches `limit`; inf when unknown or never."""
        trend = self.trend()
        return math.inf if trend is None else trend.eta(limit)
