"""Latency histograms (HDR) from the timestamps that messages carry.

Stages (all in microseconds inside, reported in milliseconds):
    md.venue_to_recv      ts_recv - ts_event       venue clock -> adapter receive (clock skew possible)
    md.recv_to_pub        ts_pub - ts_recv         inside the feed handler
    md.pub_to_consume     monitor receive - ts_pub  across NATS to a consumer (the monitor)
    md.recv_to_consume    monitor receive - ts_recv receive -> publish -> consume, end to end
    order.submit_to_ack   accepted.ts_event - ts_cmd        client send -> engine accepted
    order.ack_to_fill     fill.ts_event - accepted.ts_event (aggressing orders only)
    order.submit_to_fill  fill.ts_event - ts_cmd            (aggressing orders only)

Each (stage, scope) key (scope = venue) has an HdrHistogram per `slot` seconds; the last `window`
seconds of slots give the rolling percentiles that SLOs and health use, and closed slots are folded
into a cumulative histogram (totals since start). Values are clamped to [0, 60 s].
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable

import msgspec
import numpy as np
from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 60_000_000
SIGNIFICANT = 2
"""2 significant digits: every recorded value is within 1% of the value reported."""

MD_STAGES = ("md.venue_to_recv", "md.recv_to_pub", "md.pub_to_consume", "md.recv_to_consume")
ORDER_STAGES = ("order.submit_to_ack", "order.ack_to_fill", "order.submit_to_fill")
STAGES = MD_STAGES + ORDER_STAGES
ALL = "all"
"""Scope of the aggregate over every venue."""


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT)


class Percentiles(msgspec.Struct, frozen=True, kw_only=True):
    """Percentiles in milliseconds of `count` samples."""

    count: int
    p50: float
    p95: float
    p99: float
    max: float

    @classmethod
    def of(cls, h: HdrHistogram) -> Percentiles:
        n = h.get_total_count()
        if n == 0:
            return cls(count=0, p50=0.0, p95=0.0, p99=0.0, max=0.0)
        pct = h.get_percentile_to_value_dict([50, 95, 99])
        return cls(
            count=n,
            p50=pct[50] / 1000,
            p95=pct[95] / 1000,
            p99=pct[99] / 1000,
            max=h.get_max_value() / 1000,
        )


class RollingHistogram:
    """An HDR histogram per `slot` seconds over a rolling `window`, plus the cumulative total."""

    __slots__ = ("_closed", "_current", "_slot_start", "_slots", "slot", "sum_us", "window")

    def __init__(self, window: float, slot: float) -> None:
        self.window = window
        self.slot = slot
        self._slots: deque[tuple[float, HdrHistogram]] = deque()
        self._current = new_histogram()
        self._slot_start = -math.inf
        self._closed = new_histogram()
        self.sum_us = 0
        """Sum of every value recorded (for a Prometheus histogram's _sum; HDR's own mean is slow)."""

    def record(self, now: float, value_us: int) -> None:
        if now - self._slot_start >= self.slot:
            self._roll(now)
        value = min(max(value_us, 0), HIGHEST_US)
        self._current.record_value(value)
        self.sum_us += value

    def _roll(self, now: float) -> None:
        if self._current.get_total_count():
            self._slots.append((self._slot_start, self._current))
            self._closed.add(self._current)
            self._current = new_histogram()
        self._slot_start = now
        self._expire(now)

    def _expire(self, now: float) -> None:
        while self._slots and self._slots[0][0] < now - self.window:
            self._slots.popleft()

    def recent(self, now: float) -> HdrHistogram:
        """A merged histogram of the slots that started within the window (the current one included)."""
        self._expire(now)
        merged = new_histogram()
        for _, h in self._slots:
            merged.add(h)
        if self._slot_start >= now - self.window:
            merged.add(self._current)
        return merged

    def total(self) -> HdrHistogram:
        merged = new_histogram()
        merged.add(self._closed)
        merged.add(self._current)
        return merged


class LatencyBook:
    """Every (stage, scope) histogram the monitor keeps."""

    def __init__(self, window: float, slot: float = 5.0) -> None:
        self.window = window
        self.slot = slot
        self._hists: dict[tuple[str, str], RollingHistogram] = {}

    def record(self, stage: str, scope: str, now: float, value_ns: int) -> None:
        key = (stage, scope)
        hist = self._hists.get(key)
        if hist is None:
            hist = self._hists[key] = RollingHistogram(self.window, self.slot)
        hist.record(now, value_ns // 1000)

    def entries(self) -> list[tuple[str, str]]:
        return sorted(self._hists)

    def stages(self) -> list[str]:
        return sorted({stage for stage, _ in self._hists})

    def recent(self, stage: str, scope: str, now: float) -> HdrHistogram:
        if scope == ALL:
            return _merge(h.recent(now) for (s, _), h in self._hists.items() if s == stage)
        hist = self._hists.get((stage, scope))
        return hist.recent(now) if hist is not None else new_histogram()

    def sum_us(self, stage: str, scope: str) -> int:
        """Sum of every value recorded for (stage, scope) since start, in microseconds."""
        if scope == ALL:
            return sum(h.sum_us for (s, _), h in self._hists.items() if s == stage)
        hist = self._hists.get((stage, scope))
        return hist.sum_us if hist is not None else 0

    def total(self, stage: str, scope: str) -> HdrHistogram:
        if scope == ALL:
            return _merge(h.total() for (s, _), h in self._hists.items() if s == stage)
        hist = self._hists.get((stage, scope))
        return hist.total() if hist is not None else new_histogram()


def _merge(hists: Iterable[HdrHistogram]) -> HdrHistogram:
    merged = new_histogram()
    for h in hists:
        merged.add(h)
    return merged


def cumulative_buckets(h: HdrHistogram, bounds_us: Iterable[int]) -> list[tuple[int, int]]:
    """(upper bound, count of values <= bound) for Prometheus histogram buckets.

    Reads the counts array directly (hdrh's Python iterators take milliseconds per histogram); a value
    is placed by the lowest value of its HDR bucket, which is within the histogram's 1% precision."""
    counts = np.ctypeslib.as_array(h.counts)[: h.counts_len]
    cum = np.cumsum(counts)
    values = _index_values(h)
    out = []
    for bound in sorted(bounds_us):
        i = int(np.searchsorted(values, bound, side="right")) - 1
        out.append((bound, int(cum[i]) if i >= 0 else 0))
    return out


_index_value_cache: dict[tuple[int, int, int], np.ndarray] = {}


def _index_values(h: HdrHistogram) -> np.ndarray:
    key = (h.lowest_trackable_value, h.highest_trackable_value, h.significant_figures)
    values = _index_value_cache.get(key)
    if values is None:
        values = _index_value_cache[key] = np.array(
            [h.get_value_from_index(i) for i in range(h.counts_len)], dtype=np.int64
        )
    return values
