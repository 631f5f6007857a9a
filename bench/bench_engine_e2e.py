"""End to end over NATS with durability on: an order engine process, a client process (this one).

    python bench/bench_engine_e2e.py [--runs 3] [--quick] [--rate 5000] [--client lean|nats-py]

Orders go into JetStream (ORD_IN, file storage, Nats-Msg-Id per order, PubAck per order); the engine
consumes them in order, stores every execution report and trade in its output streams (each one acked by
the server before the input is acked) and the streams republish them to ord.exec / md.p0. Workload:
pairs of a resting sell and a buy IOC that fills it (AAPL, 1 lot), so every other order trades. The
client speaks the NATS protocol itself (bench/lean_nats.py), so that it takes less of the two cores the
engine and the server need; `--client nats-py` runs the same orders through nats-py.

- latency at a fixed rate: submit -> accepted and submit -> fill (the taker's filled report), measured as
  the report's arrival time minus the command's `ts` (the engine copies it into `ts_cmd`), p50/p99;
- highest sustained rate: orders sent as fast as the window of unanswered orders allows, answers/s;
- baselines in the same run: raw nats-py request/reply round trip (echo responder) on the same server,
  and the durable chain with no engine in it (bench/durable_relay.py: JetStream in, the workload's outputs
  stored in two chained streams and republished, batched acks, written with nats-py alone) driven by the
  same client at the same rate - the floor the box gives the engine's design.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import msgspec
import nats
import numpy as np
from nats.aio.msg import Msg

import durable_relay
from common import Latency, Runs, header, nats_server, parser, raw_request_reply, run
from lean_nats import LeanConnection
from nexus import messages as m
from nexus import streams, subjects
from nexus.bus import MSG_ID
from nexus.messages import ExecType, NewOrder, Side, TimeInForce
from nexus.procs import die_with_parent
from nexus.testing import ServiceProcess, wait_for

SYMBOL = "AAPL"
PRICE = Decimal("228.50")
ONE = Decimal(1)


class Answer(msgspec.Struct):
    """The few fields of an ExecReport the client times (msgspec skips the rest unparsed)."""

    client_order_id: str
    exec_type: ExecType
    ts_cmd: int = 0
    liquidity: str = ""


class Client:
    """A client that sends orders into JetStream (Nats-Msg-Id, a PubAck for each) and times their
    reports, over nats-py (`lean=False`) or over a bare protocol connection (`lean`, bench/lean_nats.py),
    which does the same on the wire with less of the CPU the engine and the server share with it."""

    def __init__(self, url: str, tag: str, relay: bool = False, lean: bool = True) -> None:
        """`relay`: send to the durable relay (bench/durable_relay.py) instead of the engine."""
        self.url = url
        self.tag = tag
        self.relay = relay
        self.lean = lean
        self.sent = 0
        self.acked = 0
        self.ack_errors = 0
        self.answered = 0
        self.accepted: list[int] = []
        self.filled: list[int] = []
        self.inbox = f"_INBOX.{tag}{os.getpid()}"
        self.decoder = msgspec.json.Decoder(Answer)
        self.progress = asyncio.Event()
        """Set on every answer (the saturated run waits on it instead of polling)."""
        self.nc: nats.aio.client.Client | None = None
        self.conn: LeanConnection | None = None

    async def start(self) -> None:
        reports = durable_relay.REPORTS if self.relay else subjects.exec_report("*", SYMBOL)
        if self.lean:
            self.conn = await LeanConnection.open(self.url, self._on_lean)
            self.conn.subscribe(self.inbox + ".*", 1)
            self.conn.subscribe(reports, 2)
            await self.conn.flush()
            return
        self.nc = await nats.connect(self.url, pending_size=64 * 1024 * 1024)
        for subject, cb in ((self.inbox + ".*", self._on_ack), (reports, self._on_report)):
            await self.nc.subscribe(subject, cb=cb, pending_msgs_limit=-1, pending_bytes_limit=-1)
        await self.nc.flush()

    async def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        if self.nc is not None:
            await self.nc.close()

    def _on_lean(self, sid: int, data: bytes) -> None:
        if sid == 1:
            self.ack(data)
        else:
            self.report(data)

    async def _on_ack(self, msg: Msg) -> None:
        self.ack(msg.data)

    async def _on_report(self, msg: Msg) -> None:
        self.report(msg.data)

    def ack(self, data: bytes) -> None:
        if b'"error"' in data or not data:
            self.ack_errors += 1
        self.acked += 1

    def report(self, data: bytes) -> None:
        now = time.time_ns()
        r = self.decoder.decode(data)
        if not r.client_order_id.startswith(self.tag):
            return
        if r.exec_type is ExecType.ACCEPTED or r.exec_type is ExecType.REJECTED:
            self.answered += 1
            self.accepted.append(now - r.ts_cmd)
            self.progress.set()
        elif r.exec_type is ExecType.FILLED and r.liquidity == "taker":
            self.filled.append(now - r.ts_cmd)

    async def wait_answered(self, n: int, timeout: float) -> None:
        deadline = time.perf_counter() + timeout
        while self.answered < n and time.perf_counter() < deadline:
            self.progress.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.progress.wait(), 0.5)

    async def send(self) -> None:
        """The next order of the workload: even = resting sell, odd = buy IOC that fills it."""
        i = self.sent
        self.sent += 1
        taker = i % 2 == 1
        cmd = NewOrder(
            account="tk" if taker else "mk",
            client_order_id=f"{self.tag}{i}",
            symbol=SYMBOL,
            side=Side.BUY if taker else Side.SELL,
            qty=ONE,
            price=PRICE,
            tif=TimeInForce.IOC if taker else TimeInForce.GTC,
            ts=time.time_ns(),
        )
        subject = durable_relay.command_subject(cmd.account) if self.relay else subjects.subject_for(cmd)
        msg_id = streams.command_id(cmd.account, cmd.client_order_id)
        if self.conn is not None:
            self.conn.hpub(subject, f"{MSG_ID}: {msg_id}".encode(), m.encode(cmd), reply=f"{self.inbox}.{i}")
            return
        assert self.nc is not None
        await self.nc.publish(subject, m.encode(cmd), reply=f"{self.inbox}.{i}", headers={MSG_ID: msg_id})


async def fixed_rate(
    url: str, rate: float, seconds: float, tag: str, relay: bool = False, lean: bool = True
) -> tuple[Latency, Latency | None, float]:
    client = Client(url, tag, relay, lean)
    await client.start()
    n = int(rate * seconds)
    t0 = time.perf_counter()
    for i in range(n):
        delay = t0 + i / rate - time.perf_counter()
        if delay > 0.0005:
            await asyncio.sleep(delay)
        await client.send()
    await client.wait_answered(n, 30)
    elapsed = time.perf_counter() - t0
    await check_acks(client, n)
    await client.close()
    if client.answered < n:
        raise RuntimeError(f"only {client.answered} of {n} answered")
    # drop the first second: connection set-up and the engine's first batches
    warm = int(rate)
    accepted = Latency.of(np.array(client.accepted[warm:]))
    filled = Latency.of(np.array(client.filled[warm // 2 :])) if client.filled else None
    return accepted, filled, n / elapsed


async def saturated(url: str, n: int, window: int, tag: str, relay: bool = False, lean: bool = True) -> float:
    client = Client(url, tag, relay, lean)
    await client.start()
    t0 = time.perf_counter()
    while client.sent < n:
        if client.sent - client.answered >= window:
            client.progress.clear()
            await client.progress.wait()
            continue
        await client.send()
        if client.sent % 200 == 0:
            await asyncio.sleep(0)  # let acks and reports in
    await client.wait_answered(n, 60)
    elapsed = time.perf_counter() - t0
    await check_acks(client, n)
    await client.close()
    if client.answered < n:
        raise RuntimeError(f"only {client.answered} of {n} answered")
    return n / elapsed


async def check_acks(client: Client, n: int) -> None:
    """Every order was stored: one PubAck each, none an error (the acks are on their way before the
    answers: the engine reads an order only once it is stored)."""
    with contextlib.suppress(TimeoutError):
        await wait_for(lambda: client.acked >= n, timeout=5)
    if client.acked < n or client.ack_errors:
        raise RuntimeError(f"{client.acked} PubAcks of {n}, {client.ack_errors} errors")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its reaped children (the engine's snapshot forks)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@contextlib.contextmanager
def relay_process(url: str) -> Iterator[int]:
    """bench/durable_relay.py in its own process (as the engine runs in its own); yields its pid."""
    script = Path(__file__).with_name("durable_relay.py")
    proc = subprocess.Popen(
        [sys.executable, str(script), url], stdout=subprocess.PIPE, preexec_fn=die_with_parent
    )
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != b"ready":
            raise RuntimeError(f"the durable relay did not start (exit code {proc.wait(5)})")
        yield proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("--rate", type=float, default=5_000.0, help="orders/s of the fixed-rate latency run")
    p.add_argument(
        "--client",
        choices=("lean", "nats-py"),
        default="lean",
        help="the load generator's connection: bench/lean_nats.py (default) or nats-py",
    )
    args = p.parse_args()
    lean = args.client == "lean"
    seconds = 3.0 if args.quick else 10.0
    n_sat = 20_000 if args.quick else 100_000
    header(
        f"order engine end to end over NATS, durable (fixed rate {args.rate:,.0f}/s; saturated {n_sat:,};"
        f" client: {args.client})"
    )
    payload = m.encode(
        NewOrder(account="mk", client_order_id="x", symbol=SYMBOL, side=Side.SELL, qty=ONE, price=PRICE)
    )
    with (
        tempfile.TemporaryDirectory(prefix="nexus-bench-engine-") as tmp,
        nats_server(args.nats_url) as url,
        relay_process(url) as relay_pid,
    ):
        engine = ServiceProcess(
            "order_engine",
            nats_url=url,
            instance="bench",
            env={"NEXUS_DATA_DIR": str(Path(tmp) / "var"), "NEXUS_LOG_LEVEL": "warning"},
            log_path=Path(tmp) / "engine.log",
        ).start()
        try:
            engine.wait_ready(30)
            base, acc_p50, acc_p99, fill_p50, fill_p99, sat = Runs(), Runs(), Runs(), Runs(), Runs(), Runs()
            cpu_engine, cpu_client = Runs(), Runs()
            relay_p50, relay_p99, relay_sat, cpu_relay = Runs(), Runs(), Runs(), Runs()
            for r in range(args.runs):  # interleaved, so all see the same machine noise
                base_lat = run(raw_request_reply(url, 5_000, payload))
                base.add(base_lat.p50_us)
                accepted, filled, _ = run(fixed_rate(url, args.rate, seconds, f"L{r}-", lean=lean))
                acc_p50.add(accepted.p50_us)
                acc_p99.add(accepted.p99_us)
                fill_p50.add(filled.p50_us)
                fill_p99.add(filled.p99_us)
                e0, c0 = _cpu_seconds(engine.pid), _own_cpu_seconds()
                sat.add(run(saturated(url, n_sat, 4_000, f"S{r}-", lean=lean)))
                cpu_engine.add((_cpu_seconds(engine.pid) - e0) / n_sat * 1e6)
                cpu_client.add((_own_cpu_seconds() - c0) / n_sat * 1e6)
                relayed, _, _ = run(fixed_rate(url, args.rate, seconds, f"R{r}-", relay=True, lean=lean))
                relay_p50.add(relayed.p50_us)
                relay_p99.add(relayed.p99_us)
                r0 = _cpu_seconds(relay_pid)
                relay_sat.add(run(saturated(url, n_sat, 4_000, f"Q{r}-", relay=True, lean=lean)))
                cpu_relay.add((_cpu_seconds(relay_pid) - r0) / n_sat * 1e6)
                print(f"run {r + 1}: raw req/rep {base_lat}")
                print(f"       accepted    {accepted}\n       filled      {filled}")
                print(f"       relay       {relayed}")
                engine_rate, relay_rate = sat.values[-1], relay_sat.values[-1]
                print(f"       sustained   engine {engine_rate:,.0f}  relay {relay_rate:,.0f} orders/s")
            _, stats = engine.get("/stats")
        finally:
            code = engine.terminate()
    print()
    print(f"raw nats-py request/reply p50 µs            {base}")
    print(f"submit->accepted at {args.rate:,.0f}/s  p50 µs          {acc_p50}")
    print(f"submit->accepted at {args.rate:,.0f}/s  p99 µs          {acc_p99}")
    print(f"submit->fill     at {args.rate:,.0f}/s  p50 µs          {fill_p50}")
    print(f"submit->fill     at {args.rate:,.0f}/s  p99 µs          {fill_p99}")
    print(f"highest sustained (window 4,000) orders/s     {sat}")
    print(f"durable relay, no engine: stored report at {args.rate:,.0f}/s p50 µs  {relay_p50}")
    print(f"durable relay, no engine: stored report at {args.rate:,.0f}/s p99 µs  {relay_p99}")
    print(f"durable relay, no engine: sustained orders/s  {relay_sat}")
    print(f"ratio accepted p50 / raw request-reply p50    {acc_p50.median / base.median:.1f}")
    print(f"ratio accepted p99 / durable relay p99        {acc_p99.median / relay_p99.median:.1f}")
    print(
        f"CPU per order, saturated: engine µs {cpu_engine}, this client µs {cpu_client}, relay µs {cpu_relay}"
    )
    s = stats["stats"]
    print(
        f"engine: {s['commands_total']:,.0f} commands, {s['outputs_published_total']:,.0f} outputs stored, "
        f"{s['batches_total']:,.0f} batches, exit code {code}"
    )
    latency_met = acc_p99.median <= 5_000 and fill_p99.median <= 5_000
    print(
        f"goals: p99 <= 5 ms at 5k/s: {'met' if latency_met else 'NOT met'}; "
        f">= 15k orders/s sustained: {'met' if sat.median >= 15_000 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
