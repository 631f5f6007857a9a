"""Shared benchmark kit: same-run baselines, percentiles, medians over repeats, the machine line.

Every benchmark prints its figures next to a baseline measured in the same run (e.g. the raw nats-py
ceiling) and the machine it ran on. Latency: HDR-style percentiles from raw nanosecond samples.
On a shared, noisy machine quote medians over `--runs` repeats and ratios, never a single run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import nats
import numpy as np
import uvloop

from nexus.logs import configure_logging
from nexus.natsserver import NatsServer, find_binary

T = TypeVar("T")


def machine() -> str:
    """CPU model, cores, Python and nats-server versions: printed with every figure."""
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    server = subprocess.run([str(find_binary()), "--version"], capture_output=True, text=True).stdout.strip()
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {server}"


def pct(samples_ns: Sequence[int] | np.ndarray, *qs: float) -> list[float]:
    """Percentiles in microseconds."""
    arr = np.asarray(samples_ns, dtype=np.float64) / 1e3
    return [float(np.percentile(arr, q)) for q in qs]


@dataclass
class Latency:
    p50_us: float
    p99_us: float
    max_us: float
    n: int

    @classmethod
    def of(cls, samples_ns: Sequence[int] | np.ndarray) -> Latency:
        p50, p99, mx = pct(samples_ns, 50, 99, 100)
        return cls(p50, p99, mx, len(samples_ns))

    def __str__(self) -> str:
        return (
            f"p50 {self.p50_us:8.1f} µs  p99 {self.p99_us:8.1f} µs  max {self.max_us:9.1f} µs  (n={self.n})"
        )


@dataclass
class Runs:
    """Collects one figure per repeat; reports the median and the spread."""

    values: list[float] = field(default_factory=list)

    def add(self, v: float) -> None:
        self.values.append(v)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def __str__(self) -> str:
        lo, hi = min(self.values), max(self.values)
        return f"{self.median:,.0f} (median of {len(self.values)}, range {lo:,.0f}-{hi:,.0f})"


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--runs", type=int, default=5, help="repeats; medians are reported")
    p.add_argument("--quick", action="store_true", help="small sizes (a smoke run, not for BENCHMARKS.md)")
    p.add_argument("--nats-url", default="", help="use this NATS instead of starting one on loopback")
    return p


@contextmanager
def nats_server(url: str = "") -> Iterator[str]:
    """A fresh nats-server on a free loopback port with JetStream in a temp dir (or the given URL)."""
    if url:
        yield url
        return
    with tempfile.TemporaryDirectory(prefix="nexus-bench-") as tmp, NatsServer(tmp) as server:
        yield server.url


async def raw_pubsub_ceiling(url: str, n: int, payload: bytes) -> float:
    """The raw nats-py publish->subscribe ceiling: messages/s seen by one subscriber on another
    connection, no encoding or decoding. The baseline a Nexus pipeline is compared with."""
    pub = await nats.connect(url)
    sub_nc = await nats.connect(url)
    done = asyncio.Event()
    count = 0

    async def on_msg(_: object) -> None:
        nonlocal count
        count += 1
        if count == n:
            done.set()

    await sub_nc.subscribe("bench.ceiling", cb=on_msg, pending_msgs_limit=n + 1, pending_bytes_limit=-1)
    await sub_nc.flush()
    t0 = time.perf_counter()
    for _ in range(n):
        await pub.publish("bench.ceiling", payload)
    await pub.flush()
    await asyncio.wait_for(done.wait(), 120)
    rate = n / (time.perf_counter() - t0)
    await pub.close()
    await sub_nc.close()
    return rate


async def raw_request_reply(url: str, n: int, payload: bytes) -> Latency:
    """The raw nats-py request/reply round trip (an echo responder on another connection)."""
    server = await nats.connect(url)
    client = await nats.connect(url)

    async def echo(msg: nats.aio.msg.Msg) -> None:
        await msg.respond(msg.data)

    await server.subscribe("bench.echo", cb=echo)
    await server.flush()
    for attempt in range(50):  # seen once: "no responders" right after the flush; wait (bounded) for interest
        try:
            await client.request("bench.echo", payload, timeout=5)
            break
        except nats.errors.NoRespondersError:
            if attempt == 49:
                raise
            await asyncio.sleep(0.1)
    samples = np.empty(n, dtype=np.int64)
    for i in range(n):
        t0 = time.perf_counter_ns()
        await client.request("bench.echo", payload, timeout=5)
        samples[i] = time.perf_counter_ns() - t0
    await server.close()
    await client.close()
    return Latency.of(samples)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a measurement on uvloop, the event loop every service runs on."""
    return uvloop.run(coro)


def repeat(runs: int, once: Callable[[], Coroutine[Any, Any, float]]) -> Runs:
    """Run an async measurement `runs` times (fresh each time) and collect the figures."""
    out = Runs()
    for _ in range(runs):
        out.add(run(once()))
    return out


def header(title: str) -> None:
    """Quiet logs (benchmarks print figures, not events) and print the title and machine line."""
    configure_logging("warning", "console")
    print(f"\n## {title}\nmachine: {machine()}\n", flush=True)
