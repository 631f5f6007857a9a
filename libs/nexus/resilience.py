"""Reconnection policy: exponential backoff with full jitter, and a circuit breaker.

Both are pure logic (no I/O, an injectable clock and random source) so they are tested without sleeping.

    backoff = Backoff(base=0.1, cap=5.0)
    delay = backoff.next()            # uniform in [0, min(cap, base * 2**attempt)]
    backoff.reset()                   # after a success

    breaker = CircuitBreaker(failure_threshold=5, reset_timeout=10.0)
    if breaker.allow(): ...connect...; breaker.record_success() / breaker.record_failure()
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from enum import StrEnum

_JITTER = random.Random()
"""The random source of every Backoff not given its own. A new `random.Random()` seeds itself from the OS
(~11 µs): the order engine and risk make a Backoff per stored batch, the order client one per submit."""


class Backoff:
    """Exponential backoff with full jitter (AWS architecture blog, "Exponential Backoff And Jitter").

    The n-th delay (n from 0) is drawn uniformly from [0, min(cap, base * factor**n)].
    """

    def __init__(
        self,
        base: float = 0.1,
        cap: float = 10.0,
        factor: float = 2.0,
        rng: random.Random | None = None,
    ) -> None:
        if base <= 0 or cap < base or factor < 1:
            raise ValueError(
                f"need 0 < base <= cap and factor >= 1, got base={base} cap={cap} factor={factor}"
            )
        self.base = base
        self.cap = cap
        self.factor = factor
        self.attempt = 0
        self._rng = rng or _JITTER

    def ceiling(self, attempt: int | None = None) -> float:
        """Upper bound of the delay for an attempt (the current one by default)."""
        n = self.attempt if attempt is None else attempt
        # Cap the exponent so huge attempt counts cannot overflow a float.
        return min(self.cap, self.base * self.factor ** min(n, 64))

    def next(self) -> float:
        """The delay before the next attempt; advances the attempt counter."""
        delay = self._rng.uniform(0.0, self.ceiling())
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Closed -> (N consecutive failures) -> open -> (reset_timeout elapsed) -> half-open.

    Half-open lets one trial through: success closes the breaker, failure opens it again for another
    `reset_timeout`. `on_change(old, new)` is called on every transition.
    """

    def __init__(
        self,
        failure_threshold: int = 5,
        reset_timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[BreakerState, BreakerState], None] | None = None,
    ) -> None:
        if failure_threshold < 1 or reset_timeout <= 0:
            raise ValueError("failure_threshold must be >= 1 and reset_timeout > 0")
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self._clock = clock
        self._on_change = on_change
        self._state = BreakerState.CLOSED
        self.failures = 0
        self.opened_at = 0.0
        self._trial_in_flight = False

    @property
    def state(self) -> BreakerState:
        """Current state; an open breaker whose cool-down has elapsed reports (and becomes) half-open."""
        if self._state is BreakerState.OPEN and self._clock() - self.opened_at >= self.reset_timeout:
            self._set(BreakerState.HALF_OPEN)
        return self._state

    def remaining(self) -> float:
        """Seconds until an open breaker half-opens (0 when not open)."""
        if self.state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self.reset_timeout - (self._clock() - self.opened_at))

    def allow(self) -> bool:
        """May a call go through now? In half-open, only one trial at a time."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._trial_in_flight:
            self._trial_in_flight = True
            return True
        return False

    def record_success(self) -> None:
        self.failures = 0
        self._trial_in_flight = False
        if self._state is not BreakerState.CLOSED:
            self._set(BreakerState.CLOSED)

    def record_failure(self) -> None:
        self.failures += 1
        self._trial_in_flight = False
        state = self.state
        if state is BreakerState.HALF_OPEN or (
            state is BreakerState.CLOSED and self.failures >= self.failure_threshold
        ):
            self.opened_at = self._clock()
            self._set(BreakerState.OPEN)

    def _set(self, new: BreakerState) -> None:
        old, self._state = self._state, new
        if old is not new and self._on_change is not None:
            self._on_change(old, new)
