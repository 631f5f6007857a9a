"""Bounded in-memory time series: one fixed-size ring of (time, value) per metric.

    store = SeriesStore(window=3600, step=1.0)
    store.record("system.health", now, 0.93)
    store.points("system.health", since=now - 300)   ->  [(t, v), ...] oldest first

Memory is bounded twice: a series holds at most `window / step` points (a second point within `step`
of the last one replaces it), and points older than `window` are not returned. Times are the caller's
clock (the monitor uses time.monotonic() and converts to wall time at the edge).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np


class Series:
    """A ring of at most `capacity` points spaced at least `step` apart."""

    __slots__ = ("_n", "_start", "_t", "_v", "capacity", "step")

    def __init__(self, capacity: int, step: float) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.step = step
        self._t = np.zeros(capacity, dtype=np.float64)
        self._v = np.zeros(capacity, dtype=np.float64)
        self._start = 0
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def append(self, t: float, value: float) -> None:
        """Add a point; within `step` of the last point it replaces that point (latest value wins)."""
        if self._n:
            last = (self._start + self._n - 1) % self.capacity
            if t - self._t[last] < self.step:
                self._t[last] = t
                self._v[last] = value
                return
        if self._n < self.capacity:
            i = (self._start + self._n) % self.capacity
            self._n += 1
        else:
            i = self._start
            self._start = (self._start + 1) % self.capacity
        self._t[i] = t
        self._v[i] = value

    def arrays(self, since: float = -math.inf) -> tuple[np.ndarray, np.ndarray]:
        """Times and values (oldest first) of the points at or after `since`."""
        order = (np.arange(self._n) + self._start) % self.capacity
        t, v = self._t[order], self._v[order]
        keep = t >= since
        return t[keep], v[keep]

    def points(self, since: float = -math.inf) -> list[tuple[float, float]]:
        t, v = self.arrays(since)
        return list(zip(t.tolist(), v.tolist(), strict=True))

    def last(self) -> tuple[float, float] | None:
        if not self._n:
            return None
        i = (self._start + self._n - 1) % self.capacity
        return float(self._t[i]), float(self._v[i])


class SeriesStore:
    """Named series with a common window and step."""

    def __init__(self, window: float, step: float) -> None:
        self.window = window
        self.step = step
        self.capacity = max(1, math.ceil(window / step))
        self._series: dict[str, Series] = {}

    def record(self, name: str, t: float, value: float) -> None:
        if not math.isfinite(value):
            return
        series = self._series.get(name)
        if series is None:
            series = self._series[name] = Series(self.capacity, self.step)
        series.append(t, value)

    def points(self, name: str, now: float, since: float | None = None) -> list[tuple[float, float]]:
        """Points of `name` within the window (and at or after `since`), oldest first."""
        series = self._series.get(name)
        if series is None:
            return []
        start = now - self.window if since is None else max(since, now - self.window)
        return series.points(start)

    def names(self) -> list[str]:
        return sorted(self._series)

    def __contains__(self, name: str) -> bool:
        return name in self._series

    def __iter__(self) -> Iterator[str]:
        return iter(self._series)

    def drop_prefix(self, prefix: str) -> None:
        """Forget every series whose name starts with `prefix` (a forgotten service instance)."""
        for name in [n for n in self._series if n.startswith(prefix)]:
            del self._series[name]
