"""Trade latency under a quote flood: does a flood of quotes (and a slow quote consumer) delay trades?

    python bench/bench_feed_flood.py [--runs 3] [--quick]

The feed-handler service runs as its own process with two synthetic feeds: `trades` (300 trades/s, each
with its quote) and, in the flood scenarios, `flood` (quotes and L2 deltas for 8 symbols as fast as the
handler publishes them). Two slow consumers subscribe to the flood's quotes: one that takes 1 ms per
message (nats-py drops what it cannot hold), and one that subscribes and then never reads its socket
(the server cuts it off as a slow consumer). Trade latency = adapter receive (ts_recv) -> trade
subscriber callback, wall clock.

Scenarios, each in a fresh process: no flood; flood with trades on their own NATS connection
(Service.dedicated_p0, the default); flood with trades sharing the quotes' connection. Printed beside the
raw nats-py request/reply round trip of the same run (a same-run baseline for loopback latency).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import msgspec
import nats
import nats.errors
import numpy as np

from common import Latency, header, nats_server, parser, raw_request_reply, run
from nexus import subjects
from nexus.procs import die_with_parent, free_port

LAUNCH = """
import sys
from feed_handler.service import FeedHandler
FeedHandler.dedicated_p0 = sys.argv[1] == "dedicated"
from nexus.runtime import main
main(FeedHandler)
"""


class _Stamp(msgspec.Struct):
    ts_recv: int = 0


_stamp = msgspec.json.Decoder(_Stamp)


def toml(venue: str, flood: bool) -> str:
    text = f"""
[[feed]]
name = "trades"
kind = "synthetic"
venue = "{venue}t"
rate = 300
trade_ratio = 1.0
book_levels = 0
seed = 1
"""
    if flood:
        text += f"""
[[feed]]
name = "flood"
kind = "synthetic"
venue = "{venue}q"
rate = 0
trade_ratio = 0.0
book_levels = 5
seed = 2
"""
    return text


async def _quiet(exc: Exception) -> None:
    """The slow consumer's drops are expected: no log line per drop in the measuring process."""


async def _stalled_consumer(url: str, subject: str) -> asyncio.StreamWriter:
    """A client that subscribes and never reads again: the classic slow consumer, cut off by the server."""
    host, _, port = url.removeprefix("nats://").rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    await reader.readline()  # INFO
    writer.write(f'CONNECT {{"verbose":false}}\r\nSUB {subject} 1\r\n'.encode())
    await writer.drain()
    return writer


def get(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())  # type: ignore[no-any-return]


async def scenario(url: str, flood: bool, p0: str, seconds: float) -> tuple[Latency, float, float]:
    """(trade latency, flood msgs/s published, flood conflated+dropped)."""
    venue = f"fl{time.monotonic_ns() % 10**8}"
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="nexus-bench-flood-") as tmp:
        config = Path(tmp) / "feeds.toml"
        config.write_text(toml(venue, flood))
        env = {
            **os.environ,
            "NEXUS_NATS_URL": url,
            "NEXUS_INSTANCE": venue,
            "NEXUS_HTTP_PORT": str(port),
            "NEXUS_CONFIG_FILE": str(config),
            "NEXUS_LOG_LEVEL": "warning",
            "NEXUS_LOG_FORMAT": "json",
        }
        proc = subprocess.Popen(
            [sys.executable, "-c", LAUNCH, p0],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(200):
                try:
                    get(base + "/readyz")
                    break
                except OSError:
                    await asyncio.sleep(0.05)
            nc = await nats.connect(url)
            slow = await nats.connect(url, error_cb=_quiet)
            stalled = await _stalled_consumer(url, subjects.quote(f"{venue}q", "*"))
            lat: list[int] = []

            async def on_trade(msg: nats.aio.msg.Msg) -> None:
                lat.append(time.time_ns() - _stamp.decode(msg.data).ts_recv)

            async def on_quote_slowly(msg: nats.aio.msg.Msg) -> None:
                await asyncio.sleep(0.001)

            await nc.subscribe(subjects.trade(f"{venue}t", "*"), cb=on_trade)
            await slow.subscribe(
                subjects.quote(f"{venue}q", "*"), cb=on_quote_slowly, pending_msgs_limit=1000
            )
            await nc.flush()
            await asyncio.sleep(1.0)  # warm-up
            before = get(base + "/stats")["stats"]
            lat.clear()
            t0 = time.perf_counter()
            await asyncio.sleep(seconds)
            after = get(base + "/stats")["stats"]
            elapsed = time.perf_counter() - t0
            await nc.close()
            await slow.close()
            stalled.close()
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    published = (after["md_published_total"] - before["md_published_total"]) / elapsed  # type: ignore[operator]
    lost = after["md_conflated_total"] + after["md_dropped_total"]  # type: ignore[operator]
    return Latency.of(np.asarray(lat, dtype=np.int64)), float(published), float(lost)


async def _round_trip(url: str, attempts: int = 3) -> Latency:
    """common.raw_request_reply, retried (bounded): its first request can race the responder's interest."""
    for attempt in range(attempts):
        try:
            return await raw_request_reply(url, 2000, b"x" * 200)
        except nats.errors.NoRespondersError:
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(0.2)
    raise AssertionError("unreachable")


def main() -> None:
    args = parser(__doc__ or "").parse_args()
    seconds = 3.0 if args.quick else 8.0
    runs = 1 if args.quick else args.runs
    header(f"feed handler: trade latency under a quote flood ({seconds:.0f} s per scenario, {runs} runs)")
    rows: dict[str, list[tuple[Latency, float, float]]] = {"none": [], "dedicated": [], "shared": []}
    rr: list[Latency] = []
    with nats_server(args.nats_url) as url:
        for _ in range(runs):
            rr.append(run(_round_trip(url)))
            rows["none"].append(run(scenario(url, False, "dedicated", seconds)))
            rows["dedicated"].append(run(scenario(url, True, "dedicated", seconds)))
            rows["shared"].append(run(scenario(url, True, "shared", seconds)))
    mid = sorted(rr, key=lambda x: x.p99_us)[len(rr) // 2]
    print(f"raw nats-py request/reply round trip          {mid}")
    rr_p99 = [r.p99_us for r in rr]
    print(f"{'':35}over {len(rr)} runs: p99 {min(rr_p99):,.0f}-{max(rr_p99):,.0f} µs")
    labels = {
        "none": "trades, no flood                 ",
        "dedicated": "trades + flood, own p0 connection ",
        "shared": "trades + flood, shared connection ",
    }
    for key, samples in rows.items():
        lat = sorted((s[0] for s in samples), key=lambda x: x.p99_us)[len(samples) // 2]
        pub = sorted(s[1] for s in samples)[len(samples) // 2]
        lost = sorted(s[2] for s in samples)[len(samples) // 2]
        p50 = [s[0].p50_us for s in samples]
        p99 = [s[0].p99_us for s in samples]
        print(f"{labels[key]} {lat}   published {pub:,.0f} msgs/s, conflated+dropped {lost:,.0f}")
        print(
            f"{'':35}over {len(samples)} runs: p50 {min(p50):,.0f}-{max(p50):,.0f} µs, "
            f"p99 {min(p99):,.0f}-{max(p99):,.0f} µs"
        )


if __name__ == "__main__":
    main()
