"""The websocket adapters against real simulator processes over loopback, publishing to a real
nats-server: the recorded sessions end to end, depth gaps and crossed books resync, malformed venue input
is counted and survived, pings are answered."""

from __future__ import annotations

from pathlib import Path

import pytest

from feed_handler.book import Book
from feed_handler.protocols import recording
from nexus import messages as m
from nexus import subjects
from nexus.bus import Bus
from nexus.testing import wait_for
from tests.feed_handler.helpers import (
    BINANCE_REC,
    COINBASE_REC,
    Collector,
    SimulatorProcess,
    feed_handler,
    service,
    toml_list,
)

pytestmark = pytest.mark.integration


class BookWatcher:
    """Rebuilds every published book from snapshots + deltas, as a consumer would, and counts crossings."""

    def __init__(self) -> None:
        self.books: dict[str, Book] = {}
        self.snapshots = 0
        self.deltas = 0
        self.crossed = 0
        self.orphans = 0

    async def __call__(self, msg: m.BookSnapshot | m.BookDelta) -> None:
        bids = [(str(p), str(s)) for p, s in msg.bids]  # the Decimals' text: what was on the wire
        asks = [(str(p), str(s)) for p, s in msg.asks]
        if isinstance(msg, m.BookSnapshot):
            self.snapshots += 1
            book = self.books[msg.symbol] = Book(msg.symbol)
            book.reset(bids, asks, msg.seq)
        else:
            book = self.books.get(msg.symbol)  # type: ignore[assignment]
            if book is None:
                self.orphans += 1
                return
            self.deltas += 1
            book.apply(bids, asks, msg.seq)
        self.crossed += book.crossed


async def watch(bus: Bus, venue: str) -> tuple[Collector, Collector, BookWatcher]:
    trades, quotes, books = Collector(), Collector(), BookWatcher()
    await bus.subscribe(subjects.trade(venue, "*"), m.Trade, trades)
    await bus.subscribe(subjects.quote(venue, "*"), m.Quote, quotes)
    await bus.subscribe(subjects.book(venue, "*"), m.BookSnapshot | m.BookDelta, books)
    await bus.flush()
    return trades, quotes, books


@pytest.mark.slow
async def test_binance_recorded_session_over_a_websocket_every_message_parsed_books_never_cross(
    tmp_path: Path, nats_url: str, uid: str, bus: Bus
) -> None:
    symbols = recording.symbols(BINANCE_REC, "binance")
    sim_args = ["--venue", "binance", "--source", "replay", "--file", str(BINANCE_REC), "--speed", "40"]
    with SimulatorProcess(tmp_path, *sim_args, "--wait-for-client") as sim:
        trades, quotes, books = await watch(bus, uid)
        toml = f"""
[[feed]]
name = "{uid}"
kind = "binance"
venue = "{uid}"
url = "{sim.ws_url}/stream"
symbols = {toml_list(symbols)}
"""
        async with feed_handler(nats_url, uid, tmp_path, toml) as runner:
            feed = service(runner).manager.feeds[uid]
            await wait_for(lambda: sim.stats()["source_done"], timeout=30, interval=0.2)
            await wait_for(lambda: len(trades) == 1240 and len(quotes) == 5408, timeout=10)
            c = feed.counters
            assert c.errors_total == 0, c.errors_by_reason  # none rejected
            assert c.gaps_total == 0
            assert c.resyncs_total == 0
            assert books.snapshots == 10
            assert books.crossed == 0
            assert books.orphans == 0
            assert books.deltas == 4709 - feed.adapter.stats()["stale_diffs_total"]
            assert sim.stats()["snapshots_served_total"] == 10
            assert len({(t.symbol, t.trade_id) for t in trades.msgs}) == 1240
            t = trades.msgs[0]
            assert t.venue == uid
            assert t.ts_recv >= t.ts_event > 0
            assert t.ts_pub >= t.ts_recv


@pytest.mark.slow
async def test_coinbase_recorded_session_over_a_websocket_every_message_parsed_books_never_cross(
    tmp_path: Path, nats_url: str, uid: str, bus: Bus
) -> None:
    products = recording.symbols(COINBASE_REC, "coinbase")
    sim_args = ["--venue", "coinbase", "--source", "replay", "--file", str(COINBASE_REC), "--speed", "10"]
    with SimulatorProcess(tmp_path, *sim_args, "--wait-for-client") as sim:
        trades, quotes, books = await watch(bus, uid)
        toml = f"""
[[feed]]
name = "{uid}"
kind = "coinbase"
venue = "{uid}"
url = "{sim.ws_url}"
symbols = {toml_list(products)}
"""
        async with feed_handler(nats_url, uid, tmp_path, toml) as runner:
            feed = service(runner).manager.feeds[uid]
            await wait_for(lambda: sim.stats()["source_done"], timeout=30, interval=0.2)
            await wait_for(lambda: len(trades) == 107 and books.deltas == 9719, timeout=10)
            assert feed.counters.errors_total == 0, feed.counters.errors_by_reason
            assert books.snapshots == 10
            assert books.crossed == 0
            assert books.orphans == 0
            assert len(quotes) > 1000


