"""The `nexus` command.

nexus up [--nats-url URL]      embedded nats-server (unless --nats-url), all services, demo traffic
nexus sub SUBJECT              print every message on a subject (wildcards allowed), decoded
nexus schema [--out DIR]       write the JSON Schema of every public message
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import nats
import nats.errors
from nats.aio.msg import Msg

from nexus import messages, schema, subjects
from nexus.errors import NatsServerError
from nexus.logs import configure_logging, get_logger
from nexus.natsserver import NatsServer
from nexus.procs import free_port
from nexus.subjects import ANY
from nexus.supervisor import ChildSpec, Supervisor

SERVICES: tuple[tuple[str, str, int], ...] = (
    # name, module (python -m), HTTP port offset from --http-port-base
    ("monitor", "monitor", 0),
    ("feed-handler", "feed_handler", 1),
    ("order-engine", "order_engine", 2),
    ("risk", "risk", 3),
    ("optimizer", "optimizer", 4),
    ("demo-traffic", "order_engine.demo", 5),  # a market maker and takers on the order engine
)
"""Everything `nexus up` starts, in start order. The monitor's port is the dashboard."""

SERVICE_ENV: dict[str, dict[str, str]] = {
    "order-engine": {"NEXUS_ENGINE_INPUT": "approved"},  # risk sits in front: the engine reads ORD_OK
}
"""Settings `nexus up` gives one service (compose.yaml says the same)."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nexus", description="Nexus trading backbone")
    sub = p.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="start NATS (embedded unless --nats-url) and every service")
    up.add_argument("--nats-url", help="use this NATS (comma-separated list) instead of starting one")
    up.add_argument("--nats-port", type=int, default=4222, help="embedded NATS client port (0 = any free)")
    up.add_argument(
        "--nats-monitor-port", type=int, default=8222, help="embedded NATS monitoring port (0 = any)"
    )
    up.add_argument("--http-port-base", type=int, default=8100, help="first service HTTP port (0 = any free)")
    up.add_argument(
        "--data-dir", default="var", help="local state: NATS store, snapshots (make clean removes)"
    )
    up.add_argument("--instance", default="1", help="instance name of every service started")
    up.add_argument("--only", default="", help="comma-separated subset of services to start")

    s = sub.add_parser("sub", help="print decoded messages from a subject (wildcards allowed)")
    s.add_argument("subject")
    s.add_argument("--nats-url", default=os.environ.get("NEXUS_NATS_URL", "nats://127.0.0.1:4222"))
    s.add_argument("--count", type=int, default=0, help="stop after this many messages (0 = never)")
    s.add_argument("--timeout", type=float, default=0.0, help="stop after this many seconds (0 = never)")

    sc = sub.add_parser("schema", help="write the JSON Schema of every public message")
    sc.add_argument("--out", default="docs/schema")
    return p


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.command == "schema":
        for path in schema.write(args.out):
            print(path)
        return
    if args.command == "sub":
        sys.exit(asyncio.run(_sub(args)))
    configure_logging("info", "auto", service="nexus")
    args.data_dir = Path(args.data_dir).resolve()
    sys.exit(asyncio.run(_up(args)))


# -- nexus sub --------------------------------------------------------------------------------------


async def _sub(args: argparse.Namespace) -> int:
    try:
        nc = await nats.connect(args.nats_url.split(","), connect_timeout=2, max_reconnect_attempts=3)
    except (OSError, nats.errors.Error) as exc:
        print(f"cannot connect to {args.nats_url}: {exc!r}", file=sys.stderr)
        return 1
    done = asyncio.Event()
    seen = 0
    decoder = messages.decoder(messages.AnyMessage)

    async def on_msg(msg: Msg) -> None:
        nonlocal seen
        try:
            obj = decoder.decode(msg.data)
            line = f"{msg.subject} {messages.tag_of(type(obj))} {msg.data.decode()}"
        except messages.DECODE_ERRORS as exc:
            line = f"{msg.subject} !undecodable ({exc}) {msg.data[:200]!r}"
        print(line, flush=True)
        seen += 1
        if args.count and seen >= args.count:
            done.set()

    await nc.subscribe(args.subject, cb=on_msg)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, done.set)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(done.wait(), args.timeout or None)
    await nc.drain()
    return 0


# -- nexus up ---------------------------------------------------------------------------------------


def _child_specs(args: argparse.Namespace) -> list[ChildSpec]:
    only = {name.strip() for name in args.only.split(",") if name.strip()}
    unknown = only - {name for name, _, _ in SERVICES}
    if unknown:
        raise SystemExit(f"nexus up: unknown service(s) in --only: {', '.join(sorted(unknown))}")
    specs = []
    for name, module, offset in SERVICES:
        if only and name not in only:
            continue
        port = args.http_port_base + offset if args.http_port_base else free_port()
        specs.append(ChildSpec(name=name, module=module, http_port=port, env=SERVICE_ENV.get(name, {})))
    return specs


def _endpoint_table(nats_url: str, nats_monitor: str, specs: list[ChildSpec]) -> str:
    rows = [("NATS", nats_url), ("NATS monitoring", nats_monitor or "-")]
    rows += [(spec.name, f"{spec.url}/docs") for spec in specs]
    dashboard = next((s.url for s in specs if s.name == "monitor"), "")
    if dashboard:
        rows.append(("dashboard", f"{dashboard}/"))
    width = max(len(name) for name, _ in rows)
    lines = ["", "Nexus is up:", *(f"  {name.ljust(width)}  {url}" for name, url in rows)]
    lines += [
        "",
        f"  watch it:  nexus sub '{subjects.heartbeat(ANY, ANY)}' --nats-url {nats_url}",
        "  stop it:   Ctrl-C",
        "",
    ]
    return "\n".join(lines)


async def _up(args: argparse.Namespace) -> int:
    log = get_logger("nexus.up")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # SIGHUP: the terminal closed
        loop.add_signal_handler(sig, stop.set)

    data_dir: Path = args.data_dir
    server: NatsServer | None = None
    if args.nats_url:
        nats_url, monitor = args.nats_url, ""
    else:
        server = NatsServer(
            data_dir / "nats",
            port=args.nats_port or -1,
            monitor_port=args.nats_monitor_port or -1,
        )
        try:
            await asyncio.to_thread(server.start)
        except NatsServerError as exc:
            log.error("nats.start_failed", error=str(exc))
            return 1
        nats_url, monitor = server.url, server.monitor_url
        log.info("nats.started", url=nats_url, monitor=monitor, pid=server.pid, store=str(data_dir / "nats"))

    specs = _child_specs(args)
    env = {
        **os.environ,
        "NEXUS_NATS_URL": nats_url,
        "NEXUS_INSTANCE": args.instance,
        "NEXUS_DATA_DIR": str(data_dir),
    }
    supervisor = Supervisor(specs, env)
    try:
        await supervisor.start()
        print(_endpoint_table(nats_url, monitor, specs), flush=True)
        await stop.wait()
        log.info("nexus.stopping")
    finally:
        await supervisor.stop()
        if server is not None:
            await asyncio.to_thread(server.stop)
            log.info("nats.stopped")
    return 0


if __name__ == "__main__":
    main()
