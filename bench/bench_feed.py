"""Feed-handler throughput and latency: normalised messages published by the real feed-handler service
and seen by a subscriber, beside the raw nats-py publish->subscribe ceiling measured in the same run.

    python bench/bench_feed.py [--runs 5] [--quick]

The service runs as its own process (`python -m feed_handler`, as deployed); the subscriber counts in this
process. Sources, each replayed as fast as possible in a loop:
  normalised   the Binance session's normalised messages (NDJSON): the pipeline itself (outbox, encode,
               NATS) - what the handler can publish when the venue parsing is cheap
  binance      the recorded Binance session (../shared/data/crypto_ws) through the Binance parser and
               the depth book sync: every frame parsed, every book kept
  synthetic    the synthetic venue (GBM market, ladders, trades) as fast as it generates
and, as a floor for venue parsing, bench/bare_venue_relay.py: the same session decoded (prices kept as
strings), re-encoded and published with nothing else in between, in its own process - the most a Python
handler could publish of it here; and, for comparison on the ceiling's own terms, `binance` with the
service in this process (publisher and subscriber sharing one event loop, as in the ceiling). A second
baseline matches the service's topology: raw nats-py publishing pre-encoded payloads from another process,
counted by the same subscriber (on 2 cores, publisher + subscriber + nats-server in separate processes
compete for the CPU).
Latency is adapter receive (ts_recv) -> subscriber callback (wall clock, same machine): at saturation it
is mostly queueing, so it is also measured at a moderate fixed rate (synthetic, ~10k msgs/s).
Beside msgs/s, the CPU the publishing process (the service, or the bare relay) used per message seen, from
/proc: three processes share two cores here, so msgs/s moves with contention, CPU per message far less.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path

import msgspec
import nats
import numpy as np

from common import Latency, Runs, header, nats_server, parser, raw_pubsub_ceiling, run
from feed_handler.protocols import recording
from feed_handler.protocols.binance import BinanceProtocol
from feed_handler.service import FeedHandler, FeedHandlerSettings
from nexus import messages as m
from nexus import subjects
from nexus.procs import die_with_parent
from nexus.runtime import Runner
from nexus.settings import load_settings
from nexus.testing import ServiceProcess, wait_for

ROOT = Path(__file__).resolve().parent.parent
BINANCE_REC = ROOT.parent / "shared" / "data" / "crypto_ws" / "BINANCE-b38f7c.0"


class _Stamp(msgspec.Struct):
    ts_recv: int = 0


_stamp = msgspec.json.Decoder(_Stamp)


def sample_quote() -> m.Quote:
    now = time.time_ns()
    return m.Quote(
        venue="binance",
        symbol="ZILUSDT",
        venue_symbol="ZILUSDT",
        seq=499822861,
        ts_event=now,
        ts_recv=now,
        ts_pub=now,
        bid_px=Decimal("0.21437000"),
        bid_sz=Decimal("2800.00000000"),
        ask_px=Decimal("0.21449000"),
        ask_sz=Decimal("11400.00000000"),
    )


class _Collect:
    def __init__(self) -> None:
        self.msgs: list[m.MarketDataMsg] = []

    def emit(self, msg: m.MarketDataMsg) -> None:
        self.msgs.append(msg)

    def bad_input(self, exc: object, raw: object) -> None:
        raise AssertionError(f"the recording must parse: {exc}")

    def gap(self, symbol: str, detail: str) -> None: ...
    def resync(self, symbol: str, reason: str) -> None: ...
    def touch(self) -> None: ...


def write_normalised(path: Path) -> int:
    """The Binance session as NDJSON of Nexus messages (what the Binance adapter would publish)."""
    out = _Collect()
    proto = BinanceProtocol(
        "binance", recording.symbols(BINANCE_REC, "binance"), out, need_snapshot=lambda s: None
    )
    for rec in recording.records(BINANCE_REC):
        t = int(rec.ts * 1e9)
        if rec.kind == "recv":
            proto.on_frame(rec.payload, t)
        elif rec.kind == "rest":
            proto.on_snapshot(rec.rest_symbol, rec.payload, t)
    path.write_bytes(b"\n".join(m.encode(msg) for msg in out.msgs) + b"\n")
    return len(out.msgs)


def feed_toml(source: str, venue: str, ndjson: Path, rate: float = 0) -> str:
    if source in ("binance", "normalised"):
        path = BINANCE_REC if source == "binance" else ndjson
        return f"""
[[feed]]
name = "{venue}"
kind = "replay"
venue = "{venue}"
path = "{path}"
speed = 0
loop = true
autostart = false
"""
    return f"""
