"""Helpers for tests and benchmarks: real processes and real NATS, never mocks.

    with ServiceProcess("risk", nats_url=url, instance="t1") as proc:
        proc.wait_ready()
        ...
        assert proc.terminate() == 0          # SIGTERM -> graceful stop -> exit code

Every process started here is stopped by its process id (never by name), also when a test fails.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from nexus.procs import die_with_parent, free_port

if TYPE_CHECKING:
    from nexus.runtime import Runner, Service
    from nexus.settings import Settings

T = TypeVar("T")


class InProcessService:
    """A service running on its runner in this event loop (for tests that look inside it).

    running = await InProcessService.start(Risk, settings)
    running.service.checker ...
    assert await running.stop() == 0
    """

    def __init__(self, runner: Runner, task: asyncio.Task[int]) -> None:
        self.runner = runner
        self.task = task

    @property
    def service(self) -> Any:
        return self.runner.service

    @classmethod
    async def start(
        cls, service_cls: type[Service[Any]], settings: Settings, timeout: float = 30.0
    ) -> InProcessService:
        """Start and wait until ready; if it fails or never gets ready, stop it and raise."""
        from nexus.runtime import Runner

        runner = Runner(service_cls, settings)
        task = asyncio.create_task(runner.run(install_signals=False))
        try:
            await wait_for(lambda: runner.readiness()[0] or task.done(), timeout=timeout)
            if task.done():
                task.result()
        except BaseException:
            runner.request_stop()
            await asyncio.gather(task, return_exceptions=True)
            raise
        return cls(runner, task)

    async def stop(self, timeout: float = 30.0) -> int:
        """Graceful stop; the exit code the runner returns."""
        self.runner.request_stop()
        return await asyncio.wait_for(self.task, timeout)


class ServiceProcess:
    """A Nexus service started as `python -m <module>` with NEXUS_* settings."""

    def __init__(
        self,
        module: str,
        *,
        nats_url: str,
        instance: str = "test",
        env: Mapping[str, str] | None = None,
        http_port: int | None = None,
        log_path: str | Path | None = None,
    ) -> None:
        self.module = module
        self.http_port = http_port if http_port is not None else free_port()
        self.env = {
            **os.environ,
            "NEXUS_NATS_URL": nats_url,
            "NEXUS_INSTANCE": instance,
            "NEXUS_HTTP_PORT": str(self.http_port),
            "NEXUS_LOG_FORMAT": "json",
            **(env or {}),
        }
        self.log_path = Path(log_path) if log_path else None
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    def start(self) -> ServiceProcess:
        out: Any = subprocess.DEVNULL
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            out = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child, closed below
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", self.module],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=die_with_parent,
            )
        finally:
            if out is not subprocess.DEVNULL:
                out.close()
        return self

    def get(self, path: str, timeout: float = 2.0) -> tuple[int, Any]:
        """GET a JSON route of the service: (status, decoded body)."""
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout) as resp:
                return resp.status, _json_or_text(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, _json_or_text(exc.read())

    def wait_ready(self, timeout: float = 20.0, path: str = "/readyz") -> None:
        """Wait until `path` answers 200; raise with the log tail if the process died or timed out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.module} exited with {self.proc.returncode}\n{self.log_tail()}")
            try:
                if self.get(path, timeout=1.0)[0] == 200:
                    return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        raise TimeoutError(f"{self.module} not ready within {timeout}s\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def terminate(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait; SIGKILL after `timeout`. Returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)

    def kill(self) -> None:
        """SIGKILL (a crash)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.kill()


def _json_or_text(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return data.decode(errors="replace")


async def wait_for(
    predicate: Callable[[], bool | Awaitable[bool]], timeout: float = 5.0, interval: float = 0.01
) -> None:
    """Poll `predicate` until true; TimeoutError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


def process_state(pid: int) -> str:
    """The process's state letter from /proc (R running, S sleeping, T stopped, ...)."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


async def pause_process(pid: int, timeout: float = 5.0) -> None:
    """SIGSTOP a process of the test's own and wait until it is stopped: the signal takes effect
    asynchronously, and a process still running for a moment can answer what was meant to wait.
    If it is not seen stopped in time, it is resumed before the error is raised."""
    os.kill(pid, signal.SIGSTOP)
    try:
        await wait_for(lambda: process_state(pid) == "T", timeout=timeout, interval=0.001)
    except BaseException:
        os.kill(pid, signal.SIGCONT)
        raise
