"""The alert book: which alerts are active, the history of transitions, and the Alert messages to publish.

An alert is identified by (name, source). Rules decide *when* to raise and clear (with the latches in
`hysteresis`); the book only turns those decisions into `Alert` messages, so a rule that says "raise"
twice produces one message. Every transition is kept in a bounded history for REST.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from enum import StrEnum

import msgspec

from nexus.messages import Alert, Reason, Severity, now_ns


class Rule(StrEnum):
    """Every alert the monitor raises (the `name` field of an Alert)."""

    SERVICE_DOWN = "SERVICE_DOWN"
    LOW_HEALTH_SCORE = "LOW_HEALTH_SCORE"
    FEED_DOWN = "FEED_DOWN"
    FEED_FAILOVER = "FEED_FAILOVER"
    SEQUENCE_GAP = "SEQUENCE_GAP"
    SLOW_CONSUMER = "SLOW_CONSUMER"
    RISK_LIMIT_BREACH = "RISK_LIMIT_BREACH"
    KILL_SWITCH = "KILL_SWITCH"
    LATENCY_SLO_BREACH = "LATENCY_SLO_BREACH"
    QUEUE_LIMIT_FORECAST = "QUEUE_LIMIT_FORECAST"
    """The predictive rule: a queue's fitted trend reaches its limit within the horizon."""


SEVERITY: dict[Rule, Severity] = {
    Rule.SERVICE_DOWN: Severity.CRITICAL,
    Rule.LOW_HEALTH_SCORE: Severity.WARNING,
    Rule.FEED_DOWN: Severity.CRITICAL,
    Rule.FEED_FAILOVER: Severity.WARNING,
    Rule.SEQUENCE_GAP: Severity.WARNING,
    Rule.SLOW_CONSUMER: Severity.WARNING,
    Rule.RISK_LIMIT_BREACH: Severity.WARNING,
    Rule.KILL_SWITCH: Severity.CRITICAL,
    Rule.LATENCY_SLO_BREACH: Severity.WARNING,
    Rule.QUEUE_LIMIT_FORECAST: Severity.WARNING,
}

RISK_LIMIT_REASONS = frozenset(
    {
        Reason.PRICE_COLLAR,
        Reason.MAX_ORDER_QTY,
        Reason.MAX_NOTIONAL,
        Reason.MAX_POSITION,
        Reason.MAX_GROSS_EXPOSURE,
        Reason.MAX_NET_EXPOSURE,
        Reason.BUYING_POWER,
        Reason.RATE_LIMIT,
        Reason.MAX_OPEN_ORDERS,
        Reason.DAILY_LOSS_LIMIT,
    }
)
"""Reject reasons that mean a risk limit was hit (not a malformed order or a halted account)."""


class ActiveAlert(msgspec.Struct, kw_only=True):
    """An alert that is raised now: the last message about it, when it was raised, how often it fired."""

    name: str
    severity: str
    source: str
    text: str
    value: float | None
    threshold: float | None
    raised_ts: int
    ts: int
    count: int = 1


class AlertBook:
    def __init__(self, history: int, wall: Callable[[], int] = now_ns) -> None:
        self.active: dict[tuple[str, str], ActiveAlert] = {}
        self.history: deque[Alert] = deque(maxlen=history)
        self.raised_total = 0
        self.cleared_total = 0
        self._wall = wall

    def is_active(self, name: str, source: str) -> bool:
        return (name, source) in self.active

    def raise_(
        self,
        rule: Rule,
        source: str,
        text: str,
        value: float | None = None,
        threshold: float | None = None,
        severity: Severity | None = None,
    ) -> Alert | None:
        """Raise (name, source); returns the message to publish, or None if it was already raised
        (then the active entry's text, value and count are updated)."""
        key = (rule.value, source)
        ts = self._wall()
        current = self.active.get(key)
        if current is not None:
            current.text, current.value, current.ts = text, value, ts
            current.count += 1
            return None
        sev = (severity or SEVERITY[rule]).value
        self.active[key] = ActiveAlert(
            name=rule.value,
            severity=sev,
            source=source,
            text=text,
            value=value,
            threshold=threshold,
            raised_ts=ts,
            ts=ts,
        )
        self.raised_total += 1
        alert = Alert(
            name=rule.value,
            severity=sev,
            state="raised",
            source=source,
            text=text,
            value=value,
            threshold=threshold,
            ts=ts,
        )
        self.history.append(alert)
        return alert

    def clear(self, rule: Rule, source: str, text: str, value: float | None = None) -> Alert | None:
        """Clear (name, source); None if it was not raised."""
        current = self.active.pop((rule.value, source), None)
        if current is None:
            return None
        self.cleared_total += 1
        alert = Alert(
            name=rule.value,
            severity=current.severity,
            state="cleared",
            source=source,
            text=text,
            value=value,
            threshold=current.threshold,
            ts=self._wall(),
        )
        self.history.append(alert)
        return alert

    def sources(self, rule: Rule) -> list[str]:
        return [source for name, source in self.active if name == rule.value]
