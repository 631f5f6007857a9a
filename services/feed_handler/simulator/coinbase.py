"""The Coinbase Exchange side of the simulator: subscribe/unsubscribe with `subscriptions` answers, a
level2 snapshot and the last match at subscription, l2update / match / ticker / heartbeat streams."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec

from feed_handler.book import Book
from feed_handler.market import Event, SyntheticMarket
from feed_handler.protocols.recording import Record
from nexus.messages import Side, now_ns

Frame = tuple[str | None, str]
CHANNELS = ("level2", "matches", "ticker", "heartbeat")
_enc = msgspec.json.Encoder()
_TYPE_CHANNEL = {
    "snapshot": "level2",
    "l2update": "level2",
    "match": "matches",
    "last_match": "matches",
    "ticker": "ticker",
    "heartbeat": "heartbeat",
}


class _Rec(msgspec.Struct):
    type: str = ""
    product_id: str = ""
    changes: list[tuple[str, str, str]] = msgspec.field(default_factory=list)
    bids: list[tuple[str, str]] = msgspec.field(default_factory=list)
    asks: list[tuple[str, str]] = msgspec.field(default_factory=list)


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _text(obj: dict[str, Any]) -> str:
    return _enc.encode(obj).decode()


class CoinbaseVenue:
    name = "coinbase"

    def __init__(self, market: SyntheticMarket | None = None) -> None:
        self.market = market
        self.products: list[str] = list(market.by_name) if market is not None else []
        self._books: dict[str, Book] = {}
        self._last_match: dict[str, str] = {}
        self._sequence: dict[str, int] = {}
        self.skip_match: dict[str, int] = {}
        self.faults_total = 0

    def accepts(self, path: str) -> bool:
        return True

    def initial_subscriptions(self, path: str) -> set[str]:
        return set()

    # -- subscriptions --------------------------------------------------------------------------------

    def on_message(self, text: str | bytes, subs: set[str]) -> list[str]:
        try:
            req = msgspec.json.decode(text)
            kind = req["type"]
            products = list(req.get("product_ids", []))
            channels = req["channels"]
        except (msgspec.DecodeError, KeyError, TypeError):
            return [_text({"type": "error", "message": "Failed to subscribe", "reason": "malformed request"})]
        if kind not in ("subscribe", "unsubscribe"):
            return [_text({"type": "error", "message": "Failed to subscribe", "reason": f"type {kind!r}"})]
        keys: set[str] = set()
        for ch in channels:
            name, ids = (
                (ch, products) if isinstance(ch, str) else (ch.get("name", ""), ch.get("product_ids", []))
            )
            if name not in CHANNELS:
                return [
                    _text({"type": "error", "message": "Failed to subscribe", "reason": f"{name} channel"})
                ]
            keys.update(f"{name}:{p}" for p in ids)
        if kind == "subscribe":
            subs.update(keys)
        else:
            subs.difference_update(keys)
        by_channel: dict[str, list[str]] = {}
        for key in sorted(subs):
            name, _, product = key.partition(":")
            by_channel.setdefault(name, []).append(product)
        answer = {
            "type": "subscriptions",
            "channels": [{"name": n, "product_ids": p} for n, p in by_channel.items()],
        }
        return [_text(answer)]

    def on_subscribed(self, new: set[str]) -> list[Frame]:
        """A new subscriber gets the level2 snapshot and the last match of each product."""
        frames: list[Frame] = []
        for key in sorted(new):
            name, _, product = key.partition(":")
            if name == "level2":
                snap = self._snapshot(product)
                if snap is not None:
                    frames.append((key, snap))
            elif name == "matches" and product in self._last_match:
                frames.append((key, self._last_match[product]))
        return frames

    def _snapshot(self, product: str) -> str | None:
        if self.market is not None:
            if product not in self.market.by_name:
                return None
            inst = self.market.instrument(product)
            bids, asks, _ = self.market.ladder(product)
            return _text(
                {
                    "type": "snapshot",
                    "product_id": product,
                    "bids": [[str(inst.price(p)), str(inst.qty(q))] for p, q in bids],
                    "asks": [[str(inst.price(p)), str(inst.qty(q))] for p, q in asks],
                }
            )
        book = self._books.get(product)
        if book is None:
            return None
        return _text(
            {
                "type": "snapshot",
                "product_id": product,
                "bids": [[str(p), str(q)] for p, q in book.bids()],
                "asks": [[str(p), str(q)] for p, q in book.asks()],
            }
        )

    def _seq(self, product: str) -> int:
        n = self._sequence.get(product, 1_000_000) + 1
        self._sequence[product] = n
        return n

    # -- synthetic ------------------------------------------------------------------------------------

    def encode_event(self, ev: Event) -> list[Frame]:
        assert self.market is not None
        inst = self.market.instrument(ev.symbol)
        p = ev.symbol
        now = now_ns()
        t = _iso(now)
        frames: list[Frame] = []
        if ev.trade_id:
            seq = self._seq(p)
            match = {
                "type": "match",
                "trade_id": ev.trade_id,
                "maker_order_id": str(uuid.UUID(int=ev.update_id)),
                "taker_order_id": str(uuid.UUID(int=ev.update_id + (1 << 64))),
                "side": "sell" if ev.aggressor is Side.BUY else "buy",
                "size": str(inst.qty(ev.trade_lots)),
                "price": str(inst.price(ev.trade_ticks)),
                "product_id": p,
                "sequence": seq,
                "time": t,
            }
            skip = self.skip_match.get(p, 0)
            if skip:
                self.skip_match[p] = skip - 1
            else:
                frames.append((f"matches:{p}", _text(match)))
            self._last_match[p] = _text({**match, "type": "last_match"})
        changes = [["buy", str(inst.price(px)), str(inst.qty(q))] for px, q in ev.bids]
        changes += [["sell", str(inst.price(px)), str(inst.qty(q))] for px, q in ev.asks]
        if changes:
            frames.append(
                (f"level2:{p}", _text({"type": "l2update", "product_id": p, "changes": changes, "time": t}))
            )
        if ev.trade_id:
            bid, ask = self.market.top(p)
            frames.append(
                (
                    f"ticker:{p}",
                    _text(
                        {
                            "type": "ticker",
                            "sequence": self._seq(p),
                            "product_id": p,
                            "price": str(inst.price(ev.trade_ticks)),
                            "best_bid": str(inst.price(bid[0])) if bid else None,
                            "best_bid_size": str(inst.qty(bid[1])) if bid else None,
                            "best_ask": str(inst.price(ask[0])) if ask else None,
                            "best_ask_size": str(inst.qty(ask[1])) if ask else None,
                            "side": "buy" if ev.aggressor is Side.BUY else "sell",
                            "time": t,
                            "trade_id": ev.trade_id,
                            "last_size": str(inst.qty(ev.trade_lots)),
                        }
                    ),
                )
            )
        return frames

    def heartbeat(self) -> list[Frame]:
        t = _iso(now_ns())
        return [
            (
                f"heartbeat:{p}",
                _text(
                    {
                        "type": "heartbeat",
                        "sequence": self._seq(p),
                        "last_trade_id": 0,
                        "product_id": p,
                        "time": t,
                    }
                ),
            )
            for p in self.products
        ]

    # -- replay ---------------------------------------------------------------------------------------

    def prepare_replay(self, records: list[Record]) -> None:
        seen: dict[str, None] = {}
        for rec in records:
            if rec.kind == "sent":
                for p in msgspec.json.decode(rec.payload).get("product_ids", []):
                    seen[p] = None
        self.products = list(seen)

    def encode_record(self, rec: Record) -> list[Frame]:
        if rec.kind != "recv":
            return []
        r = msgspec.json.decode(rec.payload, type=_Rec)
        channel = _TYPE_CHANNEL.get(r.type)
        if channel is None:
            return []  # the recorder's own `subscriptions` answers: we send ours
        if r.type == "snapshot":
            book = self._books[r.product_id] = Book(r.product_id)
            book.reset(r.bids, r.asks)
        elif r.type == "l2update":
            book = self._books.get(r.product_id)  # type: ignore[assignment]
            if book is not None:
                book.apply(
                    [(p, s) for side, p, s in r.changes if side == "buy"],
                    [(p, s) for side, p, s in r.changes if side == "sell"],
                )
        elif r.type in ("match", "last_match"):
            self._last_match[r.product_id] = rec.payload.decode().replace(
                '"type":"match"', '"type":"last_match"'
            )
            skip = self.skip_match.get(r.product_id, 0)
            if skip and r.type == "match":
                self.skip_match[r.product_id] = skip - 1
                return []
        return [(f"{channel}:{r.product_id}", rec.payload.decode())]

    def snapshot(self, symbol: str, limit: int) -> bytes | None:
        return None  # Coinbase snapshots travel on the websocket

    # -- faults ---------------------------------------------------------------------------------------

    def fault(self, kind: str, symbol: str = "") -> list[Frame]:
        p = symbol or (self.products[0] if self.products else "BTC-USD")
        t = _iso(now_ns())
        self.faults_total += 1
        if kind == "gap":
            self.skip_match[p] = self.skip_match.get(p, 0) + 1
            return []
        if kind == "bad_json":
            return [(None, '{"type": "match", "trade_id": ')]
        if kind == "unknown_type":
            return [(None, _text({"type": "auction", "product_id": p, "time": t}))]
        if kind == "missing_field":
            return [
                (None, _text({"type": "match", "trade_id": 1, "side": "buy", "product_id": p, "time": t}))
            ]
        if kind == "negative_size":
            return [
                (
                    None,
                    _text(
                        {"type": "l2update", "product_id": p, "changes": [["buy", "1.00", "-3"]], "time": t}
                    ),
                )
            ]
        if kind == "crossed":
            ask = self._best_ask(p)
            price = str(ask * 2) if ask is not None else "1000000"
            return [
                (
                    None,
                    _text({"type": "l2update", "product_id": p, "changes": [["buy", price, "1"]], "time": t}),
                )
            ]
        raise ValueError(f"unknown fault {kind!r}")

    def _best_ask(self, product: str) -> Decimal | None:
        if self.market is not None and product in self.market.by_name:
            _, ask = self.market.top(product)
            return self.market.instrument(product).price(ask[0]) if ask else None
        book = self._books.get(product)
        best = book.best_ask if book is not None else None
        return Decimal(best[0]) if best else None
