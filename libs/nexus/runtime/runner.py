"""Runs one service: the same start-up, heartbeat, HTTP and shutdown for every service.

    python -m risk  ->  main(Risk)  ->  settings from NEXUS_*, logging, uvloop, Runner(...).run()

Start-up: HTTP control plane first (so /healthz answers while NATS is still being reached), then NATS
(retrying with jittered backoff), then `service.start()`, then a heartbeat on sys.hb.<service>.<instance>
every `heartbeat_interval` seconds.
Shutdown on SIGTERM/SIGINT: stop intake, let the service finish and persist, send a last heartbeat
(state=stopped), drain NATS, stop HTTP, exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import socket
import sys
import time
from collections.abc import Generator
from typing import Any

import uvicorn
import uvloop
from prometheus_client import CollectorRegistry

from nexus.bus import Bus
from nexus.errors import SettingsError
from nexus.logs import configure_logging, get_logger
from nexus.messages import Heartbeat, now_ns
from nexus.runtime.http import build_app
from nexus.runtime.metrics import StatsCollector
from nexus.runtime.service import Service
from nexus.settings import Settings, load_settings

_PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 1e6 if hasattr(os, "sysconf") else 0.0


class _Server(uvicorn.Server):
    """uvicorn in our event loop; the runner owns signal handling."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class _LoopLag:
    """Measures how late the event loop wakes a sleeping task: the worst lag per heartbeat interval."""

    def __init__(self, period: float = 0.05) -> None:
        self.period = period
        self.max_ms = 0.0
        self.last_max_ms = 0.0

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            t0 = loop.time()
            await asyncio.sleep(self.period)
            lag = (loop.time() - t0 - self.period) * 1000
            self.max_ms = max(self.max_ms, lag)

    def roll(self) -> float:
        self.last_max_ms, self.max_ms = self.max_ms, 0.0
        return self.last_max_ms


LOST_STOP_TIMEOUT = 10.0
"""Seconds a service may take to stop after its NATS connection was lost for good."""


