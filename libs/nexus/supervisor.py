"""Child-process supervision for `nexus up`: start services, restart crashes with backoff, stop all.

Children get PR_SET_PDEATHSIG, so even a kill -9 of the supervisor leaves no service behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from nexus.logs import get_logger
from nexus.procs import OWN_PROCESS_GROUP, die_with_parent
from nexus.resilience import Backoff

STABLE_AFTER = 30.0
"""A child that ran this long before crashing restarts with a fresh backoff."""


@dataclass(frozen=True)
class ChildSpec:
    """One supervised process: `python -m <module>` with extra environment."""

    name: str
    module: str
    http_port: int = 0
    env: Mapping[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}" if self.http_port else ""


class Child:
    def __init__(self, spec: ChildSpec, base_env: Mapping[str, str]) -> None:
        self.spec = spec
        self.env = {**base_env, **spec.env}
        if spec.http_port:
            self.env["NEXUS_HTTP_PORT"] = str(spec.http_port)
        self.proc: asyncio.subprocess.Process | None = None
        self.started_at = 0.0
        self.restarts = 0
        self.backoff = Backoff(base=0.5, cap=15.0)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            self.spec.module,
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            preexec_fn=die_with_parent,
            process_group=OWN_PROCESS_GROUP,
        )
        self.started_at = time.monotonic()


class Supervisor:
    """Keeps every child running until `stop()`; a crashed child is restarted after a jittered backoff."""

    def __init__(self, specs: list[ChildSpec], base_env: Mapping[str, str]) -> None:
        self.children = [Child(spec, base_env) for spec in specs]
        self.log = get_logger("nexus.supervisor")
        self.stopping = False
        self._watchers: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        for child in self.children:
            await child.start()
            self.log.info("child.started", child=child.spec.name, pid=child.pid)
            self._watchers.append(asyncio.create_task(self._watch(child), name=f"watch-{child.spec.name}"))

    async def _watch(self, child: Child) -> None:
        while not self.stopping:
            assert child.proc is not None
            code = await child.proc.wait()
            if self.stopping:
                return
            ran = time.monotonic() - child.started_at
            if ran > STABLE_AFTER:
                child.backoff.reset()
            delay = child.backoff.next()
            child.restarts += 1
            self.log.warning(
                "child.crashed",
                child=child.spec.name,
                pid=child.pid,
                exit_code=code,
                ran_seconds=round(ran, 1),
                restart_in=round(delay, 2),
                restarts=child.restarts,
            )
            await asyncio.sleep(delay)
            if self.stopping:
                return
            await child.start()
            self.log.info("child.restarted", child=child.spec.name, pid=child.pid, restarts=child.restarts)

    async def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM every child, wait up to `timeout`, SIGKILL what is left; then every pid is reaped."""
        self.stopping = True
        for task in self._watchers:
            task.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)
        running = [c for c in self.children if c.proc is not None and c.proc.returncode is None]
        for child in running:
            assert child.proc is not None
            with contextlib.suppress(ProcessLookupError):
                child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child in running:
            assert child.proc is not None
            try:
                code = await asyncio.wait_for(child.proc.wait(), max(0.1, deadline - time.monotonic()))
                self.log.info("child.stopped", child=child.spec.name, pid=child.pid, exit_code=code)
            except TimeoutError:
                self.log.warning("child.killed", child=child.spec.name, pid=child.pid)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.proc.pid, signal.SIGKILL)
                await child.proc.wait()