[[feed]]
name = "{venue}"
kind = "synthetic"
venue = "{venue}"
rate = {rate}
seed = 1
autostart = false
"""


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


async def count(
    url: str,
    venue: str,
    start: Callable[[], Awaitable[None]],
    n: int,
    seconds: float,
    *,
    cpu: Callable[[], float] | None = None,
    spent: list[float] | None = None,
) -> tuple[float, Latency]:
    """Subscribe to the venue's trades, quotes and book, start the feed, count: (msgs/s, latency). With
    `cpu` (the publishing process's CPU seconds so far), the CPU it used per message seen, in µs, is
    appended to `spent`: a figure that contention for the two cores moves far less than msgs/s."""
    sub = await nats.connect(url)
    done = asyncio.Event()
    seen = 0
    first = last = 0.0
    lat: list[int] = []

    async def on_msg(msg: nats.aio.msg.Msg) -> None:
        nonlocal seen, first, last
        seen += 1
        last = time.perf_counter()
        if seen == 1:
            first = last
        if seen % 8 == 0:
            lat.append(time.time_ns() - _stamp.decode(msg.data).ts_recv)
        if n and seen >= n:
            done.set()

    for subject in (subjects.trade(venue, "*"), subjects.quote(venue, "*"), subjects.book(venue, "*")):
        await sub.subscribe(subject, cb=on_msg, pending_msgs_limit=max(n, 10**6), pending_bytes_limit=-1)
    await sub.flush()
    await start()
    cpu0 = cpu() if cpu is not None else 0.0
    if n:
        await asyncio.wait_for(done.wait(), 300)
    else:
        await asyncio.sleep(seconds)
    if cpu is not None and spent is not None and seen:
        spent.append((cpu() - cpu0) / seen * 1e6)
    await sub.close()
    rate = (seen - 1) / (last - first) if last > first else 0.0
    return rate, Latency.of(np.asarray(lat[len(lat) // 10 :], dtype=np.int64))


async def in_process(url: str, source: str, ndjson: Path, n: int) -> tuple[float, Latency]:
    venue = f"benchin{time.monotonic_ns() % 10**9}"
    with tempfile.TemporaryDirectory(prefix="nexus-bench-feed-") as tmp:
        config = Path(tmp) / "feeds.toml"
        config.write_text(feed_toml(source, venue, ndjson))
        settings = load_settings(
            FeedHandlerSettings,
            {},
            nats_url=[url],
            instance=venue,
            config_file=str(config),
            heartbeat_interval=5.0,
            status_interval=5.0,
            log_level="warning",
        )
        runner = Runner(FeedHandler, settings)
        task = asyncio.create_task(runner.run(install_signals=False))
        await wait_for(lambda: runner.state == "ready", timeout=30)
        service = runner.service
        assert isinstance(service, FeedHandler)

        async def start() -> None:
            service.manager.start(venue)

        result = await count(url, venue, start, n, 0)
        runner.request_stop()
        await task
        return result


async def as_process(
    url: str,
    source: str,
    ndjson: Path,
    n: int,
    rate: float = 0,
    seconds: float = 0,
    spent: list[float] | None = None,
) -> tuple[float, Latency]:
    venue = f"bench{time.monotonic_ns() % 10**9}"
    with tempfile.TemporaryDirectory(prefix="nexus-bench-feed-") as tmp:
        config = Path(tmp) / "feeds.toml"
        config.write_text(feed_toml(source, venue, ndjson, rate))
        env = {"NEXUS_CONFIG_FILE": str(config), "NEXUS_LOG_LEVEL": "warning", "NEXUS_STATUS_INTERVAL": "5"}
        with ServiceProcess("feed_handler", nats_url=url, instance=venue, env=env) as proc:
            await asyncio.to_thread(proc.wait_ready)

            async def start() -> None:
                req = urllib.request.Request(f"{proc.url}/feeds/{venue}/start", method="POST")
                await asyncio.to_thread(lambda: json.loads(urllib.request.urlopen(req, timeout=5).read()))

            result = await count(
                url, venue, start, n, seconds, cpu=lambda: process_cpu(proc.pid), spent=spent
            )
            proc.terminate()
            return result


RAW_PUBLISHER = """
import asyncio, sys, nats
async def main():
    nc = await nats.connect(sys.argv[1])
    payload = bytes.fromhex(sys.argv[4])
    for _ in range(int(sys.argv[3])):
        await nc.publish(sys.argv[2], payload)
    await nc.flush()
    await nc.close()
asyncio.run(main())
"""


async def raw_cross_process(url: str, n: int, payload: bytes) -> float:
    """Raw nats-py publisher in its own process -> a subscriber here: msgs/s seen."""
    venue = f"raw{time.monotonic_ns() % 10**9}"
    subject = subjects.quote(venue, "X")

    async def start() -> None:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            RAW_PUBLISHER,
            url,
            subject,
            str(n),
            payload.hex(),
            preexec_fn=die_with_parent,
        )
        publishers.append(proc)

    publishers: list[asyncio.subprocess.Process] = []
    rate, _ = await count(url, venue, start, n, 0)
    for proc in publishers:
        await proc.wait()
    return rate


async def bare_floor(url: str, n: int, spent: list[float] | None = None) -> tuple[float, Latency]:
    """bench/bare_venue_relay.py (the Binance session decoded, re-encoded and published, nothing else) in
    its own process -> the subscriber here: msgs/s seen."""
    venue = f"bare{time.monotonic_ns() % 10**9}"
    script = Path(__file__).with_name("bare_venue_relay.py")
    procs: list[asyncio.subprocess.Process] = []

    async def start() -> None:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(script),
            url,
            venue,
            str(BINANCE_REC),
            stdout=asyncio.subprocess.PIPE,
            preexec_fn=die_with_parent,
        )
        procs.append(proc)
        assert proc.stdout is not None
        if (await asyncio.wait_for(proc.stdout.readline(), 30)).strip() != b"ready":
            raise RuntimeError(f"the bare relay did not start (exit code {await proc.wait()})")

    try:
        return await count(url, venue, start, n, 0, cpu=lambda: process_cpu(procs[0].pid), spent=spent)
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.terminate()
            await proc.wait()


def median_latency(samples: list[Latency]) -> str:
    """The median run by p99, and the p50/p99 ranges over every run."""
    mid = sorted(samples, key=lambda x: x.p99_us)[len(samples) // 2]
    p50 = [s.p50_us for s in samples]
    p99 = [s.p99_us for s in samples]
    return (
        f"{mid}\n{'':46}over {len(samples)} runs: p50 {min(p50):,.0f}-{max(p50):,.0f} µs, "
        f"p99 {min(p99):,.0f}-{max(p99):,.0f} µs"
    )


def main() -> None:
    args = parser(__doc__ or "").parse_args()
    n = 40_000 if args.quick else 300_000
    payload = m.encode(sample_quote())
    header(f"feed handler: normalised msgs/s seen by a subscriber vs raw nats-py ({n:,} msgs per figure)")
    figures = {
        k: Runs() for k in ("raw", "raw_x", "bare", "normalised", "binance", "synthetic", "binance_in")
    }
    sat: list[Latency] = []
    steady: list[Latency] = []
    spent: dict[str, list[float]] = {k: [] for k in ("bare", "normalised", "binance", "synthetic")}
    with tempfile.TemporaryDirectory(prefix="nexus-bench-feed-") as tmp, nats_server(args.nats_url) as url:
        ndjson = Path(tmp) / "binance.ndjson"
        msgs = write_normalised(ndjson)
        print(f"(the Binance session normalises to {msgs:,} messages; replays loop over them)\n", flush=True)
        for _ in range(args.runs):  # interleaved so every figure sees the same machine noise
            figures["raw"].add(run(raw_pubsub_ceiling(url, n, payload)))
            figures["raw_x"].add(run(raw_cross_process(url, n, payload)))
            figures["bare"].add(run(bare_floor(url, n, spent["bare"]))[0])
            for source in ("normalised", "binance", "synthetic"):
                rate, lat = run(as_process(url, source, ndjson, n, spent=spent[source]))
                figures[source].add(rate)
                if source == "binance":
                    sat.append(lat)
            figures["binance_in"].add(run(in_process(url, "binance", ndjson, n))[0])
            steady.append(
                run(as_process(url, "synthetic", ndjson, 0, rate=4000, seconds=3 if args.quick else 5))[1]
            )
    raw = figures["raw"].median
    print(f"raw nats-py ceiling ({len(payload)} B quote)        msgs/s  {figures['raw']}")
    print(
        f"raw nats-py, publisher in its own process msgs/s  {figures['raw_x']}"
        f"   ratio {figures['raw_x'].median / raw:.2f}"
    )
    for key, label in (
        ("bare", "floor: Binance session, bare relay"),
        ("normalised", "feed handler, normalised replay"),
        ("binance", "feed handler, Binance session  "),
        ("synthetic", "feed handler, synthetic venue "),
        ("binance_in", "Binance session, in-process   "),
    ):
        print(
            f"{label}          msgs/s  {figures[key]}   ratio {figures[key].median / raw:.2f}"
            f"  (to the cross-process baseline {figures[key].median / figures['raw_x'].median:.2f})"
        )
    cpu = {key: statistics.median(values) for key, values in spent.items()}
    print(
        "CPU of the publishing process per message seen, µs (median; user + system):  "
        + ",  ".join(
            f"{label} {cpu[key]:.1f}"
            for key, label in (
                ("bare", "bare relay"),
                ("binance", "Binance session"),
                ("normalised", "normalised replay"),
                ("synthetic", "synthetic"),
            )
        )
        + f"  (Binance session / bare relay {cpu['binance'] / cpu['bare']:.2f})"
    )
    print(f"latency at saturation (Binance session)       {median_latency(sat)}")
    print(f"latency at ~10k msgs/s (synthetic)            {median_latency(steady)}")


if __name__ == "__main__":
    main()
