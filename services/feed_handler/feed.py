"""One feed: an adapter plus everything around it.

    starting -> connecting -> live <-> stale -> disconnected -> backoff -> connecting ...
                    |  (N failed attempts)                                   |
                    +-------------------> circuit_open --(cool-down)--> connecting (half-open trial)
    a finite source that ends -> stopped; a failure no retry can fix -> failed; stop() -> stopped

- Reconnection: after a session ends the feed waits `Backoff.next()` (full jitter: uniform in
  [0, min(cap, base * 2^attempt)]) and tries again. The backoff resets once a session has been live for
  STABLE_AFTER seconds.
- Circuit breaker per endpoint: a connection attempt that fails, or a session that ends before it was
  stable, is a failure; `breaker_failures` in a row open the breaker; after `breaker_reset` seconds one
  trial goes through (half-open); a stable session closes it.
- Idle watchdog: silent for `stale_after` -> `stale` (health falls); silent for `idle_timeout` -> the
  session is declared dead and cancelled, and the feed reconnects.
- Every state change is logged (`feed.state`) and published as FeedStatus on md.p2.status.<feed>; the
  status is also published every `status_interval` seconds with the current health.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from feed_handler.adapters.base import Adapter, AdapterFailed
from feed_handler.config import FeedConfig
from feed_handler.counters import FeedCounters
from feed_handler.errors import BadInput
from feed_handler.health import HealthParts, HealthTracker
from feed_handler.normalised import MarketDataMsg, Quote, Trade
from feed_handler.outbox import Outbox
from feed_handler.protocols.base import sample
from feed_handler.state import FeedState
from nexus import subjects
from nexus.logs import get_logger
from nexus.messages import FeedStatus, now_ns
from nexus.resilience import Backoff, BreakerState, CircuitBreaker

STABLE_AFTER = 1.0
"""Seconds a session must stay live before it counts as a success (closes the breaker, resets backoff)."""
TICK = 0.1
"""Watchdog period (seconds)."""
LOG_EVERY = 1.0
"""At most one log line per kind (bad input, gap, resync) per feed per second; the rest are counted."""

Route = Callable[[MarketDataMsg], None]
AdapterFactory = Callable[[FeedConfig, "Feed"], Adapter[Any]]


class _Throttle:
    __slots__ = ("last", "suppressed")

    def __init__(self) -> None:
        self.last = -LOG_EVERY
        self.suppressed = 0

    def ready(self, now: float) -> bool:
        if now - self.last >= LOG_EVERY:
            self.last = now
            return True
        self.suppressed += 1
        return False

    def take(self) -> int:
        n, self.suppressed = self.suppressed, 0
        return n


class Feed:
    """A running (or stopped) feed; implements the FeedContext adapters talk to."""

    def __init__(
        self,
        config: FeedConfig,
        outbox: Outbox,
        make_adapter: AdapterFactory,
        *,
        status_interval: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.outbox = outbox
        self.status_interval = status_interval
        self.clock = clock
        self.counters = FeedCounters()
        self.health_tracker = HealthTracker(config.stale_after, config.idle_timeout)
        self.backoff = Backoff(base=config.backoff_base, cap=config.backoff_cap)
        self.breaker = CircuitBreaker(
            failure_threshold=config.breaker_failures,
            reset_timeout=config.breaker_reset,
            clock=clock,
            on_change=self._breaker_changed,
        )
        self.backoff_history: deque[tuple[int, float, float]] = deque(maxlen=32)
        """(attempt, delay drawn, ceiling of that attempt) of the last backoffs."""
        self.log = get_logger("feed_handler.feed").bind(feed=config.name)
        self.state = FeedState.STOPPED
        self.reason = "not started"
        self.health = 0.0
        self.group = ""
        """Name of the failover group this feed is a member of ("" when published on its own)."""
        self.listeners: list[Callable[[Feed], None]] = []
        self.route: Route = self._route_direct
        self.adapter = make_adapter(config, self)
        self.last_msg = 0.0
        self.live_since = 0.0
        self.started_at = 0.0
        self.live_since_start = False
        """Whether the feed has been live at least once since its last start()."""
        self._stable = False
        self._was_live = False
        self._dead_reason = ""
        self._session: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._last_sample = 0.0
        self._last_status = 0.0
        self._throttles = {"bad_input": _Throttle(), "gap": _Throttle(), "resync": _Throttle()}

    # -- identity -------------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def venue(self) -> str:
        return self.config.venue

    @property
    def running(self) -> bool:
        """The reconnect loop runs (false once stopped, failed, or a finite source has ended)."""
        return bool(self._tasks) and not self._tasks[0].done()

    @property
    def flowing(self) -> bool:
        return self.state.flowing

    @property
    def stable(self) -> bool:
        """The current session has been live for STABLE_AFTER seconds (it counted as a success)."""
        return self._stable

    # -- lifecycle ------------------------------------------------------------------------------------

    def start(self) -> None:
        if self.running:
            return
        self.backoff.reset()
        self.started_at = self.clock()
        self.live_since_start = False
        self._set(FeedState.STARTING, "started")
        run = asyncio.create_task(self._run(), name=f"feed-{self.name}")
        watch = asyncio.create_task(self._watch(), name=f"watch-{self.name}")
        run.add_done_callback(lambda _: watch.cancel())  # a finished or failed feed needs no watchdog
        self._tasks = [run, watch]

    async def stop(self, reason: str = "stopped") -> None:
        tasks, self._tasks = self._tasks, []
        if self._session is not None:
            self._session.cancel()
            tasks.append(self._session)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._session = None
        self._set(FeedState.STOPPED, reason)

    async def _run(self) -> None:
        while True:
            if not self.breaker.allow():
                remaining = self.breaker.remaining()
                self._set(
                    FeedState.CIRCUIT_OPEN,
                    f"{self.breaker.failures} failures in a row; half-open in {remaining:.1f}s",
                )
                await asyncio.sleep(max(remaining, 0.01))
                continue
            trial = self.breaker.state is BreakerState.HALF_OPEN
            self._set(
                FeedState.CONNECTING, "half-open trial" if trial else f"attempt {self.backoff.attempt + 1}"
            )
            outcome, reason = await self._one_session()
            if outcome == "finished":
                self._set(FeedState.STOPPED, reason)
                return
            if outcome == "failed":
                self._set(FeedState.FAILED, reason)
                return
            if self._stable:
                self.counters.reconnects_total += 1
            else:
                self.counters.connect_failures_total += 1
                self.breaker.record_failure()
            self._set(FeedState.DISCONNECTED, reason)
            if self.breaker.state is BreakerState.OPEN:
                continue
            ceiling = self.backoff.ceiling()
            attempt = self.backoff.attempt
            delay = self.backoff.next()
            self.backoff_history.append((attempt, delay, ceiling))
            self._set(FeedState.BACKOFF, f"{reason}; retry in {delay:.3f}s (ceiling {ceiling:.3f}s)")
            await asyncio.sleep(delay)

    async def _one_session(self) -> tuple[str, str]:
        self._stable = False
        self._was_live = False
        self._dead_reason = ""
        self._session = task = asyncio.create_task(self.adapter.run(), name=f"session-{self.name}")
        try:
            await asyncio.wait({task})
        finally:
            if not task.done():  # the feed itself is being stopped
                task.cancel()
        self._session = None
        if task.cancelled():
            return "lost", self._dead_reason or "session cancelled"
        exc = task.exception()
        if exc is None:
            return "finished", "end of data"
        if isinstance(exc, AdapterFailed):
            self.log.error("feed.failed", error=str(exc))
            return "failed", str(exc)
        return "lost", _describe(exc)

    # -- watchdog, health, periodic status -------------------------------------------------------------

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            self.check(self.clock())

    def check(self, now: float) -> None:
        """One watchdog tick (also called by tests with their own clock)."""
        flowing = self.state.flowing
        if now - self._last_sample >= 1.0:
            self._last_sample = now
            c = self.counters
            self.health_tracker.sample(
                now, c.msgs_total, c.errors_total, c.gaps_total, c.reconnects_total, flowing
            )
        if flowing:
            idle = now - self.last_msg
            if not self._stable and now - self.live_since >= STABLE_AFTER:
                self._stable = True
                self.breaker.record_success()
                self.backoff.reset()
            if idle > self.config.idle_timeout and self._session is not None and not self._session.done():
                self._dead_reason = f"no data for {idle:.1f}s (idle_timeout {self.config.idle_timeout}s)"
                self.log.warning("feed.dead", idle=round(idle, 2))
                self._session.cancel()
            elif self.state is FeedState.LIVE and idle > self.config.stale_after:
                self._set(FeedState.STALE, f"no data for {idle:.1f}s")
        self.health = self.health_parts(now).score
        if now - self._last_status >= self.status_interval:
            self.publish_status()

    def health_parts(self, now: float | None = None) -> HealthParts:
        now = self.clock() if now is None else now
        return self.health_tracker.parts(now, now - self.last_msg, self.state.flowing)

    # -- state ----------------------------------------------------------------------------------------

    def _set(self, state: FeedState, reason: str) -> None:
        if state is self.state and reason == self.reason:
            return
        old, self.state, self.reason = self.state, state, reason
        if old is not state:
            if state.flowing or old.flowing:
                self.health = self.health_parts().score
            log = (
                self.log.warning
                if state in (FeedState.DISCONNECTED, FeedState.CIRCUIT_OPEN)
                else self.log.info
            )
            log("feed.state", old=str(old), new=str(state), reason=reason, health=self.health)
            self.publish_status()
            for listener in self.listeners:
                listener(self)

    def _breaker_changed(self, old: BreakerState, new: BreakerState) -> None:
        self.log.warning("feed.breaker", old=str(old), new=str(new), failures=self.breaker.failures)

    def status(self) -> FeedStatus:
        return FeedStatus(
            feed=self.name,
            venue=self.venue,
            state=str(self.state),
            health=self.health,
            reason=self.reason,
            active="" if self.group else self.name,
            ts=now_ns(),
        )

    def publish_status(self) -> None:
        self._last_status = self.clock()
        self.outbox.put_status(subjects.feed_status(self.name), self.status())

    # -- FeedContext: what adapters call ----------------------------------------------------------------

    def live(self, detail: str = "") -> None:
        now = self.clock()
        self.last_msg = now
        self.live_since = now
        self._was_live = True
        self.live_since_start = True
        self._set(FeedState.LIVE, detail or "subscribed")

    def emit(self, msg: MarketDataMsg) -> None:
        self.counters.msgs_total += 1
        self.last_msg = self.clock()
        if self.state is FeedState.STALE:
            self._set(FeedState.LIVE, "data again")
        self.route(msg)

    def touch(self) -> None:
        self.last_msg = self.clock()
        if self.state is FeedState.STALE:
            self._set(FeedState.LIVE, "data again")

    def bad_input(self, exc: BadInput, raw: bytes | str) -> None:
        self.counters.error(exc.reason)
        throttle = self._throttles["bad_input"]
        if throttle.ready(self.clock()):
            self.log.warning(
                "feed.bad_input",
                reason=exc.reason,
                detail=exc.detail[:200],
                sample=sample(raw),
                suppressed=throttle.take(),
                total=self.counters.errors_total,
            )

    def gap(self, symbol: str, detail: str) -> None:
        self.counters.gaps_total += 1
        throttle = self._throttles["gap"]
        if throttle.ready(self.clock()):
            self.log.warning("feed.gap", symbol=symbol, detail=detail, suppressed=throttle.take())

    def resync(self, symbol: str, reason: str) -> None:
        self.counters.resyncs_total += 1
        throttle = self._throttles["resync"]
        if throttle.ready(self.clock()):
            self.log.info("feed.resync", symbol=symbol, reason=reason, suppressed=throttle.take())

    @property
    def congested(self) -> bool:
        return self.outbox.congested

    @property
    def behind(self) -> bool:
        return self.outbox.behind

    async def wait_room(self) -> None:
        await self.outbox.wait_room()

    # -- routing --------------------------------------------------------------------------------------

    def _route_direct(self, msg: MarketDataMsg) -> None:
        """A feed on its own publishes under its own venue token."""
        outbox = self.outbox
        kind = type(msg)
        if kind is Trade:
            self.counters.trades_total += 1
            outbox.put_trade(subjects.trade(msg.venue, msg.symbol), msg, self.counters)  # type: ignore[arg-type]
        elif kind is Quote:
            outbox.put(subjects.quote(msg.venue, msg.symbol), msg, self.counters)  # type: ignore[arg-type]
        else:
            outbox.put(subjects.book(msg.venue, msg.symbol), msg, self.counters)  # type: ignore[arg-type]

    # -- reporting ------------------------------------------------------------------------------------

    def details(self) -> dict[str, Any]:
        c = self.counters
        parts = self.health_parts()
        return {
            "kind": self.config.kind,
            "state": str(self.state),
            "reason": self.reason,
            "health": self.health,
            "health_parts": {
                "stale": round(parts.stale, 3),
                "rate": round(parts.rate, 3),
                "gaps": round(parts.gaps, 3),
                "errors": round(parts.errors, 3),
                "reconnects": round(parts.reconnects, 3),
            },
            "venue": self.venue,
            "active": "" if self.group else self.name,
            "group": self.group,
            "running": self.running,
            "breaker": str(self.breaker.state),
            "msgs_total": c.msgs_total,
            "published_total": c.published_total,
            "trades_total": c.trades_total,
            "errors_total": c.errors_total,
            "errors_by_reason": dict(c.errors_by_reason),
            "gaps_total": c.gaps_total,
            "resyncs_total": c.resyncs_total,
            "reconnects_total": c.reconnects_total,
            "connect_failures_total": c.connect_failures_total,
            "conflated_total": c.conflated_total,
            "dropped_total": c.dropped_total,
            "duplicates_total": c.duplicates_total,
            "failovers_total": c.failovers_total,
            "backoff_history": [
                {"attempt": a, "delay": round(d, 4), "ceiling": round(cl, 4)}
                for a, d, cl in self.backoff_history
            ],
            "adapter": self.adapter.stats(),
        }


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]
