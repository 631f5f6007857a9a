"""Backoff bounds and circuit-breaker state transitions (pure logic, a fake clock)."""

from __future__ import annotations

import random

import pytest

from nexus.resilience import Backoff, BreakerState, CircuitBreaker


def test_backoff_delays_stay_within_full_jitter_bounds() -> None:
    backoff = Backoff(base=0.1, cap=2.0, rng=random.Random(7))
    for attempt in range(20):
        ceiling = min(2.0, 0.1 * 2**attempt)
        delay = backoff.next()
        assert 0.0 <= delay <= ceiling


def test_backoff_is_jittered_not_constant() -> None:
    delays = [Backoff(base=1.0, cap=1.0, rng=random.Random(s)).next() for s in range(50)]
    assert len(set(delays)) == 50
    assert min(delays) < 0.2
    assert max(delays) > 0.8


def test_backoffs_without_their_own_rng_still_jitter() -> None:
    # They share one random source (cheap to make per batch); each draw is still a fresh one.
    delays = [Backoff(base=1.0, cap=1.0).next() for _ in range(50)]
    assert len(set(delays)) == 50
    assert all(0.0 <= d <= 1.0 for d in delays)


def test_backoff_caps_and_resets() -> None:
    backoff = Backoff(base=0.5, cap=3.0)
    assert [backoff.ceiling(n) for n in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    for _ in range(10):
        backoff.next()
    assert backoff.ceiling() == 3.0
    backoff.reset()
    assert backoff.attempt == 0
    assert backoff.ceiling() == 0.5


def test_backoff_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="base"):
        Backoff(base=0, cap=1)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_n_consecutive_failures_and_half_opens_after_cool_down() -> None:
    clock = Clock()
    changes: list[tuple[BreakerState, BreakerState]] = []
    breaker = CircuitBreaker(3, 10.0, clock=clock, on_change=lambda a, b: changes.append((a, b)))

    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()
    assert breaker.remaining() == pytest.approx(10.0)

    clock.now += 9.9
    assert breaker.state is BreakerState.OPEN
    clock.now += 0.2
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()
    assert not breaker.allow(), "half-open lets exactly one trial through"

    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.failures == 0
    assert changes == [
        (BreakerState.CLOSED, BreakerState.OPEN),
        (BreakerState.OPEN, BreakerState.HALF_OPEN),
        (BreakerState.HALF_OPEN, BreakerState.CLOSED),
    ]


def test_a_failed_trial_reopens_for_another_cool_down() -> None:
    clock = Clock()
    breaker = CircuitBreaker(1, 5.0, clock=clock)
    breaker.record_failure()
    clock.now += 5.0
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert breaker.remaining() == pytest.approx(5.0)


def test_a_success_resets_the_failure_count() -> None:
    breaker = CircuitBreaker(3, 1.0, clock=Clock())
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