class Runner:
    """Owns one service instance's process-level concerns."""

    def __init__(self, service_cls: type[Service[Any]], settings: Settings) -> None:
        self.settings = settings
        self.bus = Bus(
            settings.nats_url,
            name=f"{service_cls.name}.{settings.instance}",
            service=service_cls.name,
            dedicated_p0=service_cls.dedicated_p0,
            checked_subjects=service_cls.checked_subjects,
            drain_timeout=settings.drain_timeout,
            stream_replicas=settings.stream_replicas,
        )
        self.service = service_cls(settings, self.bus)
        self.log = get_logger("nexus.runtime").bind(service=service_cls.name, instance=settings.instance)
        self.state = "starting"
        self.started_ns = now_ns()
        self.http_url = ""
        self.stop_requested = asyncio.Event()
        self.exit_code = 0
        self.bus.on_lost = self._bus_lost
        self._hb_seq = 0
        self._lag = _LoopLag()
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(
            StatsCollector(self.all_stats, {"service": service_cls.name, "instance": settings.instance})
        )
        # The service's own metrics are served from the same endpoint.
        self.registry.register(_RegistryProxy(self.service.registry))

    # -- what is reported ---------------------------------------------------------------------------

    def all_stats(self) -> dict[str, float]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        stats = {
            "uptime_seconds": (now_ns() - self.started_ns) / 1e9,
            "cpu_seconds_total": usage.ru_utime + usage.ru_stime,
            "rss_mb": _rss_mb(),
            "loop_lag_ms": self._lag.last_max_ms,
            "nats_connected": 1.0 if self.bus.connected else 0.0,
        }
        stats.update(self.bus.stats.as_stats())
        stats.update(self.service.stats())
        return stats

    def heartbeat(self) -> Heartbeat:
        return Heartbeat(
            service=self.service.name,
            instance=self.settings.instance,
            seq=self._hb_seq,
            ts=now_ns(),
            started=self.started_ns,
            pid=os.getpid(),
            state=self.state,
            http_url=self.http_url,
            stats=self.all_stats(),
            details=self.service.details(),
        )

    def readiness(self) -> tuple[bool, str]:
        if self.state != "ready":
            return False, f"service is {self.state}"
        if not self.bus.connected:
            return False, "NATS is not connected"
        return self.service.ready()

    # -- lifecycle ----------------------------------------------------------------------------------

    def _bus_lost(self, reason: str) -> None:
        """A NATS connection closed for good under the service: stop, and exit 1 so that the supervisor
        (nexus up, compose) starts it again, connected; not ready meanwhile, rather than alive and deaf."""
        self.exit_code = 1
        self.log.error("service.nats_lost", error=reason)
        self.request_stop("nats-lost")

    def request_stop(self, signame: str = "") -> None:
        if not self.stop_requested.is_set():
            self.log.info("service.stop_requested", signal=signame)
        self.stop_requested.set()

    async def run(self, *, install_signals: bool = True) -> int:
        """Serve until SIGTERM/SIGINT (or `request_stop()`); returns the process exit code."""
        if install_signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.request_stop, sig.name)
        lag_task = asyncio.create_task(self._lag.run(), name="loop-lag")
        server, http_task = await self._start_http()
        try:
            if not await self._until_stopped(self.bus.connect()):
                return 0
            await self.service.start()
            self.state = "ready"
            self.log.info("service.ready", http=self.http_url, nats=self.bus.servers)
            hb_task = asyncio.create_task(self._heartbeats(), name="heartbeat")
            await self.stop_requested.wait()
            if self.exit_code:  # nobody will SIGKILL a stop that hangs: bound it
                try:
                    await asyncio.wait_for(self._shutdown(hb_task), LOST_STOP_TIMEOUT)
                except TimeoutError:
                    self.log.error("service.stop_timed_out", seconds=LOST_STOP_TIMEOUT)
            else:
                await self._shutdown(hb_task)
            return self.exit_code
        finally:
            server.should_exit = True
            await http_task
            lag_task.cancel()
            await self.bus.close()
            self.log.info("service.exited", state=self.state)

    async def _until_stopped(self, coro: Any) -> bool:
        """Run `coro` unless a stop is requested first; True when it completed."""
        work = asyncio.ensure_future(coro)
        stop = asyncio.ensure_future(self.stop_requested.wait())
        done, _ = await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
        if work in done:
            stop.cancel()
            work.result()
            return True
        work.cancel()
        await asyncio.gather(work, return_exceptions=True)
        return False

    async def _start_http(self) -> tuple[_Server, asyncio.Task[None]]:
        sock = socket.socket(socket.AF_INET6 if ":" in self.settings.http_host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.settings.http_host, self.settings.http_port))
        host, port = sock.getsockname()[:2]
        self.http_url = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
        config = uvicorn.Config(
            build_app(self),
            log_config=None,
            lifespan="off",
            access_log=False,
            timeout_graceful_shutdown=2,
        )
        server = _Server(config)
        task = asyncio.create_task(server.serve(sockets=[sock]), name="http")
        while not server.started and not task.done():  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
            await asyncio.sleep(0.01)
        if task.done():
            task.result()
        return server, task

    async def _heartbeats(self) -> None:
        interval = self.settings.heartbeat_interval
        while True:
            await self._send_heartbeat()
            await asyncio.sleep(interval)

    async def _send_heartbeat(self) -> None:
        self._lag.roll()
        self._hb_seq += 1
        try:
            await self.bus.publish(self.heartbeat())
        except Exception as exc:  # a heartbeat must never take the service down
            self.log.warning("heartbeat.failed", error=repr(exc))

    async def _shutdown(self, hb_task: asyncio.Task[None]) -> None:
        t0 = time.monotonic()
        self.state = "stopping"
        await self._send_heartbeat()
        await self.service.stop_intake()
        await self.service.stop()
        hb_task.cancel()
        await asyncio.gather(hb_task, return_exceptions=True)
        self.state = "stopped"
        await self._send_heartbeat()
        await self.bus.drain()
        self.log.info("service.stopped", seconds=round(time.monotonic() - t0, 3))


class _RegistryProxy:
    """Expose another registry's metrics through ours (prometheus_client collects collectors)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Any:
        return self._registry.collect()


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE_MB
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(service_cls: type[Service[Any]]) -> None:
    """Entry point of `python -m <service>`: settings, logging, uvloop, run, exit code."""
    try:
        settings = load_settings(service_cls.settings_cls)
    except SettingsError as exc:
        print(f"{service_cls.name}: bad setting: {exc}", file=sys.stderr)
        sys.exit(2)
    configure_logging(
        settings.log_level, settings.log_format, service=service_cls.name, instance=settings.instance
    )
    runner = Runner(service_cls, settings)
    sys.exit(uvloop.run(runner.run()))
