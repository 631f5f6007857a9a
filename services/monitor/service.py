"""The monitor service: NATS in, alerts out, and the HTTP glue around the pure model.

Subscribes to every heartbeat (sys.hb.*.*), feed status (md.p2.status.*), execution report
(ord.exec.*.*), kill switch (risk.p0.kill), account risk (risk.state.*), portfolio target (pf.target.*)
and, for latency, all p0/p1 market data. Every `monitor_eval_interval` it ticks the model, publishes
alert transitions on sys.alert.<severity>, and once per series step pushes a snapshot to the dashboard.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec
from fastapi import FastAPI

from monitor import api
from monitor.metrics import SystemCollector
from monitor.model import MonitorModel, Stamps
from monitor.settings import MonitorSettings
from monitor.stream import EventStream
from nexus import messages, subjects
from nexus.bus import Bus
from nexus.messages import (
    AccountRisk,
    ExecReport,
    FeedStatus,
    Heartbeat,
    KillSwitch,
    PortfolioTarget,
    RiskAudit,
    now_ns,
)
from nexus.runtime import Service
from nexus.subjects import Tier

__all__ = ["Monitor", "MonitorSettings"]

_json = msgspec.json.Encoder()


class Monitor(Service[MonitorSettings]):
    """Health scores, alerts, latency histograms, Prometheus and the live dashboard."""

    name = "monitor"
    settings_cls = MonitorSettings

    def __init__(self, settings: MonitorSettings, bus: Bus) -> None:
        super().__init__(settings, bus)
        self.clock = time.monotonic
        self.model = MonitorModel(settings)
        self.stream = EventStream()
        self.registry.register(SystemCollector(self.model, self.clock))
        self.alerts_published_total = 0
        self.alert_publish_errors_total = 0
        self._streamed_sample = -1
        self.eval_errors_total = 0
        self._last_eval = self.clock()

    async def start(self) -> None:
        bus = self.bus
        await bus.subscribe(subjects.heartbeat("*", "*"), Heartbeat, self._on_heartbeat)
        await bus.subscribe(subjects.feed_status("*"), FeedStatus, self._on_feed_status)
        await bus.subscribe(subjects.exec_report("*", "*"), ExecReport, self._on_exec_report)
        await bus.subscribe(subjects.kill_switch(), KillSwitch, self._on_kill_switch)
        await bus.subscribe(subjects.risk_audit(), RiskAudit, self._on_risk_audit)
        await bus.subscribe(subjects.risk_state("*"), AccountRisk, self._on_account_risk)
        await bus.subscribe(subjects.portfolio_target("*"), PortfolioTarget, self._on_portfolio_target)
        if self.settings.monitor_md_latency:
            for tier in (Tier.P0, Tier.P1):
                await bus.subscribe(subjects.market_data(tier), Stamps, self._on_market_data)
        await bus.flush()
        self.spawn(self._evaluate(), name="monitor-evaluate")

    async def stop(self) -> None:
        self.stream.close()
        await super().stop()

    # -- handlers -----------------------------------------------------------------------------------

    async def _on_heartbeat(self, hb: Heartbeat) -> None:
        self.model.on_heartbeat(hb, self.clock())
        await self.publish_alerts()

    async def _on_feed_status(self, fs: FeedStatus) -> None:
        self.model.on_feed_status(fs, self.clock())
        await self.publish_alerts()

    async def _on_exec_report(self, er: ExecReport) -> None:
        self.model.on_exec_report(er, self.clock())
        if self.model.outbox:
            await self.publish_alerts()

    async def _on_kill_switch(self, ks: KillSwitch) -> None:
        self.model.on_kill_switch(ks, self.clock())
        await self.publish_alerts()

    async def _on_risk_audit(self, audit: RiskAudit) -> None:
        self.model.on_risk_audit(audit, self.clock())
        if self.model.outbox:
            await self.publish_alerts()

    async def _on_account_risk(self, ar: AccountRisk) -> None:
        self.model.on_account_risk(ar, self.clock())
        if self.model.outbox:
            await self.publish_alerts()

    async def _on_portfolio_target(self, pt: PortfolioTarget) -> None:
        self.model.on_portfolio_target(pt, self.clock())

    async def _on_market_data(self, stamps: Stamps) -> None:
        self.model.on_market_data(stamps, self.clock(), now_ns())

    # -- evaluation loop ----------------------------------------------------------------------------

    async def _evaluate(self) -> None:
        interval = self.settings.monitor_eval_interval
        while True:
            now = self.clock()
            try:
                self.model.tick(now)
                await self.publish_alerts()
                if self.model.samples != self._streamed_sample and self.stream.clients:
                    self._streamed_sample = self.model.samples
                    self.stream.send("snapshot", _json.encode(self.model.overview(now)))
            except Exception as exc:  # a bug in one rule must not stop every other rule
                self.eval_errors_total += 1
                if self.eval_errors_total == 1 or self.eval_errors_total % 100 == 0:
                    self.log.exception("monitor.eval_failed", error=repr(exc), total=self.eval_errors_total)
            self._last_eval = self.clock()
            await asyncio.sleep(interval)

    def ready(self) -> tuple[bool, str]:
        stalled = self.clock() - self._last_eval
        if stalled > max(2.0, 10 * self.settings.monitor_eval_interval):
            return False, f"rule evaluation has not run for {stalled:.1f}s"
        return True, ""

    async def publish_alerts(self) -> None:
        """Publish every alert transition the model decided on, and push each to the dashboard."""
        for alert in self.model.drain():
            self.log.info(
                f"alert.{alert.state}",
                alert=alert.name,
                severity=alert.severity,
                source=alert.source,
                text=alert.text,
            )
            self.stream.send("alert", messages.encode(alert))
            try:
                await self.bus.publish(alert)
                self.alerts_published_total += 1
            except Exception as exc:  # NATS down: the alert stays in the REST history and the log
                self.alert_publish_errors_total += 1
                self.log.warning("alert.publish_failed", alert=alert.name, error=repr(exc))

    # -- what the runner reports --------------------------------------------------------------------

    def stats(self) -> dict[str, float]:
        m = self.model
        return {
            "system_health": m.system_health,
            "services_known": len(m.services),
            "feeds_known": len(m.feeds),
            "alerts_active": len(m.alerts.active),
            "alerts_raised_total": m.alerts.raised_total,
            "alerts_cleared_total": m.alerts.cleared_total,
            "alerts_published_total": self.alerts_published_total,
            "alert_publish_errors_total": self.alert_publish_errors_total,
            "eval_errors_total": self.eval_errors_total,
            "md_observed_total": m.md_total,
            "exec_observed_total": m.exec_total,
            "series_kept": len(m.series.names()),
            "dashboard_clients": self.stream.clients,
            "dashboard_events_total": self.stream.sent_total,
        }

    def details(self) -> dict[str, Any]:
        m = self.model
        return {
            "system_health": round(m.system_health, 4),
            "alerts": sorted(f"{a.name}:{a.source}" for a in m.alerts.active.values()),
        }

    def add_routes(self, app: FastAPI) -> None:
        api.install(app, self)
