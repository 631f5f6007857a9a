"""The monitor's picture of the system, and every alert rule: pure, driven by messages and a clock.

    model = MonitorModel(settings)
    model.on_heartbeat(hb, now)          # now = the caller's monotonic seconds
    model.tick(now)                      # staleness, health, latches; series + SLOs once per step
    for alert in model.drain(): publish(alert)

Nothing here touches NATS or HTTP (service.py does), so every rule is tested with a fake clock.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable

import msgspec

from monitor.alerts import RISK_LIMIT_REASONS, ActiveAlert, AlertBook, Rule
from monitor.counters import CounterRate
from monitor.health import (
    FEED_DOWN_STATES,
    FEED_EXCLUDED_STATES,
    FeedInputs,
    ServiceInputs,
    feed_health,
    latency_penalty,
    service_health,
    system_health,
)
from monitor.hysteresis import EventLatch, Threshold, Transition
from monitor.latency import ALL, LatencyBook, Percentiles
from monitor.series import SeriesStore
from monitor.settings import MonitorSettings
from monitor.tracks import RATE_HEALTH, RATE_SHOW, FeedTrack, QueueTrack, ServiceTrack, number
from monitor.views import (
    AccountView,
    AlertCounts,
    AlertsView,
    FeedView,
    LatencyView,
    Overview,
    PortfolioView,
    PositionView,
    QueueView,
    SeriesView,
    ServiceView,
    Throughput,
)
from nexus.messages import (
    AccountRisk,
    Alert,
    ExecReport,
    ExecType,
    FeedStatus,
    Heartbeat,
    KillSwitch,
    PortfolioTarget,
    RiskAudit,
    Severity,
    TradingState,
    now_ns,
)

MAKER = frozenset({"maker", "m", "passive", "added"})
"""Liquidity flags of a resting order's fill: time spent in the book is not latency, so not measured."""
ACCEPTED_MEMORY = 100_000
"""Accepted-order times kept to measure accepted -> fill."""
SYSTEM = "system"


class Stamps(msgspec.Struct, frozen=True):
    """The timestamps of any market-data message (Trade, Quote, BookSnapshot, BookDelta): decoding only
    these four fields is what keeps watching every message cheap."""

    venue: str = ""
    ts_event: int = 0
    ts_recv: int = 0
    ts_pub: int = 0


