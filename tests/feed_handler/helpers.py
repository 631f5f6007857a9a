"""Helpers for the feed-handler tests: real simulator processes, the service in-process, collectors.

Every process started here is stopped by its pid (never by name), also when a test fails."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

from feed_handler.service import FeedHandler, FeedHandlerSettings
from nexus.procs import die_with_parent, free_port
from nexus.runtime import Runner
from nexus.settings import load_settings
from nexus.testing import InProcessService
from tests.conftest import SHARED_DATA

CRYPTO_WS = SHARED_DATA / "crypto_ws"
BINANCE_REC = CRYPTO_WS / "BINANCE-b38f7c.0"
COINBASE_REC = CRYPTO_WS / "COINBASE.ws.28.0"
LOBSTER_MSG = SHARED_DATA / "lobster" / "AMZN_2012-06-21_34200000_57600000_message_1.csv"


class SimulatorProcess:
    """`python -m feed_handler.simulator ...` on a loopback port (a fixed one survives restarts)."""

    def __init__(self, workdir: Path, *args: str, port: int | None = None, name: str = "sim") -> None:
        self.workdir = workdir
        self.args = list(args)
        self.port = port if port is not None else free_port()
        self.name = name
        self.log_path = workdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> SimulatorProcess:
        port_file = self.workdir / f"{self.name}.port"
        port_file.unlink(missing_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "feed_handler.simulator",
                    *self.args,
                    "--port",
                    str(self.port),
                    "--port-file",
                    str(port_file),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=die_with_parent,
            )
        deadline = time.monotonic() + timeout
        while not port_file.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"simulator exited with {self.proc.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.kill()
                raise TimeoutError(f"simulator not listening within {timeout}s:\n{self.log_tail()}")
            time.sleep(0.02)
        return self

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def get(self, path: str, **query: Any) -> tuple[int, Any]:
        url = self.http_url + path + ("?" + urllib.parse.urlencode(query) if query else "")
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def stats(self) -> dict[str, Any]:
        return self.get("/_sim/stats")[1]  # type: ignore[no-any-return]

    def fault(self, kind: str, **query: Any) -> dict[str, Any]:
        status, body = self.get("/_sim/fault", kind=kind, **query)
        assert status == 200, body
        return body  # type: ignore[no-any-return]

    def kill(self) -> None:
        """SIGKILL (a crash): the kernel closes its sockets at once."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def __enter__(self) -> SimulatorProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.kill()


@asynccontextmanager
async def feed_handler(
    nats_url: str, instance: str, tmp_path: Path, feeds_toml: str, **settings: Any
) -> AsyncIterator[Runner]:
    """The FeedHandler service in-process on the shared runtime, with `feeds_toml` as its feeds file."""
    config = tmp_path / f"feeds-{instance}.toml"
    config.write_text(feeds_toml)
    values = {"heartbeat_interval": 0.5, "status_interval": 0.5, **settings}
    s = load_settings(
        FeedHandlerSettings, {}, nats_url=[nats_url], instance=instance, config_file=str(config), **values
    )
    running = await InProcessService.start(FeedHandler, s, timeout=15)
    try:
        yield running.runner
    finally:
        await running.stop(20)


def service(runner: Runner) -> FeedHandler:
    svc = runner.service
    assert isinstance(svc, FeedHandler)
    return svc


class Collector:
    """Async handler keeping (receive time ns, message)."""

    def __init__(self) -> None:
        self.items: list[tuple[int, Any]] = []

    async def __call__(self, msg: Any) -> None:
        self.items.append((time.time_ns(), msg))

    @property
    def msgs(self) -> list[Any]:
        return [m for _, m in self.items]

    def of(self, kind: type) -> list[Any]:
        return [m for _, m in self.items if isinstance(m, kind)]

    def __len__(self) -> int:
        return len(self.items)


def toml_list(values: Sequence[str]) -> str:
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"
