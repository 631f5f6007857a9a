"""Venue protocols over the real recorded sessions (every message parsed, books never cross) and over
hand-made frames for the sync and bad-input rules."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
import pytest

from feed_handler.book import Book
from feed_handler.errors import BadInput
from feed_handler.normalised import BookDelta, BookSnapshot, MarketDataMsg, Quote, Trade
from feed_handler.protocols import lobster, ndjson, recording
from feed_handler.protocols.binance import BinanceProtocol
from feed_handler.protocols.coinbase import CoinbaseProtocol
from nexus.messages import Side
from tests.feed_handler.helpers import BINANCE_REC, COINBASE_REC, LOBSTER_MSG

enc = msgspec.json.Encoder()


class Out:
    """Collects what a parser reports and rebuilds every book from the published snapshots + deltas,
    checking after each one that it is not crossed (what a consumer would build)."""

    def __init__(self) -> None:
        self.msgs: list[MarketDataMsg] = []
        self.bad: list[tuple[str, str]] = []
        self.gaps: list[str] = []
        self.resyncs: list[tuple[str, str]] = []
        self.books: dict[str, Book] = {}
        self.crossed = 0
        self.touches = 0

    def emit(self, msg: MarketDataMsg) -> None:
        self.msgs.append(msg)
        if isinstance(msg, BookSnapshot):
            book = self.books[msg.symbol] = Book(msg.symbol)
            book.reset(msg.bids, msg.asks, msg.seq)
        elif isinstance(msg, BookDelta):
            self.books[msg.symbol].apply(msg.bids, msg.asks, msg.seq)
        else:
            return
        self.crossed += self.books[msg.symbol].crossed

    def bad_input(self, exc: BadInput, raw: bytes | str) -> None:
        self.bad.append((exc.reason, exc.detail))

    def gap(self, symbol: str, detail: str) -> None:
        self.gaps.append(symbol)

    def resync(self, symbol: str, reason: str) -> None:
        self.resyncs.append((symbol, reason))

    def touch(self) -> None:
        self.touches += 1

    def count(self) -> Counter[str]:
        return Counter(type(m).__name__ for m in self.msgs)


def test_every_message_of_the_binance_session_parses_and_books_never_cross() -> None:
    out = Out()
    symbols = recording.symbols(BINANCE_REC, "binance")
    assert len(symbols) == 10
    asked: list[str] = []
    proto = BinanceProtocol("binance", symbols, out, need_snapshot=asked.append)
    for rec in recording.records(BINANCE_REC):
        if rec.kind == "recv":
            proto.on_frame(rec.payload, 1)
        elif rec.kind == "rest":
            proto.on_snapshot(rec.rest_symbol, rec.payload, 1)
    assert out.bad == []
    assert out.gaps == []
    assert out.resyncs == []
    counts = out.count()
    # the data README: 5,408 bookTicker, 4,709 depthUpdate, 1,240 aggTrade, 10 REST snapshots
    assert counts["Quote"] == 5408
    assert counts["Trade"] == 1240
    assert counts["BookSnapshot"] == 10
    assert (
        counts["BookDelta"] + proto.stale_diffs_total == 4709
    )  # diffs already in a snapshot are not re-sent
    assert sorted(asked) == sorted(symbols)  # each book asked for its snapshot once
    assert out.crossed == 0
    assert {s: (b.bids(), b.asks()) for s, b in out.books.items()} == {
        s: (b.bids(), b.asks()) for s, b in proto.books().items()
    }
    trade = next(m for m in out.msgs if isinstance(m, Trade))
    assert trade.venue_symbol == "ZILUSDT"
    assert trade.trade_id == "18938405"
    assert trade.aggressor is Side.BUY
    assert trade.price == "0.21448000"
    assert trade.ts_event == 1617647603483 * 1_000_000


def test_every_message_of_the_coinbase_session_parses_and_books_never_cross() -> None:
    out = Out()
    symbols = recording.symbols(COINBASE_REC, "coinbase")
    subscribed: list[int] = []
    proto = CoinbaseProtocol("coinbase", symbols, out, on_subscribed=lambda: subscribed.append(1))
    for rec in recording.records(COINBASE_REC):
        if rec.kind == "recv":
            proto.on_frame(rec.payload, 1)
    assert out.bad == []
    assert out.gaps == []
    assert out.resyncs == []
    counts = out.count()
    # 10 snapshot, 9,719 l2update, 107 ticker, 10 last_match, 97 match
    assert counts["BookSnapshot"] == 10
    assert counts["BookDelta"] == 9719
    assert counts["Trade"] == 107  # 97 matches + the 10 last_match trades
    assert counts["Quote"] > 1000  # the top of book changed this often
    assert len(subscribed) == 3
    assert out.touches >= 3 + 107
    assert out.crossed == 0
    match = next(m for m in out.msgs if isinstance(m, Trade) and m.trade_id == "280232")
    assert match.aggressor is Side.BUY  # the maker sold
    assert match.ts_event == 1618677817_089723000


def test_lobster_sample_gives_trades_and_top_of_book_quotes() -> None:
    out = Out()
    items = list(lobster.read(LOBSTER_MSG, "lobster", out))
    assert out.bad == []
    trades = [m for _, m in items if isinstance(m, Trade)]
    quotes = [m for _, m in items if isinstance(m, Quote)]
    assert len(trades) == 8974 + 2445  # executions of visible and hidden orders
    assert trades[0].aggressor is Side.BUY
    assert trades[0].price == "223.8200"  # price x 10000 in the file: four places, as before
    assert all(q.bid_px is None or q.ask_px is None or q.bid_px < q.ask_px for q in quotes)
    times = [t for t, _ in items]
    assert times == sorted(times)
    assert quotes[0].symbol == "AMZN"
    assert quotes[0].ask_px == "223.9500"


# -- Binance depth sync rules on hand-made frames ----------------------------------------------------


def frame(stream: str, data: dict[str, Any]) -> bytes:
    return enc.encode({"stream": stream, "data": data})


def depth(
    first: int, last: int, bids: list[list[str]] | None = None, asks: list[list[str]] | None = None
) -> bytes:
    data = {
        "e": "depthUpdate",
        "E": 1,
        "s": "BTCUSDT",
        "U": first,
        "u": last,
        "b": bids or [],
        "a": asks or [],
    }
    return frame("btcusdt@depth@100ms", data)


def snapshot(last_id: int) -> bytes:
    return enc.encode({"lastUpdateId": last_id, "bids": [["100", "1"], ["99", "2"]], "asks": [["101", "1"]]})


def binance() -> tuple[BinanceProtocol, Out, list[str]]:
    out, asked = Out(), []
    return BinanceProtocol("b", ["BTCUSDT"], out, need_snapshot=asked.append), out, asked


def test_depth_sync_buffers_until_the_snapshot_then_bridges_with_the_first_diff() -> None:
    proto, out, asked = binance()
    proto.on_frame(depth(1, 5), 1)
    proto.on_frame(depth(6, 9, bids=[["98", "3"]]), 1)
    proto.on_frame(depth(10, 12, asks=[["102", "4"]]), 1)
    assert asked == ["BTCUSDT"]
    assert out.msgs == []
    proto.on_snapshot("BTCUSDT", snapshot(7), 1)  # diff 1-5 is older, 6-9 bridges 8, 10-12 follows
    snap = out.msgs[0]
    assert isinstance(snap, BookSnapshot)
    assert snap.seq == 12
    assert snap.bids == (("100", "1"), ("99", "2"), ("98", "3"))
    proto.on_frame(depth(13, 13, bids=[["100", "0"]]), 1)
    delta = out.msgs[-1]
    assert isinstance(delta, BookDelta)
    assert (delta.first_seq, delta.seq) == (13, 13)
    assert out.gaps == []
    assert out.bad == []


def test_a_depth_gap_resyncs_the_book_from_a_new_snapshot() -> None:
    proto, out, asked = binance()
    proto.on_frame(depth(1, 3), 1)
    proto.on_snapshot("BTCUSDT", snapshot(2), 1)
    proto.on_frame(depth(4, 4), 1)
    proto.on_frame(depth(6, 7), 1)  # 5 is missing
    assert out.gaps == ["BTCUSDT"]
    assert out.resyncs == [("BTCUSDT", "gap")]
    assert asked == ["BTCUSDT", "BTCUSDT"]
    published = len(out.msgs)
    proto.on_frame(depth(8, 8), 1)  # buffered while resyncing
    assert len(out.msgs) == published
    proto.on_snapshot("BTCUSDT", snapshot(7), 1)
    assert isinstance(out.msgs[-1], BookSnapshot)
    assert out.msgs[-1].seq == 8


def test_a_snapshot_older_than_every_buffered_diff_is_asked_for_again() -> None:
    proto, out, asked = binance()
    proto.on_frame(depth(10, 12), 1)
    proto.on_snapshot("BTCUSDT", snapshot(5), 1)  # 6..9 missing: cannot bridge
    assert out.msgs == []
    assert asked == ["BTCUSDT", "BTCUSDT"]
    proto.on_snapshot("BTCUSDT", snapshot(11), 1)
    assert isinstance(out.msgs[-1], BookSnapshot)
    assert out.msgs[-1].seq == 12


def test_a_diff_that_crosses_the_book_is_bad_input_and_resyncs() -> None:
    proto, out, asked = binance()
    proto.on_frame(depth(1, 1), 1)
    proto.on_snapshot("BTCUSDT", snapshot(1), 1)
    proto.on_frame(depth(2, 2, bids=[["105", "1"]]), 1)  # bid above the best ask 101
    assert [r for r, _ in out.bad] == ["crossed_book"]
    assert out.resyncs == [("BTCUSDT", "crossed_book")]
    assert len(asked) == 2
    assert out.crossed == 0  # the crossing diff was never published
    assert "BTCUSDT" not in proto.books()


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"stream": "btcusdt@aggTrade", "data": {', "invalid_json"),
        (frame("btcusdt@kline_1m", {"e": "kline"}), "unknown_type"),
        (
            frame("btcusdt@aggTrade", {"e": "aggTrade", "E": 1, "s": "BTCUSDT", "a": 1, "T": 1, "m": True}),
            "missing_field",
        ),
        (
            frame("btcusdt@bookTicker", {"u": 1, "s": "BTCUSDT", "b": "1", "B": "-1", "a": "2", "A": "1"}),
            "negative_size",
        ),
        (
            frame("btcusdt@bookTicker", {"u": 1, "s": "BTCUSDT", "b": "3", "B": "1", "a": "2", "A": "1"}),
            "crossed_quote",
        ),
        (
            frame("ethusdt@bookTicker", {"u": 1, "s": "ETHUSDT", "b": "1", "B": "1", "a": "2", "A": "1"}),
            "unknown_symbol",
        ),
        (
            frame(
                "btcusdt@aggTrade",
                {"e": "trade", "E": 1, "s": "BTCUSDT", "a": 1, "p": "1", "q": "1", "T": 1, "m": 1},
            ),
            "invalid_field",
        ),
        (b'{"hello": "world"}', "unknown_type"),
        # decimals must be plain JSON numbers: what is published is the venue's own text
        *(
            (
                frame("btcusdt@bookTicker", {"u": 1, "s": "BTCUSDT", "b": bad, "B": "1", "a": "2", "A": "1"}),
                why,
            )
            for bad, why in [
                (" 1", "invalid_field"),
                ("nan", "invalid_field"),
                ("+1", "invalid_field"),
                ("1.2.3", "invalid_field"),
                ("1,5", "invalid_field"),
                ("-1", "invalid_field"),
                ("1e400", "invalid_field"),
            ]
        ),
        (
            frame(
                "btcusdt@aggTrade",
                {"e": "aggTrade", "E": 1, "s": "BTCUSDT", "a": 1, "p": "-5", "q": "1", "T": 1, "m": True},
            ),
            "invalid_field",
        ),
        (
            frame(
                "btcusdt@aggTrade",
                {"e": "aggTrade", "E": 1, "s": "BTCUSDT", "a": 1, "p": "5", "q": "0.000", "T": 1, "m": True},
            ),
            "invalid_field",
        ),
        (
            frame(
                "btcusdt@aggTrade",
                {"e": "aggTrade", "E": 1, "s": "BTCUSDT", "a": 1, "p": "5", "q": "-1", "T": 1, "m": True},
            ),
            "negative_size",
        ),
    ],
)
def test_bad_binance_input_is_reported_with_a_reason_and_skipped(raw: bytes, reason: str) -> None:
    proto, out, _ = binance()
    proto.on_frame(raw, 1)
    assert [r for r, _ in out.bad] == [reason]
    assert out.msgs == []
    ok = frame("btcusdt@bookTicker", {"u": 2, "s": "BTCUSDT", "b": "1", "B": "1", "a": "2", "A": "1"})
    proto.on_frame(ok, 1)  # the next good message goes through
    assert isinstance(out.msgs[-1], Quote)


def test_frames_are_read_as_text_or_bytes_and_in_any_key_order() -> None:
    """The usual frame (`{"stream": ..., "data": ...}`) is recognised from its first bytes; any other
    spelling of the same message goes the long way and gives the same result."""
    data = {"u": 7, "s": "BTCUSDT", "b": "100.10", "B": "2.5", "a": "100.20", "A": "0.75", "E": 1}
    usual = frame("btcusdt@bookTicker", data)
    reordered = enc.encode({"data": data, "stream": "btcusdt@bookTicker"})
    spaced = b'{ "stream" : "btcusdt@bookTicker", "data": ' + enc.encode(data) + b"}"
    got = []
    for raw in (usual, usual.decode(), reordered, spaced.decode()):
        proto, out, _ = binance()
        proto.on_frame(raw, 1)
        assert out.bad == []
        got.append(out.msgs[0])
    assert all(q == got[0] for q in got)
    quote = got[0]
    assert isinstance(quote, Quote)
    assert (quote.bid_px, quote.bid_sz, quote.ask_px, quote.ask_sz) == ("100.10", "2.5", "100.20", "0.75")


def ticker(b: str, bq: str, a: str, aq: str) -> bytes:
    return frame("btcusdt@bookTicker", {"u": 1, "s": "BTCUSDT", "b": b, "B": bq, "a": a, "A": aq})


def test_a_side_with_no_orders_is_published_empty_and_odd_sizes_are_refused() -> None:
    proto, out, _ = binance()
    proto.on_frame(ticker("0.00000000", "0.00000000", "101.5", "2"), 1)
    quote = out.msgs[-1]
    assert isinstance(quote, Quote)
    assert (quote.bid_px, quote.bid_sz, quote.ask_px) == (None, "0.00000000", "101.5")
    proto.on_frame(ticker("100", "1e-400", "101", "1"), 1)  # not 0, but 0.0 as a float: refused
    proto.on_frame(ticker("100", "nan", "101", "1"), 1)  # fails the size's >= 0 bound
    proto.on_frame(ticker("100", "1", "0", "1"), 1)  # a side with orders at price 0
    assert [r for r, _ in out.bad] == ["invalid_field", "negative_size", "invalid_field"]
    assert len(out.msgs) == 1


def test_prices_are_exact_beyond_what_binary64_can_tell_apart() -> None:
    """Long prices are accepted. Ties in binary64 are settled by the decimals: one spelling of a price is
    one level, a quote a hair's breadth from crossing is not crossed, and two distinct prices that share a
    binary64 value are refused (the book resyncs) rather than merged."""
    proto, out, asked = binance()
    proto.on_frame(ticker("0.1", "1", "0.10000000000000001", "1"), 1)  # one float, two decimals: bid < ask
    assert out.bad == []
    proto.on_frame(depth(1, 1), 1)
    long_book = {
        "lastUpdateId": 1,
        "bids": [["143000000.00000000", "1"]],
        "asks": [["143000100.00000000", "2"]],
    }
    proto.on_snapshot("BTCUSDT", enc.encode(long_book), 1)
    assert out.bad == []
    assert proto.books()["BTCUSDT"].best_bid == ("143000000.00000000", "1")
    proto.on_frame(depth(2, 2, bids=[["143000000.0", "5"]]), 1)  # the same price, spelt otherwise
    assert proto.books()["BTCUSDT"].bids() == (("143000000.0", "5"),)
    proto.on_frame(depth(3, 3, asks=[["0.10000000000000001", "1"], ["0.1", "1"]]), 1)
    assert [r for r, _ in out.bad] == ["invalid_field"]
    assert "too close to tell apart" in out.bad[0][1]
    assert "BTCUSDT" not in proto.books()
    assert out.resyncs == [("BTCUSDT", "invalid_field")]
    assert asked == ["BTCUSDT", "BTCUSDT"]
    assert out.crossed == 0


def test_a_size_that_underflows_in_a_diff_resyncs() -> None:
    proto, out, _asked = binance()
    proto.on_frame(depth(1, 1), 1)
    proto.on_snapshot("BTCUSDT", snapshot(1), 1)
    proto.on_frame(depth(2, 2, bids=[["100", "1e-400"]]), 1)
    assert [r for r, _ in out.bad] == ["invalid_field"]
    assert out.resyncs == [("BTCUSDT", "invalid_field")]


def test_a_negative_size_in_a_diff_resyncs_rather_than_leaving_a_hole() -> None:
    proto, out, _asked = binance()
    proto.on_frame(depth(1, 1), 1)
    proto.on_snapshot("BTCUSDT", snapshot(1), 1)
    proto.on_frame(depth(2, 2, bids=[["100", "-1"]]), 1)
    assert [r for r, _ in out.bad] == ["negative_size"]
    assert out.resyncs == [("BTCUSDT", "negative_size")]


def test_trade_id_jumps_are_gaps_and_repeats_are_not_published_twice() -> None:
    proto, out, _ = binance()

    def agg(n: int) -> bytes:
        return frame(
            "btcusdt@aggTrade",
            {"e": "aggTrade", "E": 1, "s": "BTCUSDT", "a": n, "p": "1", "q": "1", "T": 1, "m": False},
        )

    for n in (1, 2, 2, 5, 3, 6):
        proto.on_frame(agg(n), 1)
    assert [m.trade_id for m in out.msgs] == ["1", "2", "5", "6"]
    assert out.gaps == ["BTCUSDT"]
    proto.reset()  # a reconnect keeps the trade ids seen
    proto.on_frame(agg(6), 1)
    assert len(out.msgs) == 4
    proto.on_frame(agg(9), 1)  # trades missed while disconnected: the reconnect's cost, not a gap
    proto.on_frame(agg(11), 1)  # but within the session a jump is
    assert [m.trade_id for m in out.msgs][-2:] == ["9", "11"]
    assert out.gaps == ["BTCUSDT", "BTCUSDT"]


# -- Coinbase rules -----------------------------------------------------------------------------------


def cb(kind: str, **fields: Any) -> bytes:
    return enc.encode({"type": kind, **fields})


def test_coinbase_crossed_update_resubscribes_the_product_and_ignores_updates_until_a_snapshot() -> None:
    out, resub = Out(), []
    proto = CoinbaseProtocol("c", ["BTC-USD"], out, need_resubscribe=resub.append)
    proto.on_frame(cb("snapshot", product_id="BTC-USD", bids=[["100", "1"]], asks=[["101", "1"]]), 1)
    proto.on_frame(
        cb("l2update", product_id="BTC-USD", changes=[["buy", "102", "1"]], time="2021-04-17T16:43:37Z"), 1
    )
    assert [r for r, _ in out.bad] == ["crossed_book"]
    assert resub == ["BTC-USD"]
    proto.on_frame(cb("l2update", product_id="BTC-USD", changes=[["sell", "103", "1"]], time=""), 1)
    assert proto.ignored_total == 1
    proto.on_frame(cb("snapshot", product_id="BTC-USD", bids=[["100", "2"]], asks=[["101", "2"]]), 1)
    assert out.crossed == 0
    assert isinstance(out.msgs[-1], Quote)
    assert out.msgs[-1].bid_sz == "2"


@pytest.mark.parametrize(
    "change",
    [["buy", 100.5, "1"], ["buy", "100.5", "-1"], ["sell", "1e-400x", "1"], ["buy", "100", "1e-400"]],
    ids=["price as a number", "negative size", "not a number", "underflowing size"],
)
def test_a_coinbase_update_that_cannot_be_used_resyncs_its_product(change: list[Any]) -> None:
    """level2 has no sequence numbers: an update that is skipped would be a hole nobody sees later."""
    out, resub = Out(), []
    proto = CoinbaseProtocol("c", ["BTC-USD"], out, need_resubscribe=resub.append)
    proto.on_frame(cb("snapshot", product_id="BTC-USD", bids=[["100", "1"]], asks=[["101", "1"]]), 1)
    proto.on_frame(cb("l2update", product_id="BTC-USD", changes=[change], time=""), 1)
    assert len(out.bad) == 1
    assert resub == ["BTC-USD"]
    assert out.resyncs == [("BTC-USD", out.bad[0][0])]
    assert proto.books() == {}


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "invalid_json"),
        (cb("auction", product_id="BTC-USD"), "unknown_type"),
        (
            cb("match", trade_id=1, side="buy", product_id="BTC-USD", time="2021-04-17T16:43:37Z"),
            "missing_field",
        ),
        (
            cb("match", trade_id=1, side="up", size="1", price="1", product_id="BTC-USD", time="x"),
            "invalid_field",
        ),
        (
            cb("match", trade_id=1, side="buy", size="-1", price="1", product_id="BTC-USD", time="x"),
            "negative_size",
        ),
        (cb("error", message="Failed to subscribe", reason="bad"), "venue_error"),
    ],
)
def test_bad_coinbase_input_is_reported_with_a_reason_and_skipped(raw: bytes, reason: str) -> None:
    out = Out()
    proto = CoinbaseProtocol("c", ["BTC-USD"], out)
    proto.on_frame(raw, 1)
    assert [r for r, _ in out.bad] == [reason]
    assert out.msgs == []


def test_ndjson_lines_are_read_with_decimals_as_strings_or_numbers_and_bad_lines_counted(
    tmp_path: Path,
) -> None:
    path = tmp_path / "md.ndjson"
    trade = {
        "type": "trade",
        "venue": "v",
        "symbol": "A",
        "venue_symbol": "A",
        "trade_id": "1",
        "ts_event": 5,
    }
    path.write_bytes(
        enc.encode({**trade, "price": 1.5, "size": "2.50"})  # a JSON number, as a nexus decoder accepts
        + b"\n"
        + enc.encode({**trade, "price": "abc", "size": "1"})
        + b"\n"
    )
    out = Out()
    read = list(ndjson.read(path, out))
    assert [r for r, _ in out.bad] == ["invalid_field"]
    assert len(read) == 1
    t_ns, msg = read[0]
    assert t_ns == 5
    assert isinstance(msg, Trade)
    assert (msg.price, msg.size) == ("1.5", "2.50")
