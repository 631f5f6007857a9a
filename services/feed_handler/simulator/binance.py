"""The Binance spot side of the simulator: combined streams, SUBSCRIBE/UNSUBSCRIBE, REST depth snapshots
consistent with the diffs sent, and the faults the tests inject."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec

from feed_handler.book import Book
from feed_handler.market import Event, SyntheticMarket
from feed_handler.protocols.recording import Record
from nexus.messages import Side, now_ns

Frame = tuple[str | None, str]
"""(stream the frame belongs to, or None for every client; the JSON text)"""

_enc = msgspec.json.Encoder()


class _Env(msgspec.Struct):
    stream: str = ""
    data: msgspec.Raw = msgspec.Raw(b"null")


class _Depth(msgspec.Struct):
    s: str = ""
    U: int = 0
    u: int = 0
    b: list[tuple[str, str]] = msgspec.field(default_factory=list)
    a: list[tuple[str, str]] = msgspec.field(default_factory=list)


class _Snap(msgspec.Struct):
    lastUpdateId: int  # Binance's field name
    bids: list[tuple[str, str]]
    asks: list[tuple[str, str]]


def venue_symbol(instrument_symbol: str) -> str:
    """BTC-USD -> BTCUSD (Binance symbols have no separator)."""
    return instrument_symbol.replace("-", "").replace("_", "").upper()


def _wrap(stream: str, data: dict[str, Any]) -> Frame:
    return stream, _enc.encode({"stream": stream, "data": data}).decode()


class BinanceVenue:
    name = "binance"

    def __init__(self, market: SyntheticMarket | None = None, depth_interval: str = "100ms") -> None:
        self.market = market
        self.depth_suffix = f"depth@{depth_interval}"
        self.symbols: dict[str, str] = {}
        """venue symbol -> instrument symbol (synthetic)"""
        if market is not None:
            self.symbols = {venue_symbol(s): s for s in market.by_name}
        self.skip_depth: dict[str, int] = {}
        # replay: books rebuilt from the recording's snapshots + diffs; first recorded snapshot per symbol
        self._books: dict[str, Book] = {}
        self._first_snapshot: dict[str, bytes] = {}
        self.faults_total = 0

    # -- websocket ------------------------------------------------------------------------------------

    def accepts(self, path: str) -> bool:
        return path.startswith(("/stream", "/ws"))

    def initial_subscriptions(self, path: str) -> set[str]:
        """Streams named in the URL (`/stream?streams=a/b`), as real Binance allows."""
        _, _, query = path.partition("?")
        for part in query.split("&"):
            key, _, value = part.partition("=")
            if key == "streams":
                return {s for s in value.split("/") if s}
        return set()

    def on_message(self, text: str | bytes, subs: set[str]) -> list[str]:
        """A client's request; returns the answers (and changes `subs`)."""
        try:
            req = msgspec.json.decode(text)
            method, params, rid = req["method"], req.get("params", []), req["id"]
        except (msgspec.DecodeError, KeyError, TypeError):
            return [_enc.encode({"error": {"code": 2, "msg": "Invalid request"}, "id": None}).decode()]
        if method == "SUBSCRIBE":
            subs.update(params)
        elif method == "UNSUBSCRIBE":
            subs.difference_update(params)
        elif method == "LIST_SUBSCRIPTIONS":
            return [_enc.encode({"result": sorted(subs), "id": rid}).decode()]
        else:
            return [
                _enc.encode({"error": {"code": 2, "msg": f"unknown method {method}"}, "id": rid}).decode()
            ]
        return [_enc.encode({"result": None, "id": rid}).decode()]

    def on_subscribed(self, new: set[str]) -> list[Frame]:
        return []

    # -- synthetic ------------------------------------------------------------------------------------

    def encode_event(self, ev: Event) -> list[Frame]:
        assert self.market is not None
        market = self.market
        inst = market.instrument(ev.symbol)
        vs = venue_symbol(ev.symbol)
        low = vs.lower()
        ms = now_ns() // 1_000_000
        frames: list[Frame] = []
        if ev.trade_id:
            frames.append(
                _wrap(
                    f"{low}@aggTrade",
                    {
                        "e": "aggTrade",
                        "E": ms,
                        "s": vs,
                        "a": ev.trade_id,
                        "p": str(inst.price(ev.trade_ticks)),
                        "q": str(inst.qty(ev.trade_lots)),
                        "f": ev.trade_id,
                        "l": ev.trade_id,
                        "T": ms,
                        "m": ev.aggressor is Side.SELL,
                        "M": True,
                    },
                )
            )
        skip = self.skip_depth.get(vs, 0)
        if skip:
            self.skip_depth[vs] = skip - 1
        else:
            frames.append(
                _wrap(
                    f"{low}@{self.depth_suffix}",
                    {
                        "e": "depthUpdate",
                        "E": ms,
                        "s": vs,
                        "U": ev.update_id,
                        "u": ev.update_id,
                        "b": [[str(inst.price(p)), str(inst.qty(q))] for p, q in ev.bids],
                        "a": [[str(inst.price(p)), str(inst.qty(q))] for p, q in ev.asks],
                    },
                )
            )
        bid, ask = market.top(ev.symbol)
        if bid and ask:
            frames.append(
                _wrap(
                    f"{low}@bookTicker",
                    {
                        "u": ev.update_id,
                        "s": vs,
                        "b": str(inst.price(bid[0])),
                        "B": str(inst.qty(bid[1])),
                        "a": str(inst.price(ask[0])),
                        "A": str(inst.qty(ask[1])),
                    },
                )
            )
        return frames

    # -- replay ---------------------------------------------------------------------------------------

    def prepare_replay(self, records: list[Record]) -> None:
        for rec in records:
            if rec.kind == "rest" and rec.rest_symbol and rec.rest_symbol not in self._first_snapshot:
                self._first_snapshot[rec.rest_symbol] = rec.payload

    def encode_record(self, rec: Record) -> list[Frame]:
        if rec.kind == "rest":
            snap = msgspec.json.decode(rec.payload, type=_Snap)
            fresh = self._books[rec.rest_symbol] = Book(rec.rest_symbol)
            fresh.reset(snap.bids, snap.asks, snap.lastUpdateId)
            return []
        env = msgspec.json.decode(rec.payload, type=_Env)
        if "@depth" in env.stream:
            d = msgspec.json.decode(env.data, type=_Depth)
            book = self._books.get(d.s)
            if book is not None and d.u > book.seq:
                book.apply(d.b, d.a, d.u)
            skip = self.skip_depth.get(d.s, 0)
            if skip:
                self.skip_depth[d.s] = skip - 1
                return []
        return [(env.stream, rec.payload.decode())]

    # -- REST -----------------------------------------------------------------------------------------

    def snapshot(self, symbol: str, limit: int) -> bytes | None:
        """GET /api/v3/depth: the book as of the last diff sent (None: unknown symbol)."""
        symbol = symbol.upper()
        if self.market is not None:
            inst_symbol = self.symbols.get(symbol)
            if inst_symbol is None:
                return None
            inst = self.market.instrument(inst_symbol)
            bids, asks, uid = self.market.ladder(inst_symbol)
            return _enc.encode(
                {
                    "lastUpdateId": uid,
                    "bids": [[str(inst.price(p)), str(inst.qty(q))] for p, q in bids[:limit]],
                    "asks": [[str(inst.price(p)), str(inst.qty(q))] for p, q in asks[:limit]],
                }
            )
        book = self._books.get(symbol)
        if book is not None:
            return _enc.encode(
                {
                    "lastUpdateId": book.seq,
                    "bids": [[str(p), str(q)] for p, q in book.bids(limit)],
                    "asks": [[str(p), str(q)] for p, q in book.asks(limit)],
                }
            )
        # not replayed that far yet: the recording's own snapshot (ahead of the stream, as on Binance)
        return self._first_snapshot.get(symbol)

    # -- faults ---------------------------------------------------------------------------------------

    def _any_symbol(self, symbol: str) -> str:
        if symbol:
            return symbol.upper()
        if self.symbols:
            return next(iter(self.symbols))
        return next(iter(self._books), next(iter(self._first_snapshot), "BTCUSDT"))

    def fault(self, kind: str, symbol: str = "") -> list[Frame]:
        """Frames (or a state change) that inject one fault; ValueError for an unknown kind."""
        vs = self._any_symbol(symbol)
        low = vs.lower()
        ms = now_ns() // 1_000_000
        self.faults_total += 1
        if kind == "gap":
            self.skip_depth[vs] = self.skip_depth.get(vs, 0) + 1
            return []
        if kind == "bad_json":
            return [(None, '{"stream": "' + low + '@aggTrade", "data": {"e": "aggTrade", "p": ')]
        if kind == "unknown_type":
            return [
                (None, _enc.encode({"stream": f"{low}@kline_1m", "data": {"e": "kline", "s": vs}}).decode())
            ]
        if kind == "missing_field":
            data = {"e": "aggTrade", "E": ms, "s": vs, "a": 1, "q": "1.0", "T": ms, "m": False}
            return [(None, _enc.encode({"stream": f"{low}@aggTrade", "data": data}).decode())]
        if kind == "negative_size":
            data = {"u": 1, "s": vs, "b": "1.00", "B": "-5.0", "a": "1.01", "A": "1.0"}
            return [(None, _enc.encode({"stream": f"{low}@bookTicker", "data": data}).decode())]
        if kind == "crossed":
            return [(None, self._crossing_diff(vs, ms))]
        raise ValueError(f"unknown fault {kind!r}")

    def _crossing_diff(self, vs: str, ms: int) -> str:
        """A diff with the next update id whose bid is above the best ask: the client's book crosses."""
        if self.market is not None:
            sym = self.symbols[vs]
            inst = self.market.instrument(sym)
            s = self.market.by_name[sym]
            s.update_id += 1  # the id is used up; the market's own book is not changed by the bad diff
            _, ask = self.market.top(sym)
            uid = s.update_id
            price = inst.price((ask[0] if ask else 100) + 5)
        else:
            book = self._books[vs]
            book.seq += 1
            uid = book.seq
            best = book.best_ask
            price = Decimal(best[0] if best else 1) * 2
        data = {"e": "depthUpdate", "E": ms, "s": vs, "U": uid, "u": uid, "b": [[str(price), "1"]], "a": []}
        return _enc.encode({"stream": f"{vs.lower()}@{self.depth_suffix}", "data": data}).decode()
