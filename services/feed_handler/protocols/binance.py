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
from decimal import Decimal
from typing import Any

import msgspec

from feed_handler.book import Book
from feed_handler.errors import BadInput, CrossedBook
from feed_handler.protocols.base import LevelList, Output, Retime, check_levels, classify, identity
from nexus.messages import BookDelta, BookSnapshot, Quote, Side, Trade
from nexus.subjects import safe_symbol

MS = 1_000_000
MAX_BUFFERED = 2000
"""Depth diffs kept per symbol while waiting for a snapshot; older ones are dropped (a later resync)."""


class _Envelope(msgspec.Struct):
    stream: str | None = None
    data: msgspec.Raw = msgspec.Raw(b"")
    result: Any = msgspec.UNSET
    id: int | None = None
    error: Any = None


class _BookTicker(msgspec.Struct):
    u: int
    s: str
    b: Decimal
    B: Decimal
    a: Decimal
    A: Decimal
    E: int = 0


class _AggTrade(msgspec.Struct):
    e: str
    E: int
    s: str
    a: int
    p: Decimal
    q: Decimal
    T: int
    m: bool


class _RawTrade(msgspec.Struct):
    e: str
    E: int
    s: str
    t: int
    p: Decimal
    q: Decimal
    T: int
    m: bool


class _Depth(msgspec.Struct):
    e: str
    E: int
    s: str
    U: int
    u: int
    b: LevelList
    a: LevelList


class DepthSnapshot(msgspec.Struct):
    """The REST answer of GET /api/v3/depth."""

    lastUpdateId: int
    bids: LevelList
    asks: LevelList


