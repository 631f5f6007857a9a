"""The health score of a feed, 0..1. Pure logic: the caller passes the clock and the counters.

    health = 0                                          when the feed is not connected (not live/stale)
    health = f_stale * f_rate * f_gaps * f_errors * f_reconnects    otherwise, rounded to 3 decimals

    f_stale      1 while silent <= stale_after, then linear down to 0 at idle_timeout (the watchdog's limit)
    f_rate       min(1, rate_5s / (0.5 * norm)); norm = EWMA (half-life 60 s) of the per-second rate
                 while connected; 1 while norm < 1 msg/s (too quiet to judge)
    f_gaps       0.8 ** (sequence gaps in the last 60 s)
    f_errors     max(0, 1 - 10 * errors_60s / (msgs_60s + errors_60s))   (10 % bad input -> 0)
    f_reconnects 0.9 ** (reconnects in the last 300 s)   (3 reconnects -> 0.73 < a 0.8 failback level)

`sample()` is called about once a second with the feed's cumulative counters; `score()` any time.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

RATE_WINDOW = 5.0
COUNT_WINDOW = 60.0
RECONNECT_WINDOW = 300.0
NORM_HALF_LIFE = 60.0
MIN_NORM_RATE = 1.0


@dataclass(frozen=True)
class HealthParts:
    """The factors of the score (each 0..1), reported beside it so an operator sees why it is low."""

    stale: float = 1.0
    rate: float = 1.0
    gaps: float = 1.0
    errors: float = 1.0
    reconnects: float = 1.0

    @property
    def score(self) -> float:
        return round(self.stale * self.rate * self.gaps * self.errors * self.reconnects, 3)


@dataclass(frozen=True)
class _Sample:
    t: float
    msgs: int
    errors: int
    gaps: int
    reconnects: int


class HealthTracker:
    """Keeps the recent history of one feed's counters and scores it."""

    def __init__(self, stale_after: float, idle_timeout: float) -> None:
        self.stale_after = stale_after
        self.idle_timeout = idle_timeout
        self.norm_rate = 0.0
        self._samples: deque[_Sample] = deque()

    def sample(self, now: float, msgs: int, errors: int, gaps: int, reconnects: int, connected: bool) -> None:
        """Record the cumulative counters at `now` (monotonic seconds); updates the rate norm."""
        prev = self._samples[-1] if self._samples else None
        self._samples.append(_Sample(now, msgs, errors, gaps, reconnects))
        while self._samples and now - self._samples[0].t > RECONNECT_WINDOW + 1:
            self._samples.popleft()
        if prev is not None and connected and now > prev.t:
            rate = (msgs - prev.msgs) / (now - prev.t)
            alpha = 1 - math.exp(-(now - prev.t) * math.log(2) / NORM_HALF_LIFE)
            self.norm_rate = rate if self.norm_rate == 0 else self.norm_rate + alpha * (rate - self.norm_rate)

    def _delta(self, now: float, window: float) -> _Sample | None:
        """Counter increases over (about) the last `window` seconds, from the samples."""
        if not self._samples:
            return None
        last = self._samples[-1]
        first = last
        for s in reversed(self._samples):
            if now - s.t > window:
                break
            first = s
        if first is last:
            # one sample in the window: compare with the one before it if there is one
            idx = len(self._samples) - 2
            if idx < 0:
                return None
            first = self._samples[idx]
        return _Sample(
            last.t - first.t,
            last.msgs - first.msgs,
            last.errors - first.errors,
            last.gaps - first.gaps,
            last.reconnects - first.reconnects,
        )

    def parts(self, now: float, idle: float, connected: bool) -> HealthParts:
        """The score's factors at `now`, given the feed has been silent for `idle` seconds."""
        if not connected:
            return HealthParts(stale=0.0)
        if idle <= self.stale_after:
            stale = 1.0
        else:
            span = self.idle_timeout - self.stale_after
            stale = max(0.0, 1.0 - (idle - self.stale_after) / span)
        rate = 1.0
        recent = self._delta(now, RATE_WINDOW)
        if recent is not None and recent.t > 0 and self.norm_rate >= MIN_NORM_RATE:
            rate = min(1.0, (recent.msgs / recent.t) / (0.5 * self.norm_rate))
        gaps = errors = reconnects = 1.0
        minute = self._delta(now, COUNT_WINDOW)
        if minute is not None:
            gaps = 0.8**minute.gaps
            seen = minute.msgs + minute.errors
            errors = max(0.0, 1.0 - 10.0 * minute.errors / seen) if seen else 1.0
        long = self._delta(now, RECONNECT_WINDOW)
        if long is not None:
            reconnects = 0.9**long.reconnects
        return HealthParts(stale, rate, gaps, errors, reconnects)

    def score(self, now: float, idle: float, connected: bool) -> float:
        return self.parts(now, idle, connected).score
