"""Rates and increases of monotonic counters sampled from heartbeats, robust to process restarts."""

from __future__ import annotations

from collections import deque


class CounterRate:
    """Samples of one counter over the last `keep` seconds.

    `add` returns the increase since the previous sample: 0 for the first sample of a counter that was
    already running when we started watching (`from_zero=False`), the whole value for a process we know
    has just started (`from_zero=True`), and the new value when the counter went backwards (a restart)."""

    __slots__ = ("_samples", "keep")

    def __init__(self, keep: float = 60.0) -> None:
        self.keep = keep
        self._samples: deque[tuple[float, float]] = deque()

    def add(self, t: float, value: float, *, from_zero: bool = False) -> float:
        if not self._samples:
            delta = value if from_zero else 0.0
        else:
            last = self._samples[-1][1]
            if value < last:
                self._samples.clear()
                delta = value
            else:
                delta = value - last
        self._samples.append((t, value))
        while len(self._samples) > 2 and self._samples[0][0] < t - self.keep:
            self._samples.popleft()
        return delta

    def rate(self, now: float, over: float) -> float:
        """Average increase per second over the samples of the last `over` seconds (0 if fewer than 2)."""
        first = None
        for t, v in self._samples:
            if t >= now - over:
                first = (t, v)
                break
        if first is None:
            return 0.0
        t_last, v_last = self._samples[-1]
        if t_last <= first[0]:
            return 0.0
        return (v_last - first[1]) / (t_last - first[0])

    @property
    def value(self) -> float:
        return self._samples[-1][1] if self._samples else 0.0

    def reset(self) -> None:
        self._samples.clear()