_envelope = msgspec.json.Decoder(_Envelope)
_book_ticker = msgspec.json.Decoder(_BookTicker)
_agg_trade = msgspec.json.Decoder(_AggTrade)
_raw_trade = msgspec.json.Decoder(_RawTrade)
_depth = msgspec.json.Decoder(_Depth)
_snapshot = msgspec.json.Decoder(DepthSnapshot)
_encoder = msgspec.json.Encoder()


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
        self.buffer: list[tuple[_Depth, int]] = []


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
    ) -> None:
        self.venue = venue
        self.out = out
        self.need_snapshot = need_snapshot
        self.on_ack = on_ack
        self.retime = retime
        self.symbols = {s.upper(): safe_symbol(s.upper()) for s in symbols}
        self._sync: dict[str, _Sync] = {}
        self._last_trade: dict[str, int] = {}
        self._fresh: set[str] = set()
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
            env = _envelope.decode(raw)
            if env.stream is None or not env.data:
                self._control(env, raw)
                return
            kind = env.stream.partition("@")[2]
            if kind == "bookTicker":
                self._quote(_book_ticker.decode(env.data), ts_recv)
            elif kind == "aggTrade":
                agg = _agg_trade.decode(env.data)
                self._expect_event(agg.e, "aggTrade")
                self._trade(agg.s, agg.a, agg.p, agg.q, agg.T, agg.m, ts_recv)
            elif kind == "trade":
                t = _raw_trade.decode(env.data)
                self._expect_event(t.e, "trade")
                self._trade(t.s, t.t, t.p, t.q, t.T, t.m, ts_recv)
            elif kind.startswith("depth"):
                d = _depth.decode(env.data)
                self._expect_event(d.e, "depthUpdate")
                self._depth(d, ts_recv, raw)
            else:
                raise BadInput("unknown_type", f"stream {env.stream!r}")
        except msgspec.DecodeError as exc:
            self.out.bad_input(classify(exc), raw)
        except BadInput as exc:
            self.out.bad_input(exc, raw)

    def _control(self, env: _Envelope, raw: bytes | str) -> None:
        if env.id is not None and (env.error is not None or env.result is not msgspec.UNSET):
            self.out.touch()
            if self.on_ack is not None:
                self.on_ack(env.id, None if env.error is None else str(env.error))
            return
        raise BadInput("unknown_type", "neither a stream message nor a request answer")

    @staticmethod
    def _expect_event(got: str, want: str) -> None:
        if got != want:
            raise BadInput("unknown_type", f"event {got!r} on a {want} stream")

    def _symbol(self, venue_symbol: str) -> str:
        sym = self.symbols.get(venue_symbol)
        if sym is None:
            raise BadInput("unknown_symbol", venue_symbol)
        return sym

    def _quote(self, q: _BookTicker, ts_recv: int) -> None:
        sym = self._symbol(q.s)
        if q.B < 0 or q.A < 0:
            raise BadInput("negative_size", f"{q.s} bookTicker sizes {q.B}/{q.A}", sym)
        bid = q.b if q.B else None
        ask = q.a if q.A else None
        if bid is not None and ask is not None and bid >= ask:
            raise BadInput("crossed_quote", f"{q.s} bid {bid} >= ask {ask}", sym)
        self.out.emit(
            Quote(
                venue=self.venue,
                symbol=sym,
                venue_symbol=q.s,
                seq=q.u,
                ts_event=self.retime(q.E * MS) if q.E else ts_recv,
                ts_recv=ts_recv,
                bid_px=bid,
                bid_sz=q.B,
                ask_px=ask,
                ask_sz=q.A,
            )
        )

    def _trade(
        self, vs: str, tid: int, price: Decimal, size: Decimal, t_ms: int, buyer_maker: bool, ts_recv: int
    ) -> None:
        sym = self._symbol(vs)
        if size <= 0:
            raise BadInput("negative_size" if size < 0 else "invalid_field", f"{vs} trade {tid} size {size}")
        if price <= 0:
            raise BadInput("invalid_field", f"{vs} trade {tid} price {price}")
        last = self._last_trade.get(sym)
        if last is not None:
            if tid <= last:
                return  # already published (a retransmission, or a replay after a reconnect)
            if tid != last + 1 and sym not in self._fresh:
                self.out.gap(sym, f"trade id {last} -> {tid}")
            self._fresh.discard(sym)
        self._last_trade[sym] = tid
        self.out.emit(
            Trade(
                venue=self.venue,
                symbol=sym,
                venue_symbol=vs,
                seq=tid,
                ts_event=self.retime(t_ms * MS),
                ts_recv=ts_recv,
                trade_id=str(tid),
                price=price,
                size=size,
                aggressor=Side.SELL if buyer_maker else Side.BUY,
            )
        )

    # -- depth ----------------------------------------------------------------------------------------

    def _state(self, vs: str) -> _Sync:
        st = self._sync.get(vs)
        if st is None:
            st = self._sync[vs] = _Sync(vs, self._symbol(vs))
        return st

    def _depth(self, d: _Depth, ts_recv: int, raw: bytes | str) -> None:
        st = self._state(d.s)
        try:
            check_levels(d.b, "bid")
            check_levels(d.a, "ask")
        except BadInput as exc:
            # Skipping a diff would leave a hole in the book: report it and resync the symbol.
            self.out.bad_input(exc, raw)
            if st.synced:
                self._resync(st, exc.reason)
            return
        if not st.synced:
            st.buffer.append((d, ts_recv))
            if len(st.buffer) > MAX_BUFFERED:
                del st.buffer[0]
            self._request(st)
            return
        if d.u <= st.prev_u:
            self.stale_diffs_total += 1
            return
        if not self._apply(st, d, ts_recv):
            return
        self.out.emit(
            BookDelta(
                venue=self.venue,
                symbol=st.book.symbol,
                venue_symbol=d.s,
                seq=d.u,
                first_seq=d.U,
                ts_event=self.retime(d.E * MS),
                ts_recv=ts_recv,
                bids=tuple(d.b),
                asks=tuple(d.a),
            )
        )

    def _apply(self, st: _Sync, d: _Depth, ts_recv: int) -> bool:
        """Apply one diff to a synced book with the continuity and crossing checks; False = resyncing."""
        expected = st.prev_u + 1
        ok = (d.U <= expected <= d.u) if st.first else (expected == d.U)
        if not ok:
            self.out.gap(st.book.symbol, f"{d.s}: expected update {expected}, got U={d.U} u={d.u}")
            self._resync(st, "gap", (d, ts_recv))
            return False
        st.book.apply(d.b, d.a, d.u)
        st.prev_u = d.u
        st.first = False
        if st.book.crossed:
            bid, ask = st.book.best_bid, st.book.best_ask
            self.out.bad_input(
                CrossedBook(st.book.symbol, bid and bid[0], ask and ask[0]), _encoder.encode(d)
            )
            self._resync(st, "crossed_book")
            return False
        return True

    def _resync(self, st: _Sync, reason: str, keep: tuple[_Depth, int] | None = None) -> None:
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
            check_levels(snap.bids, "bid")
            check_levels(snap.asks, "ask")
        except msgspec.DecodeError as exc:
            self.snapshot_failed(venue_symbol.upper())
            self.out.bad_input(classify(exc), raw)
            return
        except BadInput as exc:
            self.snapshot_failed(venue_symbol.upper())
            self.out.bad_input(exc, raw)
            return
        st.requested = False
        last = snap.lastUpdateId
        pending = [(d, t) for d, t in st.buffer if d.u > last]
        self.stale_diffs_total += len(st.buffer) - len(pending)
        if pending and last + 1 < pending[0][0].U:
            # The snapshot is older than every buffered diff: it cannot be bridged, ask again.
            st.buffer = pending
            self._request(st)
            return
        st.buffer = []
        st.book.reset(snap.bids, snap.asks, last)
        st.prev_u = last
        st.first = True
        st.synced = True
        if st.book.crossed:
            bid, ask = st.book.best_bid, st.book.best_ask
            self.out.bad_input(CrossedBook(st.book.symbol, bid and bid[0], ask and ask[0]), raw)
            self._resync(st, "crossed_book")
            return
        ts_event = pending[-1][0].E * MS if pending else 0
        for d, t in pending:
            if not self._apply(st, d, t):
                return
        book = st.book
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
