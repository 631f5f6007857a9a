"""Builders shared by the monitor tests: settings, a model on a fake clock, heartbeats."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from monitor.model import MonitorModel
from monitor.settings import MonitorSettings
from nexus.messages import Alert, Heartbeat
from nexus.settings import load_settings
from nexus.testing import ServiceProcess, wait_for

T0 = 1_000.0
"""Fake monotonic start time (seconds)."""
WALL0 = 1_700_000_000_000_000_000


def settings(**overrides: Any) -> MonitorSettings:
    return load_settings(MonitorSettings, {}, instance="mon", **overrides)


class Clocked:
    """A model on a fake clock: `advance(dt)` moves time and ticks every eval interval on the way."""

    def __init__(self, **overrides: Any) -> None:
        self.settings = settings(**overrides)
        self.now = T0
        self.model = MonitorModel(self.settings, wall=lambda: WALL0 + int((self.now - T0) * 1e9))
        self.alerts: list[Alert] = []

    def wall_ns(self) -> int:
        return WALL0 + int((self.now - T0) * 1e9)

    def advance(self, dt: float, step: float | None = None) -> list[Alert]:
        step = step or self.settings.monitor_eval_interval
        end = self.now + dt
        while self.now + step <= end + 1e-9:
            self.now += step
            self.model.tick(self.now)
        self.now = end
        self.model.tick(self.now)
        return self.take()

    def take(self) -> list[Alert]:
        out = self.model.drain()
        self.alerts += out
        return out

    def named(self, name: str, state: str | None = None, source: str | None = None) -> list[Alert]:
        return [
            a
            for a in self.alerts
            if a.name == name
            and (state is None or a.state == state)
            and (source is None or a.source == source)
        ]


def heartbeat(
    service: str,
    instance: str,
    seq: int,
    *,
    ts: int,
    pid: int = 100,
    state: str = "ready",
    stats: dict[str, float] | None = None,
    details: dict[str, Any] | None = None,
) -> Heartbeat:
    return Heartbeat(
        service=service,
        instance=instance,
        seq=seq,
        ts=ts,
        started=ts - seq * 1_000_000_000,
        pid=pid,
        state=state,
        stats={"nats_connected": 1.0, **(stats or {})},
        details=details or {},
    )


class AlertLog:
    """Every Alert seen on sys.alert.*, with the monotonic time it arrived."""

    def __init__(self) -> None:
        self.items: list[tuple[float, Alert]] = []

    async def on_alert(self, alert: Alert) -> None:
        self.items.append((time.monotonic(), alert))

    def find(self, name: str, source: str, state: str = "raised") -> list[tuple[float, Alert]]:
        return [(t, a) for t, a in self.items if a.name == name and a.source == source and a.state == state]

    async def wait(
        self, name: str, source: str, state: str = "raised", timeout: float = 10.0
    ) -> tuple[float, Alert]:
        try:
            await wait_for(lambda: bool(self.find(name, source, state)), timeout=timeout)
        except TimeoutError:
            seen = [(a.name, a.state, a.source) for _, a in self.items]
            raise AssertionError(f"no {state} {name} for {source} within {timeout}s; seen: {seen}") from None
        return self.find(name, source, state)[0]


async def get(proc: ServiceProcess, path: str) -> object:
    status, body = await asyncio.to_thread(proc.get, path)
    assert status == 200, (path, status, body)
    return body
