"""Coinbase Exchange websocket feed, as pure logic: frames in, normalised messages out.

    subscriptions           the subscribe answer (the feed is live)
    snapshot                BookSnapshot (level2), and a Quote from its top
    l2update                BookDelta, and a Quote when the top of book changed; a crossed book resyncs
                            the product (unsubscribe + subscribe level2 -> a new snapshot)
    match / last_match      Trade; `side` is the maker's, so the aggressor is the other side. Trade ids
                            are contiguous per product: a jump is a gap; an id already seen is skipped
    ticker                  a Quote only when level2 is not subscribed (the book gives sizes)
    heartbeat               keeps the feed alive
    error                   counted as bad input (reason venue_error)
The legacy level2 channel carries no sequence numbers, so BookDelta.seq is 0 for this venue.
Prices and sizes are decoded as text (published) and, for the checks and the book, as values
(protocols.base explains the two decodes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from feed_handler.book import Book, at_or_above
from feed_handler.errors import BadInput, CrossedBook
from feed_handler.normalised import BookDelta, BookSnapshot, Quote, Trade
from feed_handler.protocols.base import (
    LevelList,
    LevelValues,
    Output,
    PriceValue,
    Retime,
    SizeValue,
    classify,
    identity,
    iso_ns,
    value_decoder,
)
from nexus.messages import DECODE_ERRORS, Side
from nexus.subjects import safe_symbol


class _Msg(msgspec.Struct, tag_field="type"):
    pass


class _Subscriptions(_Msg, tag="subscriptions"):
    channels: list[Any] = msgspec.field(default_factory=list)


class _Snapshot(_Msg, tag="snapshot"):
    product_id: str
    bids: LevelList
    asks: LevelList


class _L2Update(_Msg, tag="l2update"):
    product_id: str
    changes: list[tuple[str, str, str]]
    time: str = ""


class _Match(_Msg, tag="match"):
    trade_id: int
    side: str
    size: str
    price: str
    product_id: str
    time: str
    sequence: int = 0


class _LastMatch(_Match, tag="last_match"):
    pass


class _Ticker(_Msg, tag="ticker"):
    product_id: str
    sequence: int = 0
    price: str | None = None
    best_bid: str | None = None
    best_ask: str | None = None
    best_bid_size: str | None = None
    best_ask_size: str | None = None
    time: str = ""
    trade_id: int | None = None


class _Heartbeat(_Msg, tag="heartbeat"):
    product_id: str = ""
    sequence: int = 0
    last_trade_id: int = 0
    time: str = ""


class _Error(_Msg, tag="error"):
    message: str = ""
    reason: str = ""


_decoder = msgspec.json.Decoder(
    _Subscriptions | _Snapshot | _L2Update | _Match | _LastMatch | _Ticker | _Heartbeat | _Error
)
_encoder = msgspec.json.Encoder()


class _SnapshotValues(msgspec.Struct):
    bids: LevelValues
    asks: LevelValues


class _L2UpdateValues(msgspec.Struct):
    changes: list[tuple[str, PriceValue, SizeValue]]


class _MatchValues(msgspec.Struct):
    size: SizeValue
    price: PriceValue


class _TickerValues(msgspec.Struct):
    price: PriceValue | None = None
    best_bid: PriceValue | None = None
    best_ask: PriceValue | None = None
    best_bid_size: SizeValue | None = None
    best_ask_size: SizeValue | None = None


class _Probe(msgspec.Struct):
    type: str = ""
    product_id: str = ""


_probe = msgspec.json.Decoder(_Probe)
_snapshot_values = value_decoder(_SnapshotValues)
_l2update_values = value_decoder(_L2UpdateValues)
_match_values = value_decoder(_MatchValues)
_ticker_values = value_decoder(_TickerValues)


def subscribe_frame(products: list[str], channels: list[str], unsubscribe: bool = False) -> bytes:
    kind = "unsubscribe" if unsubscribe else "subscribe"
    return _encoder.encode({"type": kind, "product_ids": products, "channels": channels})


class _Product:
    __slots__ = ("book", "product", "synced", "top")

    def __init__(self, product: str, symbol: str) -> None:
        self.product = product
        self.book = Book(symbol)
        self.synced = False
        self.top: tuple[object, ...] = ()


class CoinbaseProtocol:
    """Parses one Coinbase session's frames. `need_resubscribe(product)` asks the adapter for a fresh
    level2 snapshot of one product; `on_subscribed()` reports the subscribe answer."""

    def __init__(
        self,
        venue: str,
        products: Iterable[str],
        out: Output,
        *,
        level2: bool = True,
        need_resubscribe: Callable[[str], None] | None = None,
        on_subscribed: Callable[[], None] | None = None,
        retime: Retime = identity,
        trade_id_suffix: str = "",
    ) -> None:
        self.venue = venue
        self.out = out
        self.level2 = level2
        self.need_resubscribe = need_resubscribe
        self.on_subscribed = on_subscribed
        self.retime = retime
        self.trade_id_suffix = trade_id_suffix
        """Appended to every trade id (a replay's later passes: a consumer never sees one id twice)."""
        self.products = {p: _Product(p, safe_symbol(p)) for p in products}
        self._last_trade: dict[str, int] = {}
        self._fresh: set[str] = set()
        self.ignored_total = 0
        """l2updates of a product whose book is being resynced (no snapshot yet)."""

    def reset(self) -> None:
        """A new session: books wait for their snapshot. Trade ids carry over (see BinanceProtocol)."""
        self._fresh = set(self._last_trade)
        for p in self.products.values():
            p.synced = False
            p.top = ()

    def books(self) -> dict[str, Book]:
        return {p.book.symbol: p.book for p in self.products.values() if p.synced}

    def _product(self, product_id: str) -> _Product:
        p = self.products.get(product_id)
        if p is None:
            raise BadInput("unknown_symbol", product_id)
        return p

    def on_frame(self, raw: bytes | str, ts_recv: int) -> None:
        try:
            msg = _decoder.decode(raw)
            match msg:
                case _L2Update():
                    self._update(msg, ts_recv, raw)
                case _Match():  # and _LastMatch
                    self._trade(msg, ts_recv, raw)
                case _Ticker():
                    self._ticker(msg, ts_recv, raw)
                case _Snapshot():
                    self._snapshot(msg, ts_recv, raw)
                case _Subscriptions():
                    self.out.touch()
                    if self.on_subscribed is not None:
                        self.on_subscribed()
                case _Heartbeat():
                    self.out.touch()
                case _Error():
                    raise BadInput("venue_error", f"{msg.message}: {msg.reason}")
        except DECODE_ERRORS as exc:
            bad = classify(exc)
            self._lost_update(raw, bad.reason)
            self.out.bad_input(bad, raw)
        except BadInput as exc:
            self.out.bad_input(exc, raw)

    def _lost_update(self, raw: bytes | str, reason: str) -> None:
        """A message that did not decode: if it was a level2 update of a synced product, that book now
        misses it (level2 has no sequence numbers to show the hole later): resync the product."""
        try:
            probe = _probe.decode(raw)
        except DECODE_ERRORS:
            return  # not even a JSON object with a type and a product
        p = self.products.get(probe.product_id)
        if probe.type == "l2update" and p is not None and p.synced:
            self._resync(p, reason)

    def _time(self, text: str, ts_recv: int) -> int:
        return self.retime(iso_ns(text)) if text else ts_recv

    def _snapshot(self, msg: _Snapshot, ts_recv: int, raw: bytes | str) -> None:
        p = self._product(msg.product_id)
        values = _snapshot_values.decode(raw)
        try:
            p.book.reset_valued(msg.bids, values.bids, msg.asks, values.asks)
        except BadInput:
            p.synced = False
            raise
        if p.book.crossed:
            bid, ask = p.book.best_bid, p.book.best_ask
            p.synced = False
            raise CrossedBook(p.book.symbol, bid and bid[0], ask and ask[0])
        p.synced = True
        book = p.book
        self.out.emit(
            BookSnapshot(
                venue=self.venue,
                symbol=book.symbol,
                venue_symbol=p.product,
                ts_event=ts_recv,
                ts_recv=ts_recv,
                bids=book.bids(),
                asks=book.asks(),
            )
        )
        self._quote_from_book(p, ts_recv, ts_recv)

    def _update(self, msg: _L2Update, ts_recv: int, raw: bytes | str) -> None:
        p = self._product(msg.product_id)
        if not p.synced:
            self.ignored_total += 1
            return
        try:
            changes = _l2update_values.decode(raw).changes
        except msgspec.ValidationError as exc:
            bad = classify(exc)
            self._resync(p, bad.reason)
            raise bad from None
        bids: list[tuple[str, str]] = []
        asks: list[tuple[str, str]] = []
        bid_values: list[tuple[float, float]] = []
        ask_values: list[tuple[float, float]] = []
        for (side, price, size), (_, key, amount) in zip(msg.changes, changes, strict=True):
            if side == "buy":
                bids.append((price, size))
                bid_values.append((key, amount))
            elif side == "sell":
                asks.append((price, size))
                ask_values.append((key, amount))
            else:
                self._resync(p, "invalid_field")
                raise BadInput("invalid_field", f"{p.product} change side {side!r}", p.book.symbol)
        try:
            p.book.apply_valued(bids, bid_values, asks, ask_values)
        except BadInput as exc:  # the book took part of the update: rebuild it
            self._resync(p, exc.reason)
            raise
        if p.book.crossed:
            bid, ask = p.book.best_bid, p.book.best_ask
            self._resync(p, "crossed_book")
            raise CrossedBook(p.book.symbol, bid and bid[0], ask and ask[0])
        ts_event = self._time(msg.time, ts_recv)
        self.out.emit(
            BookDelta(
                venue=self.venue,
                symbol=p.book.symbol,
                venue_symbol=p.product,
                ts_event=ts_event,
                ts_recv=ts_recv,
                bids=tuple(bids),
                asks=tuple(asks),
            )
        )
        self._quote_from_book(p, ts_event, ts_recv)

    def _resync(self, p: _Product, reason: str) -> None:
        p.synced = False
        p.top = ()
        self.out.resync(p.book.symbol, reason)
        if self.need_resubscribe is not None:
            self.need_resubscribe(p.product)

    def _quote_from_book(self, p: _Product, ts_event: int, ts_recv: int) -> None:
        bid, ask = p.book.best_bid, p.book.best_ask
        top = (bid, ask)
        if top == p.top:
            return
        p.top = top
        self.out.emit(
            Quote(
                venue=self.venue,
                symbol=p.book.symbol,
                venue_symbol=p.product,
                ts_event=ts_event,
                ts_recv=ts_recv,
                bid_px=bid[0] if bid else None,
                bid_sz=bid[1] if bid else "0",
                ask_px=ask[0] if ask else None,
                ask_sz=ask[1] if ask else "0",
            )
        )

    def _trade(self, msg: _Match, ts_recv: int, raw: bytes | str) -> None:
        p = self._product(msg.product_id)
        if not _match_values.decode(raw).size:
            raise BadInput("invalid_field", f"size {msg.size}")
        if msg.side == "buy":
            aggressor = Side.SELL
        elif msg.side == "sell":
            aggressor = Side.BUY
        else:
            raise BadInput("invalid_field", f"side {msg.side!r}")
        ts_event = self._time(msg.time, ts_recv)
        sym = p.book.symbol
        last = self._last_trade.get(sym)
        if last is not None:
            if msg.trade_id <= last:
                return  # last_match after a reconnect, or a retransmission: already published
            if msg.trade_id != last + 1 and sym not in self._fresh:
                self.out.gap(sym, f"trade id {last} -> {msg.trade_id}")
            self._fresh.discard(sym)
        self._last_trade[sym] = msg.trade_id
        self.out.emit(
            Trade(
                venue=self.venue,
                symbol=sym,
                venue_symbol=p.product,
                seq=msg.sequence,
                ts_event=ts_event,
                ts_recv=ts_recv,
                trade_id=str(msg.trade_id) + self.trade_id_suffix,
                price=msg.price,
                size=msg.size,
                aggressor=aggressor,
            )
        )

    def _ticker(self, msg: _Ticker, ts_recv: int, raw: bytes | str) -> None:
        p = self._product(msg.product_id)
        v = _ticker_values.decode(raw)
        bid, ask = v.best_bid, v.best_ask
        if (
            bid is not None
            and ask is not None
            and at_or_above(msg.best_bid or "0", msg.best_ask or "0", bid, ask)
        ):
            raise BadInput("crossed_quote", f"{p.product} ticker bid {msg.best_bid} >= ask {msg.best_ask}")
        if self.level2:
            self.out.touch()  # the book gives the quote, with sizes
            return
        self.out.emit(
            Quote(
                venue=self.venue,
                symbol=p.book.symbol,
                venue_symbol=p.product,
                seq=msg.sequence,
                ts_event=self._time(msg.time, ts_recv),
                ts_recv=ts_recv,
                bid_px=msg.best_bid,
                bid_sz=msg.best_bid_size or "0",
                ask_px=msg.best_ask,
                ask_sz=msg.best_ask_size or "0",
            )
        )
