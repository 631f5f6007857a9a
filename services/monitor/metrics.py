"""Prometheus exposition of the whole system through the monitor's /metrics (one scrape target).

Beside the monitor's own stats (`nexus_<stat>{service="monitor"}`, from the runtime), it serves:
    nexus_system_<stat>{service, instance}      every live instance's heartbeat stats (counters for
                                                `*_total`, gauges for the rest)
    nexus_monitor_*                              health, availability, alerts, queues and forecasts, feeds,
                                                latency histograms, throughput, P&L and target weights
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from monitor.latency import cumulative_buckets
from monitor.model import MonitorModel

_INVALID = re.compile(r"[^a-zA-Z0-9_]")
BUCKETS_S = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
SVC = ["service", "instance"]


def _name(stat: str) -> str:
    return _INVALID.sub("_", stat)


class SystemCollector(Collector):
    """Collects the model's state at scrape time."""

    def __init__(self, model: MonitorModel, clock: Callable[[], float]) -> None:
        self.model = model
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        now = self.clock()
        yield from self._system_stats(now)
        yield from self._services(now)
        yield from self._feeds(now)
        yield from self._alerts()
        yield from self._latency(now)
        yield from self._business(now)

    def _system_stats(self, now: float) -> Iterator[Metric]:
        families: dict[str, CounterMetricFamily | GaugeMetricFamily] = {}
        for track in self.model.services.values():
            if track.status(now) != "up":
                continue
            labels = [track.service, track.instance]
            for stat, value in sorted(track.stats.items()):
                if not isinstance(value, int | float) or not math.isfinite(value):
                    continue
                counter = stat.endswith("_total")
                name = "nexus_system_" + _name(stat[: -len("_total")] if counter else stat)
                family = families.get(name)
                if family is None:
                    family = families[name] = (
                        CounterMetricFamily(name, f"{stat} of every live instance", labels=SVC)
                        if counter
                        else GaugeMetricFamily(name, f"{stat} of every live instance", labels=SVC)
                    )
                elif isinstance(family, CounterMetricFamily) != counter:
                    continue  # a counter in one service, a gauge in another: the first kind wins
                family.add_metric(labels, float(value))
        yield from families.values()

    def _services(self, now: float) -> Iterator[Metric]:
        m = self.model
        system = GaugeMetricFamily("nexus_monitor_system_health", "health of the whole system, 0..1")
        system.add_metric([], m.system_health)
        yield system
        up = GaugeMetricFamily("nexus_monitor_service_up", "1 while the instance heartbeats", labels=SVC)
        health = GaugeMetricFamily("nexus_monitor_service_health", "health score 0..1", labels=SVC)
        avail = GaugeMetricFamily(
            "nexus_monitor_service_availability_ratio", "up time / observed time over the window", labels=SVC
        )
        age = GaugeMetricFamily(
            "nexus_monitor_service_heartbeat_age_seconds", "seconds since the last heartbeat", labels=SVC
        )
        qlabels = [*SVC, "queue"]
        depth = GaugeMetricFamily("nexus_monitor_queue_depth", "queue depth", labels=qlabels)
        limit = GaugeMetricFamily("nexus_monitor_queue_limit", "queue limit", labels=qlabels)
        eta = GaugeMetricFamily(
            "nexus_monitor_queue_limit_eta_seconds", "forecast seconds until the queue limit", labels=qlabels
        )
        for t in m.services.values():
            labels = [t.service, t.instance]
            up.add_metric(labels, 1.0 if t.status(now) == "up" else 0.0)
            health.add_metric(labels, t.health)
            ratio = t.availability.ratio(now)
            if ratio is not None:
                avail.add_metric(labels, ratio)
            age.add_metric(labels, t.age(now))
            for q in t.queues.values():
                depth.add_metric([*labels, q.name], q.depth)
                if q.limit is not None:
                    limit.add_metric([*labels, q.name], q.limit)
                if math.isfinite(q.eta):
                    eta.add_metric([*labels, q.name], q.eta)
        yield from (up, health, avail, age, depth, limit, eta)

    def _feeds(self, now: float) -> Iterator[Metric]:
        labels = ["feed", "venue"]
        health = GaugeMetricFamily("nexus_monitor_feed_health", "feed health score 0..1", labels=labels)
        up = GaugeMetricFamily("nexus_monitor_feed_up", "1 while the feed is live", labels=labels)
        avail = GaugeMetricFamily(
            "nexus_monitor_feed_availability_ratio",
            "live time / observed time over the window",
            labels=labels,
        )
        msgs = CounterMetricFamily("nexus_monitor_feed_messages", "messages the feed received", labels=labels)
        gaps = CounterMetricFamily("nexus_monitor_feed_gaps", "sequence gaps of the feed", labels=labels)
        failovers = CounterMetricFamily(
            "nexus_monitor_feed_failovers", "failovers of the feed", labels=labels
        )
        for f in self.model.feeds.values():
            lv = [f.feed, f.venue]
            if f.health is not None:
                health.add_metric(lv, f.health)
            up.add_metric(lv, 1.0 if f.state == "live" else 0.0)
            ratio = f.availability.ratio(now)
            if ratio is not None:
                avail.add_metric(lv, ratio)
            msgs.add_metric(lv, f.counters["msgs_total"].value)
            gaps.add_metric(lv, f.counters["gaps_total"].value)
            failovers.add_metric(lv, f.counters["failovers_total"].value)
        yield from (health, up, avail, msgs, gaps, failovers)

    def _alerts(self) -> Iterator[Metric]:
        book = self.model.alerts
        active = GaugeMetricFamily(
            "nexus_monitor_alert_active", "1 per active alert", labels=["name", "severity", "source"]
        )
        for a in book.active.values():
            active.add_metric([a.name, a.severity, a.source], 1.0)
        raised = CounterMetricFamily("nexus_monitor_alerts_raised", "alerts raised since start")
        raised.add_metric([], book.raised_total)
        cleared = CounterMetricFamily("nexus_monitor_alerts_cleared", "alerts cleared since start")
        cleared.add_metric([], book.cleared_total)
        yield from (active, raised, cleared)

    def _latency(self, now: float) -> Iterator[Metric]:
        m = self.model
        hist = HistogramMetricFamily(
            "nexus_monitor_latency_seconds",
            "latency per stage and venue since start (HDR histogram, 1% precision)",
            labels=["stage", "scope"],
        )
        window = GaugeMetricFamily(
            "nexus_monitor_latency_window_seconds",
            "latency percentiles over the rolling SLO window",
            labels=["stage", "scope", "quantile"],
        )
        bounds_us = [round(b * 1e6) for b in BUCKETS_S]
        for stage, scope in m.latency.entries():
            h = m.latency.total(stage, scope)
            n = h.get_total_count()
            if not n:
                continue
            buckets = [(_le(le_us), count) for le_us, count in cumulative_buckets(h, bounds_us)]
            buckets.append(("+Inf", n))
            hist.add_metric([stage, scope], buckets, sum_value=m.latency.sum_us(stage, scope) / 1e6)
        for (stage, scope), pct in m.lat_window.items():
            if pct.count:
                for q, v in (("0.5", pct.p50), ("0.95", pct.p95), ("0.99", pct.p99), ("1", pct.max)):
                    window.add_metric([stage, scope, q], v / 1000)
        yield from (hist, window)

    def _business(self, now: float) -> Iterator[Metric]:
        m = self.model
        md = CounterMetricFamily("nexus_monitor_md_messages", "market-data messages seen", labels=["venue"])
        for venue, n in m.md_by_venue.items():
            md.add_metric([venue], n)
        execs = CounterMetricFamily("nexus_monitor_exec_reports", "execution reports seen")
        execs.add_metric([], m.exec_total)
        rejects = CounterMetricFamily("nexus_monitor_rejects", "rejected orders seen")
        rejects.add_metric([], m.rejects_total)
        pnl = GaugeMetricFamily("nexus_monitor_account_pnl", "account P&L", labels=["account", "kind"])
        gross = GaugeMetricFamily(
            "nexus_monitor_account_gross_exposure", "gross exposure", labels=["account"]
        )
        for account, (ar, _) in m.accounts.items():
            pnl.add_metric([account, "realised"], ar.realised_pnl)
            pnl.add_metric([account, "unrealised"], ar.unrealised_pnl)
            gross.add_metric([account], ar.gross_exposure)
        weight = GaugeMetricFamily(
            "nexus_monitor_portfolio_weight", "optimizer target weight", labels=["portfolio", "symbol"]
        )
        for name, (pt, _) in m.portfolios.items():
            for symbol, w in zip(pt.symbols, pt.weights, strict=False):
                weight.add_metric([name, symbol], w)
        yield from (md, execs, rejects, pnl, gross, weight)


def _le(us: int) -> str:
    return repr(us / 1e6)
