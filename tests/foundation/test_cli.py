"""`nexus up` end to end, `nexus sub`, and compose.yaml naming real modules."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from nexus import messages as m
from nexus import subjects
from nexus.bus import Bus
from nexus.cli import SERVICES
from nexus.procs import pid_alive
from nexus.testing import wait_for

ROOT = Path(__file__).resolve().parents[2]
NEXUS = str(Path(sys.executable).parent / "nexus")


def _events(log: Path) -> list[dict[str, object]]:
    out = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGHUP], ids=["ctrl-c", "terminal-closed"])
async def test_nexus_up_starts_everything_restarts_a_crash_and_stops_without_orphans(
    tmp_path: Path, stop_signal: signal.Signals
) -> None:
    log = tmp_path / "up.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [NEXUS, "up", "--nats-port", "0", "--nats-monitor-port", "0", "--http-port-base", "0",
             "--data-dir", str(tmp_path / "var")],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, as a shell gives a command it runs
        )  # fmt: skip
    pids: set[int] = set()
    try:
        deadline = time.monotonic() + 30
        while not (match := re.search(r"NATS\s+(nats://127\.0\.0\.1:\d+)", log.read_text())):
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            await asyncio.sleep(0.1)
        url = match.group(1)
        nats_pid = next(int(str(e["pid"])) for e in _events(log) if e.get("event") == "nats.started")
        pids.add(nats_pid)

        bus = Bus([url], name="up-test")
        await bus.connect(give_up_after=5)
        latest: dict[str, m.Heartbeat] = {}

        async def on_hb(hb: m.Heartbeat) -> None:
            latest[hb.service] = hb

        await bus.subscribe(subjects.heartbeat("*", "*"), m.Heartbeat, on_hb)
        t0 = time.monotonic()
        await wait_for(lambda: {n for n, _, _ in SERVICES} <= latest.keys(), timeout=20)
        first_all = time.monotonic() - t0
        assert first_all < 20
        pids |= {hb.pid for hb in latest.values()}
        for hb in latest.values():
            code, _ = await asyncio.to_thread(_get, hb.http_url + "/healthz")
            assert code == 200, hb.service

        # A crashed service comes back (new pid) after a jittered backoff.
        victim = latest["optimizer"].pid
        os.kill(victim, signal.SIGKILL)
        await wait_for(lambda: latest["optimizer"].pid != victim, timeout=20)
        pids.add(latest["optimizer"].pid)
        assert any(e.get("event") == "child.crashed" for e in _events(log))
        await bus.close()

        # Ctrl-C in a terminal is SIGINT to the whole foreground process group, not to one process;
        # closing the terminal is SIGHUP to it.
        os.killpg(proc.pid, stop_signal)
        assert await asyncio.to_thread(proc.wait, 30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    await wait_for(lambda: not any(pid_alive(p) for p in pids), timeout=5)
    stopped = [e for e in _events(log) if e.get("event") == "child.stopped"]
    assert {e["child"] for e in stopped} == {n for n, _, _ in SERVICES}
    assert all(e["exit_code"] == 0 for e in stopped), stopped
    # The Ctrl-C reached `nexus up` only: the services stopped while their server was still up, and
    # the server was stopped last, by `nexus up` (SIGTERM), not by the Ctrl-C.
    lost = [e for e in _events(log) if e.get("event") in ("bus.disconnected", "bus.drain_failed")]
    assert lost == []
    trapped = re.findall(r'Trapped "(\w+)" signal', (tmp_path / "var/nats/nats-server.log").read_text())
    assert trapped == ["terminated"]


def _get(url: str) -> tuple[int, bytes]:
    import urllib.request

    with urllib.request.urlopen(url, timeout=2) as resp:
        return resp.status, resp.read()


@pytest.mark.integration
async def test_nexus_sub_prints_decoded_messages(nats_url: str, uid: str, bus: Bus) -> None:
    proc = await asyncio.create_subprocess_exec(
        NEXUS, "sub", subjects.trade(uid, "*"), "--nats-url", nats_url, "--count", "2", "--timeout", "20",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        trade = m.Trade(
            venue=uid, symbol="A", venue_symbol="A", trade_id="9", price=Decimal("1.5"), size=Decimal(2)
        )

        async def publish_until_done() -> None:
            while proc.returncode is None:
                await bus.publish(trade)
                await bus.publish_raw(subjects.trade(uid, "B"), b"junk")
                await asyncio.sleep(0.2)

        pub = asyncio.create_task(publish_until_done())
        out, _ = await asyncio.wait_for(proc.communicate(), 20)
        pub.cancel()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    lines = out.decode().splitlines()
    assert len(lines) == 2
    assert any(
        line.startswith(f"{subjects.trade(uid, 'A')} trade {{") and '"price":"1.5"' in line for line in lines
    )


def test_nexus_schema_writes_a_schema_per_public_message(tmp_path: Path) -> None:
    subprocess.run([NEXUS, "schema", "--out", str(tmp_path)], check=True, capture_output=True, timeout=30)
    index = json.loads((tmp_path / "index.json").read_text())
    assert set(index["messages"]) == {m.tag_of(k) for k in m.PUBLIC_MESSAGES}


def test_compose_runs_every_service_from_a_module_that_exists() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    nats_nodes = [name for name, svc in services.items() if str(svc.get("image", "")).startswith("nats:")]
    assert len(nats_nodes) == 3, "a 3-node NATS cluster"
    for name in nats_nodes:
        assert "--jetstream" in services[name]["command"]
        assert "healthcheck" in services[name]
    modules = {}
    for name, svc in services.items():
        if name in nats_nodes:
            continue
        command = svc["command"]
        assert command[:2] == ["python", "-m"], name
        modules[name] = command[2]
        assert importlib.util.find_spec(command[2]) is not None, f"{name}: no module {command[2]}"
        assert "healthcheck" in svc, name
        for dep in nats_nodes:
            assert svc["depends_on"][dep]["condition"] == "service_healthy", name
    assert set(modules.values()) >= {module for _, module, _ in SERVICES}
    dockerfile = ROOT / compose["x-nexus"]["build"]["dockerfile"]
    assert dockerfile.is_file()
