"""Health scores (0..1) of a service instance, a feed and the whole system, and availability over a window.

Pure functions of numbers; docs/monitor.md states the same formulas.

Service instance
    H = L · N · A · (1 − 0.3·p_err − 0.2·p_drop − 0.3·p_queue − 0.2·p_lag)    (0 when down)
    L  state: ready 1, starting/stopping 0.5          N  NATS connected 1, else 0
    A  heartbeat freshness: 1 up to 1.5 intervals old, falling linearly to 0 at the down threshold
    p_err   = min(1, errors/s ÷ 1)          errors = every counter ending in `errors_total`
    p_drop  = min(1, drops/s ÷ 10)          drops = counters ending in `dropped_total` + slow-consumer drops
    p_queue = max over queues of clamp((depth/limit − 0.5) ÷ 0.5, 0, 1)   (no penalty below half full)
    p_lag   = clamp((loop_lag_ms − 100) ÷ 900, 0, 1)

Feed
    H = min(S, R) · (1 − 0.5·p_gap − 0.2·p_err − 0.3·p_lat)    (0 when no news for feed_stale_after)
    S  state: live 1, starting/connecting 0.5, stale 0.3, backoff/disconnected 0.1, circuit_open/failed 0
    R  the health the feed handler reports
    p_gap = min(1, gaps/s ÷ 1)   p_err = min(1, (errors + drops)/s ÷ 10)
    p_lat = latency penalty of the feed's venue (md.recv_to_consume p99 against its target)

Latency penalty of a stage:  p_lat = clamp((p99 − target) ÷ target, 0, 1)   (0 at target, 1 at twice it)

System
    S = ½·mean + ½·min of the service-instance healths, F = the same over feeds (stopped feeds excluded),
    Λ = 1 − max p_lat over every stage with a target and enough samples,
    H = 0.5·S + 0.3·F + 0.2·Λ     (without feeds: (0.5·S + 0.2·Λ) ÷ 0.7)
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

import msgspec

ERR_RATE_LIMIT = 1.0
"""Errors per second at which a service's error penalty is full."""
DROP_RATE_LIMIT = 10.0
QUEUE_FREE_FILL = 0.5
LAG_TARGET_MS = 100.0
LAG_MAX_MS = 1000.0
GAP_RATE_LIMIT = 1.0
FEED_ERR_RATE_LIMIT = 10.0
FRESH_INTERVALS = 1.5

SERVICE_STATE_FACTOR = {"ready": 1.0, "starting": 0.5, "stopping": 0.5}
FEED_STATE_FACTOR = {
    "live": 1.0,
    "starting": 0.5,
    "connecting": 0.5,
    "stale": 0.3,
    "backoff": 0.1,
    "disconnected": 0.1,
    "circuit_open": 0.0,
    "failed": 0.0,
}
FEED_DOWN_STATES = frozenset({"stale", "backoff", "disconnected", "circuit_open", "failed"})
FEED_EXCLUDED_STATES = frozenset({"stopped"})
"""A feed an operator stopped is neither healthy nor unhealthy: it is left out."""


def clamp01(x: float) -> float:
    if math.isnan(x):
        return 0.0
    return 0.0 if x < 0 else 1.0 if x > 1 else x


def ramp(value: float, start: float, end: float) -> float:
    """0 at or below `start`, 1 at or above `end`, linear between."""
    return clamp01((value - start) / (end - start))


def latency_penalty(p99_ms: float, target_ms: float) -> float:
    if target_ms <= 0:
        return 0.0
    return clamp01((p99_ms - target_ms) / target_ms)


class ServiceInputs(msgspec.Struct, kw_only=True):
    """What a service instance's health is computed from."""

    down: bool
    state: str
    nats_connected: bool
    heartbeat_age: float
    interval: float
    down_after: float
    error_rate: float = 0.0
    drop_rate: float = 0.0
    queue_fills: Sequence[float] = ()
    loop_lag_ms: float = 0.0


class ServiceHealth(msgspec.Struct, frozen=True, kw_only=True):
    score: float
    liveness: float
    p_err: float
    p_drop: float
    p_queue: float
    p_lag: float


