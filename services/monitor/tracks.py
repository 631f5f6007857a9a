"""What the monitor remembers about one service instance and one feed (no I/O, no alert decisions)."""

from __future__ import annotations

import math
import statistics
from collections import deque
from typing import Any

from monitor.counters import CounterRate
from monitor.forecast import Forecaster
from monitor.health import Availability
from monitor.hysteresis import EventLatch, Threshold
from monitor.settings import MonitorSettings
from nexus.messages import Heartbeat

QUEUE_DEPTH = "_queue_depth"
QUEUE_LIMIT = "_queue_limit"
RATE_SHOW = 5.0
"""Seconds over which rates shown on the dashboard are averaged."""
RATE_HEALTH = 30.0
"""Seconds over which error and drop rates feed the health score."""
FEED_COUNTERS = (
    "msgs_total",
    "gaps_total",
    "errors_total",
    "dropped_total",
    "reconnects_total",
    "failovers_total",
)


def number(value: Any, default: float = 0.0) -> float:
    """A float from a loosely typed details field (bad or missing -> default)."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return default


class QueueTrack:
    """One `<name>_queue_depth` gauge of a service instance and its forecast."""

    def __init__(self, name: str, window: float, min_points: int, horizon: float, clear_for: float) -> None:
        self.name = name
        self.depth = 0.0
        self.limit: float | None = None
        self.forecaster = Forecaster(window, min_points)
        # Low time-to-limit is bad: raise at <= horizon, clear once it is >= 1.5 x horizon for a while.
        self.latch = Threshold(horizon, 1.5 * horizon, clear_for=clear_for, above=False)
        self.eta = math.inf


class ServiceTrack:
    def __init__(self, hb: Heartbeat, now: float, settings: MonitorSettings) -> None:
        self.service = hb.service
        self.instance = hb.instance
        self.key = f"{hb.service}.{hb.instance}"
        self.settings = settings
        self.first_rx = now
        self.last_rx = now
        self.pid = 0
        self.started = 0
        self.state = "starting"
        self.http_url = ""
        self.seq = 0
        self.last_ts = 0
        self.interval = settings.heartbeat_interval
        self._intervals: deque[float] = deque(maxlen=5)
        self.stats: dict[str, float] = {}
        self.details: dict[str, Any] = {}
        self.counters: dict[str, CounterRate] = {}
        self.queues: dict[str, QueueTrack] = {}
        self.availability = Availability(settings.monitor_window)
        self.health_latch = Threshold(
            settings.monitor_health_low,
            settings.monitor_health_ok,
            raise_for=settings.monitor_health_hold,
            clear_for=settings.monitor_health_hold,
            above=False,
        )
        self.slow_latch = EventLatch(settings.monitor_event_hold)
        self.gap_latch = EventLatch(settings.monitor_event_hold)
        self.health = 1.0
        self.down = False
        self.stopped_at: float | None = None

    @property
    def down_after(self) -> float:
        """No heartbeat this long means down: the setting, but never less than 2 heartbeat intervals."""
        return max(self.settings.monitor_down_after, 2.0 * self.interval)

    def age(self, now: float) -> float:
        return now - self.last_rx

    def is_down(self, now: float) -> bool:
        return self.state == "stopped" or self.age(now) >= self.down_after

    def status(self, now: float) -> str:
        if self.state == "stopped":
            return "stopped"
        return "down" if self.age(now) >= self.down_after else "up"

    def ingest(self, hb: Heartbeat, now: float) -> dict[str, float]:
        """Take a heartbeat; returns the increase of each watched counter since the previous one."""
        restarted = bool(self.pid) and hb.pid != self.pid
        if restarted or (hb.pid == self.pid and hb.seq < self.seq):
            for counter in self.counters.values():
                counter.reset()
            for queue in self.queues.values():
                queue.forecaster.reset()
        self._learn_interval(hb, restarted)
        # A process whose first heartbeat we see counted from zero; one that ran before we started did not.
        from_zero = restarted or (self.pid == 0 and hb.seq <= 1)
        self.pid, self.started, self.state = hb.pid, hb.started, hb.state
        self.http_url, self.seq, self.last_ts = hb.http_url, hb.seq, hb.ts
        self.last_rx = now
        self.stats = dict(hb.stats)
        self.details = dict(hb.details)
        self.stopped_at = now if hb.state == "stopped" else None
        return self._count(now, from_zero)

    def _learn_interval(self, hb: Heartbeat, restarted: bool) -> None:
        """The instance's heartbeat interval: the median of its last 5 measured intervals. Before two
        heartbeats were seen, (ts - started) / (seq - 1) of a process that has sent a few (an overestimate
        by its start-up time, the safe side), else the monitor's own interval (`nexus up` gives every
        service the same)."""
        if self.last_ts and hb.seq > self.seq and hb.ts > self.last_ts and not restarted:
            self._intervals.append((hb.ts - self.last_ts) / 1e9 / (hb.seq - self.seq))
            self.interval = statistics.median(self._intervals)
        elif not self._intervals and hb.seq >= 3 and hb.ts > hb.started:
            self.interval = (hb.ts - hb.started) / 1e9 / (hb.seq - 1)

    def _count(self, now: float, from_zero: bool) -> dict[str, float]:
        stats = self.stats
        sums = {
            "errors": sum(v for k, v in stats.items() if k.endswith("errors_total")),
            "drops": sum(v for k, v in stats.items() if k.endswith("dropped_total"))
            + stats.get("bus_slow_consumer_total", 0.0),
            "slow": stats.get("bus_slow_consumer_total", 0.0),
            "in": stats.get("bus_received_total", 0.0),
            "out": stats.get("bus_published_total", 0.0),
            "cpu": stats.get("cpu_seconds_total", 0.0),
            "gaps": stats.get("md_gaps_total", 0.0),
        }
        deltas = {}
        for name, value in sums.items():
            counter = self.counters.get(name)
            if counter is None:
                counter = self.counters[name] = CounterRate(keep=max(RATE_HEALTH, RATE_SHOW) + 5)
            deltas[name] = counter.add(now, value, from_zero=from_zero)
        return deltas

    def rate(self, name: str, now: float, over: float = RATE_SHOW) -> float:
        counter = self.counters.get(name)
        return counter.rate(now, over) if counter is not None else 0.0

    def queue_gauges(self, default_limit: float) -> dict[str, tuple[float, float | None]]:
        """{queue name: (depth, limit or None)} from the `<name>_queue_depth` / `_queue_limit` stats."""
        out: dict[str, tuple[float, float | None]] = {}
        for key, depth in self.stats.items():
            if key.endswith(QUEUE_DEPTH):
                name = key[: -len(QUEUE_DEPTH)]
                limit = self.stats.get(name + QUEUE_LIMIT, default_limit)
                out[name] = (depth, limit if limit > 0 else None)
        return out


class FeedTrack:
    def __init__(self, feed: str, now: float, settings: MonitorSettings) -> None:
        self.feed = feed
        self.venue = ""
        self.state = "unknown"
        self.reported = 1.0
        self.active = ""
        self.reason = ""
        self.source = ""
        self.first_rx = now
        self.last_rx = now
        self.last_sender_ts = 0
        self.counters = {name: CounterRate(keep=max(RATE_HEALTH, RATE_SHOW) + 5) for name in FEED_COUNTERS}
        self.availability = Availability(settings.monitor_window)
        self.health: float | None = None
        # value 1 = down, 0 = live, 0.5 = on its way (starting/connecting): the band keeps the state.
        self.down_latch = Threshold(1.0, 0.0, raise_for=settings.monitor_feed_down_hold, clear_for=1.0)
        self.health_latch = Threshold(
            settings.monitor_health_low,
            settings.monitor_health_ok,
            raise_for=settings.monitor_health_hold,
            clear_for=settings.monitor_health_hold,
            above=False,
        )
        self.failover_latch = EventLatch(settings.monitor_event_hold)
        self.gap_latch = EventLatch(settings.monitor_event_hold)

    def rate(self, name: str, now: float, over: float = RATE_SHOW) -> float:
        return self.counters[name].rate(now, over)