class MonitorModel:
    def __init__(
        self,
        settings: MonitorSettings,
        wall: Callable[[], int] = now_ns,
    ) -> None:
        s = self.settings = settings
        self.wall = wall
        self.services: dict[str, ServiceTrack] = {}
        self.feeds: dict[str, FeedTrack] = {}
        self.alerts = AlertBook(s.monitor_history, wall)
        self.outbox: list[Alert] = []
        self.series = SeriesStore(s.monitor_window, s.monitor_series_step)
        self.latency = LatencyBook(s.monitor_slo_window, slot=min(5.0, s.monitor_slo_window / 4))
        self.targets = s.slo_targets_ms()
        self.slo_latches: dict[tuple[str, str], Threshold] = {}
        self.lat_window: dict[tuple[str, str], Percentiles] = {}
        self.lat_penalty: dict[tuple[str, str], float] = {}
        self.system_health = 1.0
        self.system_latch = Threshold(
            s.monitor_health_low,
            s.monitor_health_ok,
            raise_for=s.monitor_health_hold,
            clear_for=s.monitor_health_hold,
            above=False,
        )
        self.md_total = 0
        self.md_by_venue: dict[str, int] = {}
        self.exec_total = 0
        self.rejects_total = 0
        self.rejects_by_account: dict[str, int] = {}
        self.rates: dict[str, CounterRate] = {}
        self.accepted: OrderedDict[tuple[str, str], int] = OrderedDict()
        self.accounts: dict[str, tuple[AccountRisk, float]] = {}
        self.portfolios: dict[str, tuple[PortfolioTarget, float]] = {}
        self.risk_latches: dict[str, EventLatch] = {}
        self.samples = 0
        self._last_sample = -math.inf

    # -- output -------------------------------------------------------------------------------------

    def drain(self) -> list[Alert]:
        """The alert transitions since the last call, in order (to publish on sys.alert.<severity>)."""
        out, self.outbox = self.outbox, []
        return out

    def _raise(
        self,
        rule: Rule,
        source: str,
        text: str,
        value: float | None = None,
        threshold: float | None = None,
        severity: Severity | None = None,
    ) -> None:
        alert = self.alerts.raise_(rule, source, text, _finite(value), _finite(threshold), severity)
        if alert is not None:
            self.outbox.append(alert)

    def _clear(self, rule: Rule, source: str, text: str, value: float | None = None) -> None:
        alert = self.alerts.clear(rule, source, text, _finite(value))
        if alert is not None:
            self.outbox.append(alert)

    def _latch(
        self,
        transition: Transition | None,
        rule: Rule,
        source: str,
        raised: str,
        cleared: str,
        value: float | None = None,
        threshold: float | None = None,
    ) -> None:
        if transition == "raised":
            self._raise(rule, source, raised, value, threshold)
        elif transition == "cleared":
            self._clear(rule, source, cleared, value)

    # -- heartbeats ---------------------------------------------------------------------------------

    def on_heartbeat(self, hb: Heartbeat, now: float) -> None:
        key = f"{hb.service}.{hb.instance}"
        track = self.services.get(key)
        if track is None:
            track = self.services[key] = ServiceTrack(hb, now, self.settings)
        elif hb.pid == track.pid and hb.seq < track.seq:
            return  # an older heartbeat overtaken by a newer one
        restarted = bool(track.pid) and hb.pid != track.pid
        deltas = track.ingest(hb, now)
        source = f"service:{key}"
        if hb.state == "stopped":
            track.down = True
            self._raise(Rule.SERVICE_DOWN, source, f"{key} stopped (pid {hb.pid} said goodbye)")
        elif track.down:
            track.down = False
            self._clear(Rule.SERVICE_DOWN, source, f"{key} is back: heartbeat from pid {hb.pid}")
        if deltas["slow"] > 0:
            self._event(
                track.slow_latch,
                now,
                int(deltas["slow"]),
                Rule.SLOW_CONSUMER,
                source,
                f"{key}: a subscription fell behind and NATS dropped {deltas['slow']:.0f} message(s)",
            )
        feeds = hb.details.get("feeds")
        per_feed_gaps = False
        if isinstance(feeds, dict):
            for name, detail in feeds.items():
                if isinstance(name, str) and isinstance(detail, dict):
                    per_feed_gaps |= "gaps_total" in detail
                    self._feed_detail(name, detail, hb, key, now, restarted)
            if hb.state == "ready":
                # A feed its own feed handler no longer lists was removed there: forget it.
                for name in [n for n, f in self.feeds.items() if f.source == key and n not in feeds]:
                    self.forget_feed(name, f"feed {name} was removed from {key}")
        if not per_feed_gaps and deltas["gaps"] > 0:
            self._event(
                track.gap_latch,
                now,
                int(deltas["gaps"]),
                Rule.SEQUENCE_GAP,
                source,
                f"{key}: {deltas['gaps']:.0f} sequence gap(s) in market data",
            )
        self._queues(track, now)

    def _queues(self, track: ServiceTrack, now: float) -> None:
        s = self.settings
        gauges = track.queue_gauges(s.monitor_queue_limit_default)
        for name in [n for n in track.queues if n not in gauges]:
            del track.queues[name]
            self._clear(Rule.QUEUE_LIMIT_FORECAST, f"queue:{track.key}/{name}", f"queue {name} is gone")
        for name, (depth, limit) in gauges.items():
            q = track.queues.get(name)
            if q is None:
                q = track.queues[name] = QueueTrack(
                    name,
                    s.monitor_forecast_window,
                    s.monitor_forecast_min_points,
                    s.monitor_forecast_horizon,
                    5.0,
                )
            q.depth, q.limit = depth, limit
            q.forecaster.add(now, depth)
            if limit is None:
                q.eta = math.inf
                continue
            q.eta = q.forecaster.eta(limit)
            trend = q.forecaster.trend()
            slope = trend.slope if trend is not None else 0.0
            self._latch(
                q.latch.update(now, q.eta),
                Rule.QUEUE_LIMIT_FORECAST,
                f"queue:{track.key}/{name}",
                (
                    f"{track.key} queue {name} at {depth:.0f} of {limit:.0f} and rising {slope:.1f}/s: "
                    f"the limit is reached in ~{q.eta:.0f}s (horizon {s.monitor_forecast_horizon:.0f}s)"
                ),
                (f"{track.key} queue {name} at {depth:.0f} of {limit:.0f}: no longer heading for the limit"),
                value=q.eta,
                threshold=s.monitor_forecast_horizon,
            )

    def _event(self, latch: EventLatch, now: float, n: int, rule: Rule, source: str, text: str) -> None:
        """An event alert: the first event raises it, later ones refresh its text and count."""
        latch.trigger(now, n)
        self._raise(rule, source, text, value=float(latch.count))

    # -- feeds --------------------------------------------------------------------------------------

    def _feed(self, name: str, now: float) -> FeedTrack:
        track = self.feeds.get(name)
        if track is None:
            track = self.feeds[name] = FeedTrack(name, now, self.settings)
        return track

    def _feed_detail(
        self, name: str, d: dict[str, object], hb: Heartbeat, source: str, now: float, restarted: bool
    ) -> None:
        track = self._feed(name, now)
        if hb.ts < track.last_sender_ts:
            return  # a snapshot older than what we know
        track.last_sender_ts = hb.ts
        track.last_rx = now
        track.source = source
        if isinstance(d.get("venue"), str):
            track.venue = str(d["venue"])
        if isinstance(d.get("state"), str):
            track.state = str(d["state"])
        track.reported = number(d.get("health"), track.reported)
        if isinstance(d.get("active"), str):
            self._set_active(track, str(d["active"]), now)
        deltas = {}
        for counter_name, counter in track.counters.items():
            if counter_name in d:
                if restarted:
                    counter.reset()
                deltas[counter_name] = counter.add(now, number(d[counter_name]), from_zero=restarted)
        if deltas.get("gaps_total", 0) > 0:
            self._event(
                track.gap_latch,
                now,
                int(deltas["gaps_total"]),
                Rule.SEQUENCE_GAP,
                f"feed:{name}",
                f"feed {name}: {deltas['gaps_total']:.0f} sequence gap(s)",
            )
        if deltas.get("failovers_total", 0) > 0:
            self._failover(track, now, f"feed {name} failed over (now on {track.active or 'another source'})")

    def on_feed_status(self, fs: FeedStatus, now: float) -> None:
        track = self._feed(fs.feed, now)
        if fs.ts and fs.ts < track.last_sender_ts:
            return
        track.last_sender_ts = max(track.last_sender_ts, fs.ts)
        track.last_rx = now
        track.venue = fs.venue or track.venue
        track.state = fs.state
        track.reported = fs.health
        track.reason = fs.reason
        self._set_active(track, fs.active, now)

    def _set_active(self, track: FeedTrack, active: str, now: float) -> None:
        if not active:
            return
        previous, track.active = track.active, active
        if previous and previous != active:
            self._failover(track, now, f"feed {track.feed} failed over from {previous} to {active}")

    def _failover(self, track: FeedTrack, now: float, text: str) -> None:
        self._event(track.failover_latch, now, 1, Rule.FEED_FAILOVER, f"feed:{track.feed}", text)

    # -- market data and orders ---------------------------------------------------------------------

    def on_market_data(self, m: Stamps, now: float, now_wall: int) -> None:
        self.md_total += 1
        self.md_by_venue[m.venue] = self.md_by_venue.get(m.venue, 0) + 1
        lat = self.latency
        if m.ts_recv:
            if m.ts_event:
                lat.record("md.venue_to_recv", m.venue, now, m.ts_recv - m.ts_event)
            if m.ts_pub:
                lat.record("md.recv_to_pub", m.venue, now, m.ts_pub - m.ts_recv)
            lat.record("md.recv_to_consume", m.venue, now, now_wall - m.ts_recv)
        if m.ts_pub:
            lat.record("md.pub_to_consume", m.venue, now, now_wall - m.ts_pub)

    def on_exec_report(self, er: ExecReport, now: float) -> None:
        self.exec_total += 1
        scope = er.venue or "engine"
        key = (er.account, er.client_order_id)
        match er.exec_type:
            case ExecType.ACCEPTED:
                if er.ts_cmd and er.ts_event:
                    self.latency.record("order.submit_to_ack", scope, now, er.ts_event - er.ts_cmd)
                if er.ts_event:
                    self.accepted[key] = er.ts_event
                    if len(self.accepted) > ACCEPTED_MEMORY:
                        self.accepted.popitem(last=False)
            case ExecType.FILLED | ExecType.PARTIALLY_FILLED:
                if er.liquidity.lower() not in MAKER and er.ts_event:
                    if er.ts_cmd:
                        self.latency.record("order.submit_to_fill", scope, now, er.ts_event - er.ts_cmd)
                    accepted = self.accepted.get(key)
                    if accepted:
                        self.latency.record("order.ack_to_fill", scope, now, er.ts_event - accepted)
                if er.exec_type is ExecType.FILLED:
                    self.accepted.pop(key, None)
            case ExecType.CANCELLED:
                self.accepted.pop(key, None)
            case ExecType.REJECTED:
                self.rejects_total += 1
                if er.reason in RISK_LIMIT_REASONS:
                    self._risk_breach(er, now)
            case _:
                pass

    def _risk_breach(self, er: ExecReport, now: float) -> None:
        n = self.rejects_by_account[er.account] = self.rejects_by_account.get(er.account, 0) + 1
        latch = self.risk_latches.get(er.account)
        if latch is None:
            latch = self.risk_latches[er.account] = EventLatch(self.settings.monitor_event_hold)
        detail = f" ({er.text})" if er.text else ""
        self._event(
            latch,
            now,
            1,
            Rule.RISK_LIMIT_BREACH,
            f"account:{er.account}",
            f"{er.account}: order {er.client_order_id} on {er.symbol} rejected, {er.reason}{detail}; "
            f"{n} limit reject(s) so far",
        )

    # -- risk and portfolio -------------------------------------------------------------------------

    def on_kill_switch(self, ks: KillSwitch, now: float) -> None:
        who = ks.account or "*"
        source = f"account:{who}"
        if ks.state is TradingState.ACTIVE:
            targets = self.alerts.sources(Rule.KILL_SWITCH) if not ks.account else [source]
            for src in targets:
                self._clear(
                    Rule.KILL_SWITCH, src, f"{src.partition(':')[2]}: trading resumed by {ks.operator or '?'}"
                )
            return
        severity = Severity.CRITICAL if ks.state is TradingState.HALTED else Severity.WARNING
        current = self.alerts.active.get((Rule.KILL_SWITCH.value, source))
        if current is not None and current.severity != severity.value:
            self._clear(Rule.KILL_SWITCH, source, f"{who}: trading state is now {ks.state.value}")
        why = f": {ks.reason}" if ks.reason else ""
        self._raise(
            Rule.KILL_SWITCH,
            source,
            f"{'every account' if not ks.account else who}: trading {ks.state.value} "
            f"by {ks.operator or '?'}{why}",
            severity=severity,
        )

    def on_risk_audit(self, audit: RiskAudit, now: float) -> None:
        """A trading-state change risk made (from a NATS kill switch or its REST route): the same alert as
        the kill-switch request itself (raising an alert that is already up changes nothing)."""
        if audit.field != "trading_state":
            return
        try:
            state = TradingState(audit.new)
        except ValueError:
            return
        account = audit.scope.removeprefix("account:") if audit.scope.startswith("account:") else ""
        self.on_kill_switch(KillSwitch(state=state, account=account, operator=audit.operator), now)

    def on_account_risk(self, ar: AccountRisk, now: float) -> None:
        self.accounts[ar.account] = (ar, now)
        source = f"account:{ar.account}"
        if ar.state is TradingState.ACTIVE:
            self._clear(Rule.KILL_SWITCH, source, f"{ar.account}: trading active again")
        elif not self.alerts.is_active(Rule.KILL_SWITCH.value, "account:*"):
            severity = Severity.CRITICAL if ar.state is TradingState.HALTED else Severity.WARNING
            self._raise(
                Rule.KILL_SWITCH, source, f"{ar.account}: trading {ar.state.value}", severity=severity
            )

    def on_portfolio_target(self, pt: PortfolioTarget, now: float) -> None:
        self.portfolios[pt.portfolio] = (pt, now)

    # -- evaluation ---------------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        """Evaluate staleness, health and every latch; sample series and SLOs once per step."""
        sample = now - self._last_sample >= self.settings.monitor_series_step
        if sample:
            self._last_sample = now
            self._sample_latency(now)
        service_scores = [self._tick_service(track, now) for track in list(self.services.values())]
        feed_scores = [
            h for h in (self._tick_feed(track, now) for track in self.feeds.values()) if h is not None
        ]
        self.system_health = system_health(service_scores, feed_scores, list(self.lat_penalty.values()))
        self._latch(
            self.system_latch.update(now, self.system_health),
            Rule.LOW_HEALTH_SCORE,
            SYSTEM,
            f"system health {self.system_health:.2f} below {self.settings.monitor_health_low}",
            f"system health {self.system_health:.2f} recovered",
            value=self.system_health,
            threshold=self.settings.monitor_health_low,
        )
        for account, latch in self.risk_latches.items():
            if latch.update(now) == "cleared":
                self._clear(
                    Rule.RISK_LIMIT_BREACH, f"account:{account}", f"{account}: no limit rejects lately"
                )
        if sample:
            self._sample_series(now)

    def _tick_service(self, track: ServiceTrack, now: float) -> float:
        s = self.settings
        source = f"service:{track.key}"
        down = track.is_down(now)
        if down and not track.down:
            track.down = True
            age = track.age(now)
            self._raise(
                Rule.SERVICE_DOWN,
                source,
                f"{track.key}: no heartbeat for {age:.1f}s (limit {track.down_after:.1f}s), pid {track.pid}",
                value=age,
                threshold=track.down_after,
            )
        fills = [
            depth / limit
            for depth, limit in track.queue_gauges(s.monitor_queue_limit_default).values()
            if limit
        ]
        h = service_health(
            ServiceInputs(
                down=down,
                state=track.state,
                nats_connected=track.stats.get("nats_connected", 1.0) > 0,
                heartbeat_age=track.age(now),
                interval=track.interval,
                down_after=track.down_after,
                error_rate=track.rate("errors", now, RATE_HEALTH),
                drop_rate=track.rate("drops", now, RATE_HEALTH),
                queue_fills=fills,
                loop_lag_ms=track.stats.get("loop_lag_ms", 0.0),
            )
        )
        track.health = h.score
        track.availability.mark(now, not down)
        if not down:
            self._latch(
                track.health_latch.update(now, h.score),
                Rule.LOW_HEALTH_SCORE,
                source,
                f"{track.key} health {h.score:.2f} below {s.monitor_health_low}",
                f"{track.key} health {h.score:.2f} recovered",
                value=h.score,
                threshold=s.monitor_health_low,
            )
        if track.slow_latch.update(now) == "cleared":
            self._clear(Rule.SLOW_CONSUMER, source, f"{track.key}: no slow-consumer drops lately")
        if track.gap_latch.update(now) == "cleared":
            self._clear(Rule.SEQUENCE_GAP, source, f"{track.key}: no sequence gaps lately")
        if track.stopped_at is not None and now - track.stopped_at >= s.monitor_forget_after:
            self.forget_service(track.key, f"{track.key} retired: stopped {now - track.stopped_at:.0f}s ago")
        return h.score

    def _tick_feed(self, track: FeedTrack, now: float) -> float | None:
        s = self.settings
        source = f"feed:{track.feed}"
        fresh = now - track.last_rx < s.monitor_feed_stale_after
        p_lat = self.lat_penalty.get(("md.recv_to_consume", track.venue), 0.0)
        h = feed_health(
            FeedInputs(
                state=track.state,
                reported=track.reported,
                fresh=fresh,
                gap_rate=track.rate("gaps_total", now, RATE_HEALTH),
                error_rate=track.rate("errors_total", now, RATE_HEALTH)
                + track.rate("dropped_total", now, RATE_HEALTH),
                p_lat=p_lat,
            )
        )
        track.health = h
        excluded = track.state in FEED_EXCLUDED_STATES
        down = not excluded and (not fresh or track.state in FEED_DOWN_STATES)
        up = fresh and track.state == "live"
        track.availability.mark(now, None if excluded else up)
        level = 1.0 if down else 0.0 if (up or excluded) else 0.5
        self._latch(
            track.down_latch.update(now, level),
            Rule.FEED_DOWN,
            source,
            (
                f"feed {track.feed}: no news for {now - track.last_rx:.0f}s"
                if not fresh
                else f"feed {track.feed} is {track.state}" + (f": {track.reason}" if track.reason else "")
            ),
            f"feed {track.feed} is {track.state}",
        )
        if h is not None and not down:
            self._latch(
                track.health_latch.update(now, h),
                Rule.LOW_HEALTH_SCORE,
                source,
                f"feed {track.feed} health {h:.2f} below {s.monitor_health_low}",
                f"feed {track.feed} health {h:.2f} recovered",
                value=h,
                threshold=s.monitor_health_low,
            )
        elif excluded:
            self._clear(Rule.LOW_HEALTH_SCORE, source, f"feed {track.feed} stopped by an operator")
            track.health_latch.force_clear()
        if track.failover_latch.update(now) == "cleared":
            self._clear(Rule.FEED_FAILOVER, source, f"feed {track.feed} steady on {track.active or '?'}")
        if track.gap_latch.update(now) == "cleared":
            self._clear(Rule.SEQUENCE_GAP, source, f"feed {track.feed}: no sequence gaps lately")
        return h

    def _sample_latency(self, now: float) -> None:
        s = self.settings
        for stage, scope in self.latency.entries():
            pct = Percentiles.of(self.latency.recent(stage, scope, now))
            self.lat_window[(stage, scope)] = pct
            target = self.targets.get(stage)
            if target is None:
                continue
            enough = pct.count >= s.monitor_slo_min_samples
            self.lat_penalty[(stage, scope)] = latency_penalty(pct.p99, target) if enough else 0.0
            latch = self.slo_latches.get((stage, scope))
            if latch is None:
                latch = self.slo_latches[(stage, scope)] = Threshold(
                    target, 0.8 * target, raise_for=s.monitor_slo_hold, clear_for=s.monitor_slo_hold
                )
            # No traffic in the window is no breach; a handful of samples says nothing either way.
            value = pct.p99 if enough else (0.0 if pct.count == 0 else math.nan)
            self._latch(
                latch.update(now, value),
                Rule.LATENCY_SLO_BREACH,
                f"latency:{stage}@{scope}",
                (
                    f"{stage} ({scope}) p99 {pct.p99:.1f} ms over the {target:g} ms target "
                    f"(last {s.monitor_slo_window:.0f}s, {pct.count} samples)"
                ),
                f"{stage} ({scope}) p99 {pct.p99:.1f} ms within target again",
                value=pct.p99,
                threshold=target,
            )
        for stage in self.latency.stages():
            self.lat_window[(stage, ALL)] = Percentiles.of(self.latency.recent(stage, ALL, now))

    def _rate(self, name: str, now: float, total: float) -> float:
        counter = self.rates.get(name)
        if counter is None:
            counter = self.rates[name] = CounterRate(keep=RATE_SHOW + 5)
        counter.add(now, total)
        return counter.rate(now, RATE_SHOW)

    def _sample_series(self, now: float) -> None:
        self.samples += 1
        rec = self.series.record
        rec("system.health", now, self.system_health)
        rec("alerts.active", now, len(self.alerts.active))
        rec("throughput.md_rate", now, self._rate("md", now, self.md_total))
        rec("throughput.exec_rate", now, self._rate("exec", now, self.exec_total))
        for venue, n in self.md_by_venue.items():
            self._rate(f"md.{venue}", now, n)
        for key, track in self.services.items():
            p = f"service.{key}."
            rec(p + "health", now, track.health)
            if track.status(now) != "up":
                continue
            rec(p + "cpu_pct", now, 100 * track.rate("cpu", now))
            rec(p + "rss_mb", now, track.stats.get("rss_mb", 0.0))
            rec(p + "loop_lag_ms", now, track.stats.get("loop_lag_ms", 0.0))
            rec(p + "msgs_in_rate", now, track.rate("in", now))
            rec(p + "msgs_out_rate", now, track.rate("out", now))
            for q in track.queues.values():
                rec(f"{p}queue.{q.name}", now, q.depth)
        for name, feed in self.feeds.items():
            if feed.health is not None:
                rec(f"feed.{name}.health", now, feed.health)
            rec(f"feed.{name}.msgs_rate", now, feed.rate("msgs_total", now))
        for (stage, scope), pct in self.lat_window.items():
            if scope == ALL and pct.count:
                rec(f"latency.{stage}.p50_ms", now, pct.p50)
                rec(f"latency.{stage}.p99_ms", now, pct.p99)
        for account, (ar, _) in self.accounts.items():
            rec(f"risk.{account}.pnl", now, ar.realised_pnl + ar.unrealised_pnl)

    def forget_service(self, key: str, why: str = "") -> bool:
        """Drop a service instance (retired, or an operator's DELETE); clears its alerts."""
        track = self.services.pop(key, None)
        if track is None:
            return False
        text = why or f"{key} forgotten by an operator"
        source = f"service:{key}"
        for rule in (Rule.SERVICE_DOWN, Rule.LOW_HEALTH_SCORE, Rule.SLOW_CONSUMER, Rule.SEQUENCE_GAP):
            self._clear(rule, source, text)
        for name in track.queues:
            self._clear(Rule.QUEUE_LIMIT_FORECAST, f"queue:{key}/{name}", text)
        self.series.drop_prefix(f"service.{key}.")
        return True

    def forget_feed(self, name: str, why: str = "") -> bool:
        """Drop a feed (removed from its feed handler, or an operator's DELETE); clears its alerts."""
        if self.feeds.pop(name, None) is None:
            return False
        text = why or f"feed {name} forgotten by an operator"
        for rule in (Rule.FEED_DOWN, Rule.LOW_HEALTH_SCORE, Rule.FEED_FAILOVER, Rule.SEQUENCE_GAP):
            self._clear(rule, f"feed:{name}", text)
        self.series.drop_prefix(f"feed.{name}.")
        return True

    # -- views --------------------------------------------------------------------------------------

    def service_views(self, now: float) -> list[ServiceView]:
        out = []
        for key in sorted(self.services):
            t = self.services[key]
            st = t.stats
            out.append(
                ServiceView(
                    key=key,
                    service=t.service,
                    instance=t.instance,
                    state=t.state,
                    status=t.status(now),
                    health=round(t.health, 4),
                    availability=t.availability.ratio(now),
                    heartbeat_age=round(t.age(now), 3),
                    interval=round(t.interval, 3),
                    pid=t.pid,
                    http_url=t.http_url,
                    started_ts=t.started,
                    uptime_seconds=st.get("uptime_seconds", 0.0),
                    cpu_pct=round(100 * t.rate("cpu", now), 2),
                    rss_mb=round(st.get("rss_mb", 0.0), 1),
                    loop_lag_ms=round(st.get("loop_lag_ms", 0.0), 2),
                    msgs_in_rate=round(t.rate("in", now), 1),
                    msgs_out_rate=round(t.rate("out", now), 1),
                    error_rate=round(t.rate("errors", now, RATE_HEALTH), 3),
                    drop_rate=round(t.rate("drops", now, RATE_HEALTH), 3),
                    queues=[_queue_view(q) for q in t.queues.values()],
                    stats=st,
                )
            )
        return out

    def feed_views(self, now: float) -> list[FeedView]:
        return [
            FeedView(
                feed=f.feed,
                venue=f.venue,
                state=f.state,
                health=None if f.health is None else round(f.health, 4),
                reported_health=f.reported,
                active=f.active,
                reason=f.reason,
                availability=f.availability.ratio(now),
                age=round(now - f.last_rx, 3),
                msgs_rate=round(f.rate("msgs_total", now), 1),
                msgs_total=f.counters["msgs_total"].value,
                gaps_total=f.counters["gaps_total"].value,
                failovers_total=f.counters["failovers_total"].value,
                error_rate=round(f.rate("errors_total", now, RATE_HEALTH), 3),
                source=f.source,
            )
            for _, f in sorted(self.feeds.items())
        ]

    def latency_views(self, now: float, *, totals: bool = True) -> list[LatencyView]:
        out = []
        for (stage, scope), pct in sorted(self.lat_window.items()):
            target = self.targets.get(stage)
            latch = self.slo_latches.get((stage, scope))
            out.append(
                LatencyView(
                    stage=stage,
                    scope=scope,
                    target_ms=target,
                    window=pct,
                    total=Percentiles.of(self.latency.total(stage, scope)) if totals else pct,
                    breach=bool(latch and latch.active),
                )
            )
        return out

    def account_views(self, now: float) -> list[AccountView]:
        out = []
        for account, (ar, rx) in sorted(self.accounts.items()):
            out.append(
                AccountView(
                    account=account,
                    state=ar.state.value,
                    realised_pnl=ar.realised_pnl,
                    unrealised_pnl=ar.unrealised_pnl,
                    total_pnl=ar.realised_pnl + ar.unrealised_pnl,
                    gross_exposure=ar.gross_exposure,
                    net_exposure=ar.net_exposure,
                    open_orders=ar.open_orders,
                    positions=[
                        PositionView(
                            symbol=p.symbol,
                            qty=str(p.qty),
                            avg_px=None if p.avg_px is None else str(p.avg_px),
                            mark=None if p.mark is None else str(p.mark),
                            unrealised_pnl=p.unrealised_pnl,
                            realised_pnl=p.realised_pnl,
                        )
                        for p in ar.positions
                    ],
                    rejects_total=self.rejects_by_account.get(account, 0),
                    age=round(now - rx, 3),
                )
            )
        return out

    def portfolio_views(self, now: float) -> list[PortfolioView]:
        return [
            PortfolioView(
                portfolio=pt.portfolio,
                objective=pt.objective,
                status=pt.status,
                symbols=list(pt.symbols),
                weights=list(pt.weights),
                exp_return=pt.exp_return,
                volatility=pt.volatility,
                sharpe=pt.sharpe,
                solve_us=pt.solve_us,
                age=round(now - rx, 3),
            )
            for _, (pt, rx) in sorted(self.portfolios.items())
        ]

    def throughput(self, now: float) -> Throughput:
        def rate(name: str) -> float:
            counter = self.rates.get(name)
            return round(counter.rate(now, RATE_SHOW), 1) if counter is not None else 0.0

        return Throughput(
            md_rate=rate("md"),
            md_total=self.md_total,
            md_rate_by_venue={venue: rate(f"md.{venue}") for venue in sorted(self.md_by_venue)},
            exec_rate=rate("exec"),
            exec_total=self.exec_total,
            rejects_total=self.rejects_total,
            published_rate=round(
                sum(t.rate("out", now) for t in self.services.values() if t.status(now) == "up"), 1
            ),
        )

    def alert_views(self, limit: int = 200) -> AlertsView:
        history = list(self.alerts.history)[-limit:] if limit > 0 else []
        history.reverse()
        return AlertsView(active=self._active(), history=history)

    def _active(self) -> list[ActiveAlert]:
        order = {Severity.CRITICAL.value: 0, Severity.WARNING.value: 1, Severity.INFO.value: 2}
        return sorted(self.alerts.active.values(), key=lambda a: (order.get(a.severity, 3), -a.raised_ts))

    def overview(self, now: float) -> Overview:
        active = self._active()
        return Overview(
            ts=self.wall(),
            seq=self.samples,
            system_health=round(self.system_health, 4),
            services=self.service_views(now),
            feeds=self.feed_views(now),
            latency=self.latency_views(now, totals=False),
            throughput=self.throughput(now),
            alerts=active,
            alert_counts=AlertCounts(
                active=len(active),
                critical=sum(a.severity == Severity.CRITICAL.value for a in active),
                warning=sum(a.severity == Severity.WARNING.value for a in active),
                raised_total=self.alerts.raised_total,
                cleared_total=self.alerts.cleared_total,
            ),
            accounts=self.account_views(now),
            portfolios=self.portfolio_views(now),
        )

    def series_view(self, name: str, now: float, since: float | None = None) -> SeriesView:
        offset_ms = self.wall() / 1e6 - now * 1000
        return SeriesView(
            name=name,
            points=[(int(t * 1000 + offset_ms), v) for t, v in self.series.points(name, now, since)],
        )


def _queue_view(q: QueueTrack) -> QueueView:
    trend = q.forecaster.trend()
    return QueueView(
        name=q.name,
        depth=q.depth,
        limit=q.limit,
        slope_per_s=None if trend is None else round(trend.slope, 3),
        eta_seconds=None if math.isinf(q.eta) else round(q.eta, 1),
    )


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else x
