"""The base every Nexus service derives from.

A service is its own logic plus a few hooks; the runner (nexus.runtime.runner) does the rest the same way
for everyone: settings, logging, NATS, heartbeats, HTTP control plane, signals, graceful shutdown.

    class Risk(Service[RiskSettings]):
        name = "risk"
        settings_cls = RiskSettings

        async def start(self) -> None: ...subscribe, spawn tasks...
        def stats(self) -> dict[str, float]: return {"orders_checked_total": ...}
        def add_routes(self, app: FastAPI) -> None: app.include_router(...)
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, ClassVar, Generic, TypeVar

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from nexus.bus import Bus
from nexus.logs import get_logger
from nexus.settings import Settings

S = TypeVar("S", bound=Settings)


class Service(Generic[S]):
    """Override `start`, and where needed `stop_intake`, `stop`, `stats`, `details`, `ready`, `add_routes`."""

    name: ClassVar[str] = "service"
    settings_cls: ClassVar[type[Settings]] = Settings
    dedicated_p0: ClassVar[bool] = False
    """Open a second NATS connection for p0 traffic (see Bus.conn)."""
    checked_subjects: ClassVar[bool] = False
    """Every subject the service uses is built by nexus.subjects (see Bus.checked_subjects)."""

    def __init__(self, settings: S, bus: Bus) -> None:
        self.settings = settings
        self.bus = bus
        self.log = get_logger(self.name)
        self.registry = CollectorRegistry(auto_describe=True)
        """Prometheus registry for the service's own metrics (served on /metrics beside its stats)."""
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- lifecycle hooks ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Subscribe and start work. Called once the bus is connected."""

    async def stop_intake(self) -> None:
        """Stop taking new work (first step of a graceful stop). Default: unsubscribe everything."""
        await self.bus.unsubscribe_all()

    async def stop(self) -> None:
        """Finish in-flight work and persist state. Default: cancel spawned tasks."""
        await self.cancel_tasks()

    # -- what the runner reports --------------------------------------------------------------------

    def stats(self) -> dict[str, float]:
        """Flat numeric stats for the heartbeat and /metrics (counters end in `_total`)."""
        return {}

    def details(self) -> dict[str, Any]:
        """Structured state for the heartbeat (e.g. per-feed health); must be JSON-encodable."""
        return {}

    def ready(self) -> tuple[bool, str]:
        """Service-specific readiness beyond "NATS is connected": (ready, reason when not)."""
        return True, ""

    def add_routes(self, app: FastAPI) -> None:
        """Add the service's own REST routes."""

    # -- helpers ------------------------------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str | None = None) -> asyncio.Task[Any]:
        """Run a background task owned by the service; failures are logged, tasks cancelled on stop."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.log.error("service.task_failed", task=task.get_name(), error=repr(task.exception()))

    async def cancel_tasks(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
