"""Binance spot combined streams, as pure logic: frames in, normalised messages out.

Streams (`<symbol>@<kind>` inside `{"stream": ..., "data": ...}`):
    aggTrade / trade      -> Trade (trade id `a` / `t`; ids are contiguous per symbol, a jump is a gap)
    bookTicker            -> Quote (seq = update id `u`)
    depth / depth@100ms   -> BookDelta after the book is synced, BookSnapshot when it (re)syncs

Depth sync is Binance's documented procedure, per symbol:
  1. buffer the diffs and ask for a REST snapshot (`lastUpdateId` L);
  2. drop buffered diffs with u <= L; the first one applied must have U <= L+1 <= u;
  3. from then on every diff must have U == previous u + 1, else it is a gap: back to 1 (a resync);
  4. a diff that leaves the book crossed (best bid >= best ask) is bad input: back to 1.
A BookSnapshot of the whole book is published at every (re)sync, so a consumer can rebuild its book.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, NoReturn

import msgspec

from feed_handler.book import Book, at_or_above, is_zero, underflow
from feed_handler.errors import BadInput, CrossedBook
from feed_handler.normalised import BookDelta, BookSnapshot, Quote, Trade
from feed_handler.protocols.base import (
    LevelList,
    LevelValues,
    Output,
    PriceValue,
    QuotePriceValue,
    Retime,
    SizeValue,
    at_receipt,
    classify,
    identity,
    value_decoder,
)
from nexus.messages import DECODE_ERRORS, Side
from nexus.subjects import safe_symbol

MS = 1_000_000
MAX_BUFFERED = 2000
"""Depth diffs kept per symbol while waiting for a snapshot; older ones are dropped (a later resync)."""
MAX_STREAM_NAMES = 4096
"""Stream names whose kind is remembered (a venue sending ever new names cannot grow the table)."""

# Each stream message is decoded twice from the whole frame, both times in C: its text (what is
# published) and its values (what is checked and compared; protocols.base explains why). The decoded
# structs hold strings, numbers and lists of them: not tracked by the garbage collector (gc=False).


class _Envelope(msgspec.Struct):
    stream: str | None = None
    data: msgspec.Raw = msgspec.Raw(b"")
    result: Any = msgspec.UNSET
    id: int | None = None
    error: Any = None


class _BookTicker(msgspec.Struct, gc=False):
    u: int
    s: str
    b: str
    B: str
    a: str
    A: str
    E: int = 0


class _BookTickerValues(msgspec.Struct, gc=False):
    b: QuotePriceValue
    B: SizeValue
    a: QuotePriceValue
    A: SizeValue


class _AggTrade(msgspec.Struct, gc=False):
    e: str
    E: int
    s: str
    a: int
    p: str
    q: str
    T: int
    m: bool


class _RawTrade(msgspec.Struct, gc=False):
    e: str
    E: int
    s: str
    t: int
    p: str
    q: str
    T: int
    m: bool


class _TradeValues(msgspec.Struct, gc=False):
    p: PriceValue
    q: SizeValue


class _Depth(msgspec.Struct, gc=False):
    e: str
    E: int
    s: str
    U: int
    u: int
    b: LevelList
    a: LevelList


class _DepthValues(msgspec.Struct, gc=False):
    b: LevelValues
    a: LevelValues


class DepthSnapshot(msgspec.Struct):
    """The REST answer of GET /api/v3/depth."""

    lastUpdateId: int
    bids: LevelList
    asks: LevelList


class _SnapshotValues(msgspec.Struct):
    bids: LevelValues
    asks: LevelValues


def _frame(data: type[msgspec.Struct], *, values: bool = False) -> msgspec.json.Decoder[Any]:
    """A decoder of a whole `{"stream": ..., "data": {...}}` frame into its `data`."""
    frame = msgspec.defstruct(f"{data.__name__}Frame", [("data", data)], gc=False)
    return value_decoder(frame) if values else msgspec.json.Decoder(frame)


_envelope = msgspec.json.Decoder(_Envelope)
_book_ticker = _frame(_BookTicker)
_book_ticker_values = _frame(_BookTickerValues, values=True)
_agg_trade = _frame(_AggTrade)
_raw_trade = _frame(_RawTrade)
_trade_values = _frame(_TradeValues, values=True)
_depth = _frame(_Depth)
_depth_values = _frame(_DepthValues, values=True)
_snapshot = msgspec.json.Decoder(DepthSnapshot)
_snapshot_values = value_decoder(_SnapshotValues)
_encoder = msgspec.json.Encoder()

QUOTE, AGG_TRADE, TRADE, DEPTH = range(4)
_KINDS = {"bookTicker": QUOTE, "aggTrade": AGG_TRADE, "trade": TRADE}
_HEAD = '{"stream":"'
_HEAD_BYTES = _HEAD.encode()


def stream_kind(stream: str) -> int | None:
    """QUOTE, AGG_TRADE, TRADE or DEPTH for a stream name (`btcusdt@depth@100ms`), None if unknown."""
    kind = stream.partition("@")[2]
    return DEPTH if kind.startswith("depth") else _KINDS.get(kind)


def stream_names(symbols: Iterable[str], channels: Iterable[str], depth_interval: str = "100ms") -> list[str]:
    """`btcusdt@aggTrade`, `btcusdt@bookTicker`, `btcusdt@depth@100ms`, ..."""
    return [
        f"{sym.lower()}@depth@{depth_interval}" if ch == "depth" else f"{sym.lower()}@{ch}"
        for sym in symbols
        for ch in channels
    ]


def subscribe_frame(streams: list[str], request_id: int) -> bytes:
    return _encoder.encode({"method": "SUBSCRIBE", "params": streams, "id": request_id})


class _Sync:
    """Depth sync state of one symbol."""

    __slots__ = ("book", "buffer", "first", "prev_u", "requested", "synced", "venue_symbol")

    def __init__(self, venue_symbol: str, symbol: str) -> None:
        self.venue_symbol = venue_symbol
        self.book = Book(symbol)
        self.synced = False
        self.requested = False
        self.first = True
        self.prev_u = 0
        self.buffer: list[tuple[_Depth, _DepthValues, int]] = []


class BinanceProtocol:
    """Parses one Binance session's frames. `need_snapshot(venue_symbol)` asks the adapter for a REST
    snapshot (answered with `on_snapshot`); `on_ack(id, error)` reports SUBSCRIBE answers."""

    def __init__(
        self,
        venue: str,
        symbols: Iterable[str],
        out: Output,
        *,
        need_snapshot: Callable[[str], None],
        on_ack: Callable[[int, str | None], None] | None = None,
        retime: Retime = identity,
        trade_id_suffix: str = "",
    ) -> None:
        self.venue = venue
        self.out = out
        self.need_snapshot = need_snapshot
        self.on_ack = on_ack
        self.retime = retime
        self.trade_id_suffix = trade_id_suffix
        """Appended to every trade id (a replay's later passes: a consumer never sees one id twice)."""
        self._venue_time = retime is identity
        self._at_receipt = retime is at_receipt
        """The usual Retimes, applied without a call on the hot path."""
        self.symbols = {s.upper(): safe_symbol(s.upper()) for s in symbols}
        self._sync: dict[str, _Sync] = {}
        self._last_trade: dict[str, int] = {}
        self._fresh: set[str] = set()
        self._kinds: dict[str | bytes, int | None] = {}
        """Stream name (as it appears in a frame, str or bytes) -> its kind."""
        self.stale_diffs_total = 0
        """Diffs already contained in the book (u <= the book's id): normal right after a snapshot."""

    def reset(self) -> None:
        """A new session: every book must be synced again. Trade ids carry over so that no trade is
        published twice; the first trade of each symbol may jump (trades missed while disconnected are
        the reconnect's cost, counted there, not a gap in the stream)."""
        self._sync.clear()
        self._fresh = set(self._last_trade)

    def books(self) -> dict[str, Book]:
        """The synced books by subject-safe symbol."""
        return {s.book.symbol: s.book for s in self._sync.values() if s.synced}

    # -- frames ---------------------------------------------------------------------------------------

    def on_frame(self, raw: bytes | str, ts_recv: int) -> None:
        """One websocket text frame. Bad input is reported to `out`, never raised."""
        try:
            # A stream message as Binance writes it begins `{"stream":"<name>"`: its kind by its name.
            name: str | bytes | None
            if isinstance(raw, bytes):
                name = raw[11 : raw.find(b'"', 11)] if raw.startswith(_HEAD_BYTES) else None
            else:
                name = raw[11 : raw.find('"', 11)] if raw.startswith(_HEAD) else None
            kind = self._kinds.get(name) if name is not None else None
            if kind is None:
                kind = self._kind(raw, name)
                if kind is None:
                    return  # a request's answer
            if kind == QUOTE:
                self._quote(raw, ts_recv)
            elif kind == DEPTH:
                self._depth(raw, ts_recv)
            else:
                self._trade(raw, kind, ts_recv)
        except DECODE_ERRORS as exc:
            self.out.bad_input(classify(exc), raw)
        except BadInput as exc:
            self.out.bad_input(exc, raw)

    def _kind(self, raw: bytes | str, name: str | bytes | None) -> int | None:
        """The kind of a stream message whose name is not known yet (`name`: None when the frame does not
        begin as Binance writes it; then it is decoded to find out). None for a request's answer; a
        message of no known kind raises BadInput."""
        if name is not None:
            stream = name if isinstance(name, str) else name.decode("utf-8", "replace")
            kind = stream_kind(stream)
            if kind is not None and len(self._kinds) < MAX_STREAM_NAMES:
                self._kinds[name] = kind
        else:
            env = _envelope.decode(raw)
            if env.stream is None or not env.data:
                self._control(env, raw)
                return None
            stream = env.stream
            kind = stream_kind(stream)
        if kind is None:
            raise BadInput("unknown_type", f"stream {stream!r}")
        return kind

    def _control(self, env: _Envelope, raw: bytes | str) -> None:
        if env.id is not None and (env.error is not None or env.result is not msgspec.UNSET):
            self.out.touch()
            if self.on_ack is not None:
                self.on_ack(env.id, None if env.error is None else str(env.error))
            return
        raise BadInput("unknown_type", "neither a stream message nor a request answer")

    @staticmethod
    def _unexpected(got: str, want: str) -> NoReturn:
        raise BadInput("unknown_type", f"event {got!r} on a {want} stream")

    def _symbol(self, venue_symbol: str) -> str:
        sym = self.symbols.get(venue_symbol)
        if sym is None:
            raise BadInput("unknown_symbol", venue_symbol)
        return sym

    def _quote(self, raw: bytes | str, ts_recv: int) -> None:
        q: _BookTicker = _book_ticker.decode(raw).data
        sym = self.symbols.get(q.s) or self._symbol(q.s)
        v: _BookTickerValues = _book_ticker_values.decode(raw).data
        has_bid = v.B > 0
        has_ask = v.A > 0
        if not has_bid and not is_zero(q.B):  # a side with no orders has price null and size 0
            raise underflow(q.B)
        if not has_ask and not is_zero(q.A):
            raise underflow(q.A)
        if (has_bid and v.b <= 0) or (has_ask and v.a <= 0):
            raise BadInput("invalid_field", f"{q.s} bookTicker price not above 0: {q.b}/{q.a}", sym)
        if has_bid and has_ask and v.b >= v.a and at_or_above(q.b, q.a, v.b, v.a):
            raise BadInput("crossed_quote", f"{q.s} bid {q.b} >= ask {q.a}", sym)
        # the event time, written out: the usual Retimes cost no call
        ts_event = q.E * MS
        if not self._venue_time:
            ts_event = ts_recv if self._at_receipt or not q.E else self.retime(ts_event)
        self.out.emit(
            Quote(
                venue=self.venue,
                symbol=sym,
                venue_symbol=q.s,
                seq=q.u,
                ts_event=ts_event or ts_recv,
                ts_recv=ts_recv,
                bid_px=q.b if has_bid else None,
                bid_sz=q.B,
                ask_px=q.a if has_ask else None,
                ask_sz=q.A,
            )
        )

    def _trade(self, raw: bytes | str, kind: int, ts_recv: int) -> None:
        t: _AggTrade | _RawTrade
        if kind == AGG_TRADE:
            agg: _AggTrade = _agg_trade.decode(raw).data
            if agg.e != "aggTrade":
                self._unexpected(agg.e, "aggTrade")
            t, tid = agg, agg.a
        else:
            single: _RawTrade = _raw_trade.decode(raw).data
            if single.e != "trade":
                self._unexpected(single.e, "trade")
            t, tid = single, single.t
        vs = t.s
        sym = self.symbols.get(vs) or self._symbol(vs)
        if not _trade_values.decode(raw).data.q:
            raise BadInput("invalid_field", f"{vs} trade {tid} size {t.q}")
        last = self._last_trade.get(sym)
        if last is not None:
            if tid <= last:
                return  # already published (a retransmission, or a replay after a reconnect)
            if tid != last + 1 and sym not in self._fresh:
                self.out.gap(sym, f"trade id {last} -> {tid}")
            self._fresh.discard(sym)
        self._last_trade[sym] = tid
        ts_event = t.T * MS
        if not self._venue_time:
            ts_event = ts_recv if self._at_receipt else self.retime(ts_event)
        self.out.emit(
            Trade(
                venue=self.venue,
                symbol=sym,
                venue_symbol=vs,
                seq=tid,
                ts_event=ts_event,
                ts_recv=ts_recv,
                trade_id=str(tid) + self.trade_id_suffix,
                price=t.p,
                size=t.q,
                aggressor=Side.SELL if t.m else Side.BUY,
            )
        )

    # -- depth ----------------------------------------------------------------------------------------

    def _state(self, vs: str) -> _Sync:
        st = self._sync.get(vs)
        if st is None:
            st = self._sync[vs] = _Sync(vs, self._symbol(vs))
        return st

    def _depth(self, raw: bytes | str, ts_recv: int) -> None:
        d: _Depth = _depth.decode(raw).data
        if d.e != "depthUpdate":
            self._unexpected(d.e, "depthUpdate")
        st = self._sync.get(d.s) or self._state(d.s)
        try:
            v: _DepthValues = _depth_values.decode(raw).data
        except msgspec.ValidationError as exc:
            # Skipping a diff would leave a hole in the book: report it and resync the symbol.
            bad = classify(exc)
            self.out.bad_input(bad, raw)
            if st.synced:
                self._resync(st, bad.reason)
            return
        if not st.synced:
            st.buffer.append((d, v, ts_recv))
            if len(st.buffer) > MAX_BUFFERED:
                del st.buffer[0]
            self._request(st)
            return
        if d.u <= st.prev_u:
            self.stale_diffs_total += 1
            return
        if not self._apply(st, d, v, ts_recv):
            return
        ts_event = d.E * MS
        if not self._venue_time:
            ts_event = ts_recv if self._at_receipt else self.retime(ts_event)
        self.out.emit(
            BookDelta(
                venue=self.venue,
                symbol=st.book.symbol,
                venue_symbol=d.s,
                seq=d.u,
                first_seq=d.U,
                ts_event=ts_event,
                ts_recv=ts_recv,
                bids=tuple(d.b),
                asks=tuple(d.a),
            )
        )

    def _apply(self, st: _Sync, d: _Depth, v: _DepthValues, ts_recv: int) -> bool:
        """Apply one diff to a synced book with the continuity and crossing checks; False = resyncing."""
        expected = st.prev_u + 1
        ok = (d.U <= expected <= d.u) if st.first else (expected == d.U)
        if not ok:
            self.out.gap(st.book.symbol, f"{d.s}: expected update {expected}, got U={d.U} u={d.u}")
            self._resync(st, "gap", (d, v, ts_recv))
            return False
        book = st.book
        try:
            book.apply_valued(d.b, v.b, d.a, v.a, d.u)
        except BadInput as exc:  # the book took part of the diff: rebuild it
            self.out.bad_input(exc, _encoder.encode(d))
            self._resync(st, exc.reason)
            return False
        st.prev_u = d.u
        st.first = False
        if book.crossed:
            bid, ask = book.best_bid, book.best_ask
            self.out.bad_input(CrossedBook(book.symbol, bid and bid[0], ask and ask[0]), _encoder.encode(d))
            self._resync(st, "crossed_book")
            return False
        return True

    def _resync(self, st: _Sync, reason: str, keep: tuple[_Depth, _DepthValues, int] | None = None) -> None:
        st.synced = False
        st.buffer = [keep] if keep is not None else []
        self.out.resync(st.book.symbol, reason)
        self._request(st)

    def _request(self, st: _Sync) -> None:
        if not st.requested:
            st.requested = True
            self.need_snapshot(st.venue_symbol)

    def snapshot_failed(self, venue_symbol: str) -> None:
        """The adapter could not get a snapshot: allow the next diff to ask again."""
        st = self._sync.get(venue_symbol)
        if st is not None:
            st.requested = False

    def on_snapshot(self, venue_symbol: str, raw: bytes | str, ts_recv: int) -> None:
        """The REST depth snapshot for `venue_symbol`: (re)build the book and replay buffered diffs."""
        try:
            snap = _snapshot.decode(raw)
            st = self._state(venue_symbol.upper())
            values = _snapshot_values.decode(raw)
        except DECODE_ERRORS as exc:
            self.snapshot_failed(venue_symbol.upper())
            self.out.bad_input(classify(exc), raw)
            return
        except BadInput as exc:
            self.snapshot_failed(venue_symbol.upper())
            self.out.bad_input(exc, raw)
            return
        st.requested = False
        last = snap.lastUpdateId
        pending = [entry for entry in st.buffer if entry[0].u > last]
        self.stale_diffs_total += len(st.buffer) - len(pending)
        if pending and last + 1 < pending[0][0].U:
            # The snapshot is older than every buffered diff: it cannot be bridged, ask again.
            st.buffer = pending
            self._request(st)
            return
        st.buffer = []
        book = st.book
        try:
            book.reset_valued(snap.bids, values.bids, snap.asks, values.asks, last)
        except BadInput as exc:
            self.snapshot_failed(st.venue_symbol)
            self.out.bad_input(exc, raw)
            return
        st.prev_u = last
        st.first = True
        st.synced = True
        if book.crossed:
            bid, ask = book.best_bid, book.best_ask
            self.out.bad_input(CrossedBook(book.symbol, bid and bid[0], ask and ask[0]), raw)
            self._resync(st, "crossed_book")
            return
        ts_event = pending[-1][0].E * MS if pending else 0
        for d, v, t in pending:
            if not self._apply(st, d, v, t):
                return
        self.out.emit(
            BookSnapshot(
                venue=self.venue,
                symbol=book.symbol,
                venue_symbol=st.venue_symbol,
                seq=book.seq,
                ts_event=self.retime(ts_event) if ts_event else ts_recv,
                ts_recv=ts_recv,
                bids=book.bids(),
                asks=book.asks(),
            )
        )
