"""Prometheus exposition of a service's stats: one source of truth, the heartbeat stats dict.

Every numeric stat `foo_bar` becomes `nexus_foo_bar{service, instance}`; stats ending in `_total` are
exposed as counters, the rest as gauges.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

_INVALID = re.compile(r"[^a-zA-Z0-9_]")


def metric_name(stat: str) -> str:
    return "nexus_" + _INVALID.sub("_", stat)


class StatsCollector(Collector):
    """Collects `stats()` at scrape time."""

    def __init__(self, stats: Callable[[], dict[str, float]], labels: dict[str, str]) -> None:
        self._stats = stats
        self._labels = labels

    def collect(self) -> Iterator[Metric]:
        names, values = list(self._labels), list(self._labels.values())
        for key, value in sorted(self._stats().items()):
            family: CounterMetricFamily | GaugeMetricFamily
            if key.endswith("_total"):
                family = CounterMetricFamily(metric_name(key[: -len("_total")]), key, labels=names)
            else:
                family = GaugeMetricFamily(metric_name(key), key, labels=names)
            family.add_metric(values, float(value))
            yield family
