"""Raise/clear latches with hysteresis, so a value that flaps around a threshold does not spam alerts.

    latch = Threshold(raise_at=0.5, clear_at=0.7, raise_for=5, clear_for=5, above=False)
    latch.update(now, health)   ->  "raised" | "cleared" | None   (a transition, or nothing)

A `Threshold` raises when the value is on the bad side of `raise_at` continuously for `raise_for`
seconds and clears when it is on the good side of `clear_at` continuously for `clear_for` seconds;
between the two thresholds nothing changes (and both hold timers restart). An `EventLatch` is for
things that happen rather than levels: `trigger` raises (once), and it clears `hold` seconds after the
last trigger. Pure: the caller passes the time.
"""

from __future__ import annotations

import math
from typing import Literal

Transition = Literal["raised", "cleared"]


class Threshold:
    """A level latch. `above=True`: high is bad (latency, age); `above=False`: low is bad (health)."""

    __slots__ = (
        "_bad_since",
        "_good_since",
        "above",
        "active",
        "clear_at",
        "clear_for",
        "raise_at",
        "raise_for",
    )

    def __init__(
        self,
        raise_at: float,
        clear_at: float,
        *,
        raise_for: float = 0.0,
        clear_for: float = 0.0,
        above: bool = True,
    ) -> None:
        if above and clear_at > raise_at:
            raise ValueError(f"clear_at {clear_at} must not be above raise_at {raise_at} when high is bad")
        if not above and clear_at < raise_at:
            raise ValueError(f"clear_at {clear_at} must not be below raise_at {raise_at} when low is bad")
        self.raise_at = raise_at
        self.clear_at = clear_at
        self.raise_for = raise_for
        self.clear_for = clear_for
        self.above = above
        self.active = False
        self._bad_since: float | None = None
        self._good_since: float | None = None

    def is_bad(self, value: float) -> bool:
        return value >= self.raise_at if self.above else value <= self.raise_at

    def is_good(self, value: float) -> bool:
        if math.isnan(value):
            return False
        return value <= self.clear_at if self.above else value >= self.clear_at

    def update(self, now: float, value: float) -> Transition | None:
        if self.is_bad(value):
            self._good_since = None
            if self._bad_since is None:
                self._bad_since = now
            if not self.active and now - self._bad_since >= self.raise_for:
                self.active = True
                return "raised"
        elif self.is_good(value):
            self._bad_since = None
            if self._good_since is None:
                self._good_since = now
            if self.active and now - self._good_since >= self.clear_for:
                self.active = False
                return "cleared"
        else:  # inside the hysteresis band: keep the state, restart both hold timers
            self._bad_since = None
            self._good_since = None
        return None

    def force_clear(self) -> Transition | None:
        """Clear without waiting (the thing it watched is gone)."""
        self._bad_since = self._good_since = None
        if self.active:
            self.active = False
            return "cleared"
        return None


class EventLatch:
    """Raised by an event; cleared `hold` seconds after the last one. Counts the events while raised."""

    __slots__ = ("active", "count", "hold", "last")

    def __init__(self, hold: float) -> None:
        self.hold = hold
        self.active = False
        self.last = -math.inf
        self.count = 0

    def trigger(self, now: float, n: int = 1) -> Transition | None:
        self.last = now
        if self.active:
            self.count += n
            return None
        self.active = True
        self.count = n
        return "raised"

    def update(self, now: float) -> Transition | None:
        if self.active and now - self.last >= self.hold:
            self.active = False
            return "cleared"
        return None
