"""python -m feed_handler.simulator --venue binance|coinbase [options]; see feed_handler.simulator."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

import uvloop

from feed_handler.market import SyntheticMarket
from feed_handler.simulator.binance import BinanceVenue
from feed_handler.simulator.coinbase import CoinbaseVenue
from feed_handler.simulator.server import Simulator, Source, Venue
from feed_handler.simulator.sources import ReplaySource, SyntheticSource
from nexus.instruments import load_instruments
from nexus.logs import configure_logging


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m feed_handler.simulator", description=__doc__)
    p.add_argument("--venue", choices=("binance", "coinbase"), required=True)
    p.add_argument("--host", default="127.0.0.1", help="listen address (loopback)")
    p.add_argument(
        "--port", type=int, default=0, help="0 = a free port (printed, and written to --port-file)"
    )
    p.add_argument("--port-file", default="", help="write the port here once listening")
    p.add_argument("--source", choices=("synthetic", "replay"), default="synthetic")
    p.add_argument("--file", default="", help="recorded session to replay (crypto_ws format)")
    p.add_argument("--speed", type=float, default=1.0, help="replay speed; 0 = as fast as possible")
    p.add_argument("--loop", action="store_true", help="replay in a loop")
    p.add_argument("--wait-for-client", action="store_true", help="start the data when a client subscribes")
    p.add_argument("--symbols", default="", help="instrument symbols (default: all shared instruments)")
    p.add_argument("--instruments-file", default="")
    p.add_argument("--rate", type=float, default=200.0, help="synthetic market events per second")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--anchor", type=float, default=None, help="unix time of event 0 (same in a failover pair)"
    )
    p.add_argument("--trade-ratio", type=float, default=0.2)
    p.add_argument("--levels", type=int, default=10, help="book levels per side")
    p.add_argument("--ping-interval", type=float, default=5.0, help="seconds between pings (0 = none)")
    p.add_argument(
        "--heartbeat", action="store_true", help="Coinbase heartbeat channel messages every second"
    )
    p.add_argument("--log-level", default="warning")
    return p.parse_args(argv)


def build(args: argparse.Namespace) -> Simulator:
    source: Source
    venue: Venue
    if args.source == "replay":
        if not args.file:
            raise SystemExit("--source replay needs --file")
        replay = ReplaySource(args.file, speed=args.speed, loop=args.loop)
        venue = BinanceVenue() if args.venue == "binance" else CoinbaseVenue()
        venue.prepare_replay(replay.records)
        source = replay
    else:
        instruments = load_instruments(args.instruments_file or None)
        chosen = [s.strip() for s in args.symbols.split(",") if s.strip()] or list(instruments)
        market = SyntheticMarket(
            [instruments[s] for s in chosen],
            rate=args.rate,
            seed=args.seed,
            trade_ratio=args.trade_ratio,
            book_levels=args.levels,
        )
        venue = BinanceVenue(market) if args.venue == "binance" else CoinbaseVenue(market)
        source = SyntheticSource(market, args.rate, args.anchor)
    return Simulator(
        venue,
        source,
        ping_interval=args.ping_interval,
        wait_for_client=args.wait_for_client,
        heartbeat=args.heartbeat,
    )


async def amain(args: argparse.Namespace) -> int:
    sim = build(args)
    port = await sim.start(args.host, args.port)
    if args.port_file:
        await asyncio.to_thread(_write_port, args.port_file, port)
    print(f"simulator {args.venue} listening on ws://{args.host}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner = asyncio.create_task(sim.run())
    await stop.wait()
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)
    await sim.close()
    return 0


def _write_port(path: str, port: int) -> None:
    tmp = Path(path + ".tmp")
    tmp.write_text(str(port))
    tmp.replace(path)  # atomic: a reader never sees a half-written file


def main() -> None:
    args = parse_args()
    configure_logging(args.log_level, "auto", service="simulator")
    sys.exit(uvloop.run(amain(args)))


if __name__ == "__main__":
    main()