def service_health(x: ServiceInputs) -> ServiceHealth:
    p_err = clamp01(x.error_rate / ERR_RATE_LIMIT)
    p_drop = clamp01(x.drop_rate / DROP_RATE_LIMIT)
    p_queue = max((ramp(fill, QUEUE_FREE_FILL, 1.0) for fill in x.queue_fills), default=0.0)
    p_lag = ramp(x.loop_lag_ms, LAG_TARGET_MS, LAG_MAX_MS)
    if x.down:
        liveness = 0.0
    else:
        fresh_until = FRESH_INTERVALS * x.interval
        freshness = (
            1.0 if x.down_after <= fresh_until else 1.0 - ramp(x.heartbeat_age, fresh_until, x.down_after)
        )
        liveness = SERVICE_STATE_FACTOR.get(x.state, 0.5) * (1.0 if x.nats_connected else 0.0) * freshness
    score = liveness * clamp01(1.0 - 0.3 * p_err - 0.2 * p_drop - 0.3 * p_queue - 0.2 * p_lag)
    return ServiceHealth(
        score=score, liveness=liveness, p_err=p_err, p_drop=p_drop, p_queue=p_queue, p_lag=p_lag
    )


class FeedInputs(msgspec.Struct, kw_only=True):
    state: str
    reported: float
    fresh: bool
    gap_rate: float = 0.0
    error_rate: float = 0.0
    p_lat: float = 0.0


def feed_health(x: FeedInputs) -> float | None:
    """The feed's score, or None for a feed an operator stopped (left out of the system score)."""
    if x.state in FEED_EXCLUDED_STATES:
        return None
    if not x.fresh:
        return 0.0
    base = min(FEED_STATE_FACTOR.get(x.state, 0.5), clamp01(x.reported))
    p_gap = clamp01(x.gap_rate / GAP_RATE_LIMIT)
    p_err = clamp01(x.error_rate / FEED_ERR_RATE_LIMIT)
    return base * clamp01(1.0 - 0.5 * p_gap - 0.2 * p_err - 0.3 * clamp01(x.p_lat))


def blend(scores: Sequence[float]) -> float | None:
    """½·mean + ½·min: the breadth of the fleet and its weakest member."""
    if not scores:
        return None
    return 0.5 * (sum(scores) / len(scores)) + 0.5 * min(scores)


def system_health(
    services: Sequence[float], feeds: Sequence[float], latency_penalties: Sequence[float]
) -> float:
    s = blend(services)
    f = blend(feeds)
    lam = 1.0 - max(latency_penalties, default=0.0)
    if s is None:
        s = 1.0 if f is None else f
    if f is None:
        return clamp01((0.5 * s + 0.2 * lam) / 0.7)
    return clamp01(0.5 * s + 0.3 * f + 0.2 * lam)


class Availability:
    """Fraction of observed time a component was up, over the last `window` seconds.

    `mark(now, up)` with up = True, False, or None (not counted: e.g. a feed an operator stopped).
    The state holds from one mark to the next; time before the first mark is not observed."""

    __slots__ = ("_marks", "window")

    def __init__(self, window: float) -> None:
        self.window = window
        self._marks: deque[tuple[float, bool | None]] = deque()

    def mark(self, now: float, up: bool | None) -> None:
        if self._marks and self._marks[-1][1] == up:
            return
        self._marks.append((now, up))
        # Keep one mark at or before the window start: it says what state the window began in.
        while len(self._marks) >= 2 and self._marks[1][0] <= now - self.window:
            self._marks.popleft()

    def ratio(self, now: float) -> float | None:
        """Up time ÷ observed time within the window; None if nothing was observed."""
        start = now - self.window
        up_time = observed = 0.0
        marks = list(self._marks)
        for i, (t, state) in enumerate(marks):
            end = marks[i + 1][0] if i + 1 < len(marks) else now
            lo = max(t, start)
            if end <= lo or state is None:
                continue
            observed += end - lo
            if state:
                up_time += end - lo
        if observed <= 0:
            return None if not marks or marks[-1][1] is None else (1.0 if marks[-1][1] else 0.0)
        return up_time / observed
