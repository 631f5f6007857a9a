"""The health formula, factor by factor (pure, with an explicit clock)."""

from __future__ import annotations

import pytest

from feed_handler.health import HealthTracker


def feed(tracker: HealthTracker, seconds: int, rate: int, start: float = 0.0, msgs: int = 0) -> int:
    for t in range(seconds + 1):
        tracker.sample(start + t, msgs + rate * t, 0, 0, 0, True)
    return msgs + rate * seconds


def test_a_steady_feed_is_fully_healthy_and_a_disconnected_one_is_zero() -> None:
    h = HealthTracker(stale_after=2.0, idle_timeout=10.0)
    feed(h, 30, 100)
    assert h.score(30.0, idle=0.1, connected=True) == 1.0
    assert h.score(30.0, idle=0.1, connected=False) == 0.0


@pytest.mark.parametrize(("idle", "expected"), [(1.0, 1.0), (2.0, 1.0), (6.0, 0.5), (10.0, 0.0), (30.0, 0.0)])
def test_staleness_falls_linearly_from_stale_after_to_idle_timeout(idle: float, expected: float) -> None:
    h = HealthTracker(stale_after=2.0, idle_timeout=10.0)
    feed(h, 5, 10)
    assert h.parts(5.0, idle, True).stale == pytest.approx(expected)


def test_rate_below_half_its_norm_lowers_health() -> None:
    h = HealthTracker(stale_after=2.0, idle_timeout=10.0)
    total = feed(h, 120, 1000)
    assert h.norm_rate == pytest.approx(1000, rel=0.01)
    # now 200 msgs/s for 5 s: 200 / (0.5 * ~1000) = ~0.4
    for t in range(1, 6):
        h.sample(120 + t, total + 200 * t, 0, 0, 0, True)
    assert h.parts(125.0, 0.0, True).rate == pytest.approx(0.4, abs=0.05)


def test_gaps_errors_and_reconnects_each_cost_health() -> None:
    h = HealthTracker(stale_after=2.0, idle_timeout=10.0)
    for t in range(11):
        h.sample(t, 100 * t, 0, 0, 0, True)
    h.sample(11, 1100, 10, 2, 1, True)  # 10 bad messages of 1010, 2 gaps, 1 reconnect
    parts = h.parts(11.0, 0.0, True)
    assert parts.gaps == pytest.approx(0.8**2)
    assert parts.errors == pytest.approx(1 - 10 * 10 / 1110)
    assert parts.reconnects == pytest.approx(0.9)
    assert parts.score == pytest.approx(round(0.64 * (1 - 100 / 1110) * 0.9, 3))
    # a minute later the gaps and errors have aged out, the reconnect (5 min window) has not
    for t in range(12, 80):
        h.sample(t, 1100 + 100 * (t - 11), 10, 2, 1, True)
    later = h.parts(79.0, 0.0, True)
    assert later.gaps == 1.0
    assert later.errors == 1.0
    assert later.reconnects == pytest.approx(0.9)