async def test_binance_gap_and_crossed_book_resync_and_bad_input_is_counted_and_survived(
    tmp_path: Path, nats_url: str, uid: str, bus: Bus
) -> None:
    sim_args = [
        "--venue",
        "binance",
        "--rate",
        "300",
        "--symbols",
        "BTC-USD,ETH-USD",
        "--ping-interval",
        "0.3",
    ]
    with SimulatorProcess(tmp_path, *sim_args) as sim:
        trades, quotes, books = await watch(bus, uid)
        toml = f"""
[[feed]]
name = "{uid}"
kind = "binance"
venue = "{uid}"
url = "{sim.ws_url}/stream"
symbols = ["BTCUSD", "ETHUSD"]
"""
        async with feed_handler(nats_url, uid, tmp_path, toml) as runner:
            feed = service(runner).manager.feeds[uid]
            await wait_for(lambda: books.snapshots >= 2 and len(trades) > 5, timeout=15)
            c = feed.counters

            sim.fault("gap", symbol="BTCUSD")
            await wait_for(lambda: c.resyncs_total >= 1 and books.snapshots >= 3, timeout=10)
            assert c.gaps_total >= 1
            assert feed.adapter.stats()["snapshots_total"] >= 3

            sim.fault("crossed", symbol="ETHUSD")
            await wait_for(
                lambda: c.errors_by_reason.get("crossed_book") == 1 and books.snapshots >= 4, timeout=10
            )

            for kind in ("bad_json", "unknown_type", "missing_field", "negative_size"):
                sim.fault(kind)
            await wait_for(lambda: c.errors_total >= 5, timeout=10)
            assert c.errors_by_reason == {
                "crossed_book": 1,
                "invalid_json": 1,
                "unknown_type": 1,
                "missing_field": 1,
                "negative_size": 1,
            }
            before = len(quotes)
            await wait_for(lambda: len(quotes) > before + 20, timeout=10)  # still flowing
            assert str(feed.state) == "live"
            assert books.crossed == 0
            assert books.orphans == 0
            # the venue pings every 0.3 s; each ping must be answered with a pong
            await wait_for(lambda: sim.stats()["pongs_total"] >= 2, timeout=5, interval=0.1)
            details = service(runner).details()["feeds"][uid]
            assert details["errors_total"] == 5
            assert details["gaps_total"] >= 1
            assert service(runner).stats()["feed_errors_total"] == 5


async def test_coinbase_crossed_book_resubscribes_and_bad_input_is_survived(
    tmp_path: Path, nats_url: str, uid: str, bus: Bus
) -> None:
    sim_args = ["--venue", "coinbase", "--rate", "200", "--symbols", "BTC-USD,ETH-USD", "--heartbeat"]
    with SimulatorProcess(tmp_path, *sim_args) as sim:
        trades, _quotes, books = await watch(bus, uid)
        toml = f"""
[[feed]]
name = "{uid}"
kind = "coinbase"
venue = "{uid}"
url = "{sim.ws_url}"
symbols = ["BTC-USD", "ETH-USD"]
channels = ["level2", "matches", "ticker", "heartbeat"]
"""
        async with feed_handler(nats_url, uid, tmp_path, toml) as runner:
            feed = service(runner).manager.feeds[uid]
            c = feed.counters
            await wait_for(lambda: books.snapshots >= 2 and len(trades) > 3, timeout=15)
            sim.fault("crossed", symbol="BTC-USD")
            await wait_for(lambda: books.snapshots >= 3, timeout=10)
            assert c.errors_by_reason == {"crossed_book": 1}
            assert c.resyncs_total == 1
            assert feed.adapter.stats()["resubscribes_total"] == 1
            sim.fault("gap", symbol="ETH-USD")  # a skipped match: the trade ids jump
            for kind in ("bad_json", "unknown_type", "missing_field"):
                sim.fault(kind)
            await wait_for(lambda: c.errors_total == 4 and c.gaps_total >= 1, timeout=10)
            before = len(trades)
            await wait_for(lambda: len(trades) > before + 3, timeout=10)
            assert str(feed.state) == "live"
            assert books.crossed == 0
            ids = [int(t.trade_id) for t in trades.msgs if t.symbol == "BTC-USD"]
            assert ids == sorted(set(ids))  # no trade twice
