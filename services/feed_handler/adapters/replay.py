"""Replay of recorded data at 1x, Nx or as fast as possible, optionally in a loop.

Formats (`format = "auto"` picks by content and name):
    crypto_ws   a recorded websocket session (../shared/data/crypto_ws): every received frame goes through
                the venue's own protocol parser (Binance or Coinbase), REST records answer the depth
                snapshot requests, so replay exercises exactly the live parsing and book sync
    ndjson      Nexus market-data messages, one JSON object per line
    lobster     a LOBSTER message CSV with its orderbook CSV beside it (trades and top-of-book quotes)

Pacing follows the recorded receive times (crypto_ws) or event times (ndjson, lobster). With `retime`,
event times are mapped onto the replay's clock (start + (t - t0) / speed; the receive time when as fast as
possible), so latency figures stay meaningful. In a loop the file is decoded once and kept in memory,
and pass n >= 1 re-publishes trades with the trade id suffix `~n` (a consumer never sees one trade id
twice).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from feed_handler.adapters.base import Adapter, AdapterFailed, FeedContext
from feed_handler.adapters.pacing import BATCH, Pacer
from feed_handler.book import Book
from feed_handler.config import ReplayFeed
from feed_handler.normalised import MarketDataMsg, Trade
from feed_handler.protocols import lobster, ndjson, recording
from feed_handler.protocols.base import Retime, at_receipt, identity
from feed_handler.protocols.binance import BinanceProtocol
from feed_handler.protocols.coinbase import CoinbaseProtocol
from nexus.messages import now_ns

_T = TypeVar("_T")


def detect(path: str | Path) -> str:
    """The format of a replay file: crypto_ws, lobster or ndjson."""
    if lobster.is_lobster(path):
        return "lobster"
    if recording.sniff(path):
        return "crypto_ws"
    return "ndjson"


class _LoopOutput:
    """Passes everything to the feed; in loop pass n >= 1, suffixes trade ids with `~n`."""

    def __init__(self, ctx: FeedContext) -> None:
        self.ctx = ctx
        self.suffix = ""
        self.bad_input = ctx.bad_input
        self.gap = ctx.gap
        self.resync = ctx.resync
        self.touch = ctx.touch

    def emit(self, msg: MarketDataMsg) -> None:
        if self.suffix and type(msg) is Trade:
            msg = msgspec.structs.replace(msg, trade_id=msg.trade_id + self.suffix)
        self.ctx.emit(msg)


class ReplayAdapter(Adapter[ReplayFeed]):
    def __init__(self, config: ReplayFeed, ctx: FeedContext) -> None:
        super().__init__(config, ctx)
        self.format = config.format if config.format != "auto" else detect(config.path)
        self.passes = 0
        self.records_total = 0
        self._proto: BinanceProtocol | CoinbaseProtocol | None = None
        self._cache: list[Any] | None = None

    def books(self) -> dict[str, Book]:
        return self._proto.books() if self._proto is not None else {}

    def stats(self) -> dict[str, float]:
        return {"passes_total": float(self.passes), "records_total": float(self.records_total)}

    def _retime(self, t0_ns: int) -> Retime:
        speed = self.config.speed
        if not self.config.retime:
            return identity
        if speed <= 0:
            return at_receipt
        start = now_ns()
        return lambda ns: start + int((ns - t0_ns) / speed)

    async def run(self) -> None:
        if not await asyncio.to_thread(Path(self.config.path).is_file):
            raise AdapterFailed(f"{self.config.path}: not a file")
        out = _LoopOutput(self.ctx)
        self.ctx.live(f"replay {self.format} x{self.config.speed or 'max'}")
        while True:
            out.suffix = f"~{self.passes}" if self.passes else ""
            if self.format == "crypto_ws":
                await self._crypto_ws(out)
            else:
                await self._messages(out)
            self.passes += 1
            if not self.config.loop:
                return
            await asyncio.sleep(0)  # a short file looped as fast as possible must still yield

    async def _crypto_ws(self, out: _LoopOutput) -> None:
        try:
            await self._crypto_ws_pass(out.suffix)
        except recording.RecordingError as exc:
            raise AdapterFailed(f"{self.config.path}: {exc}") from None

    async def _crypto_ws_pass(self, suffix: str) -> None:
        out = self.ctx  # the parser suffixes the trade ids itself: nothing between it and the feed
        venue = recording.sniff(self.config.path)
        symbols = self.config.symbols or recording.symbols(self.config.path, venue)
        if not symbols:
            raise AdapterFailed(f"{self.config.path}: no symbols found in the recording")
        first = next((r for r in recording.records(self.config.path) if r.kind == "recv"), None)
        if first is None:
            raise AdapterFailed(f"{self.config.path}: no received messages")
        retime = self._retime(int(first.ts * 1e9))
        proto: BinanceProtocol | CoinbaseProtocol
        if venue == "binance":
            proto = BinanceProtocol(
                self.ctx.venue, symbols, out, need_snapshot=_ignore, retime=retime, trade_id_suffix=suffix
            )
        elif venue == "coinbase":
            proto = CoinbaseProtocol(self.ctx.venue, symbols, out, retime=retime, trade_id_suffix=suffix)
        else:
            raise AdapterFailed(f"{self.config.path}: neither a Binance nor a Coinbase recording")
        self._proto = proto
        pacer = Pacer(self.ctx, self.config.speed)
        realtime = self.config.speed > 0
        n = 0
        on_frame, clock = proto.on_frame, time.time_ns
        for rec in self._cached(recording.records(self.config.path)):
            if realtime:
                await pacer.until(rec.ts)
            else:
                n += 1
                if n == BATCH:
                    n = 0
                    await pacer.breathe()
            if rec.kind == "recv":
                on_frame(rec.payload, clock())
            elif rec.kind == "rest" and isinstance(proto, BinanceProtocol):
                proto.on_snapshot(rec.rest_symbol, rec.payload, clock())
            self.records_total += 1

    def _cached(self, source: Iterator[_T]) -> Iterable[_T]:
        """In a loop the file is read and decoded once and kept in memory; otherwise it is streamed."""
        if not self.config.loop:
            return source
        if self._cache is None:
            self._cache = list(source)
        return self._cache

    async def _messages(self, out: _LoopOutput) -> None:
        path = self.config.path
        source: Iterator[tuple[int, MarketDataMsg]]
        if self.format == "lobster":
            source = lobster.read(path, self.ctx.venue, out, self.config.lobster_symbol)
        else:
            source = ndjson.read(path, out)
        pacer = Pacer(self.ctx, self.config.speed)
        realtime = self.config.speed > 0
        n = 0
        venue = self.ctx.venue
        retime: Retime | None = None
        replace = msgspec.structs.replace
        try:
            for t_ns, msg in self._cached(source):
                if retime is None:
                    retime = self._retime(t_ns)
                if realtime:
                    await pacer.until(t_ns / 1e9)
                else:
                    n += 1
                    if n == BATCH:
                        n = 0
                        await pacer.breathe()
                now = now_ns()
                out.emit(replace(msg, venue=venue, ts_event=retime(t_ns), ts_recv=now, ts_pub=0))
                self.records_total += 1
        except (OSError, ValueError) as exc:
            raise AdapterFailed(f"{path}: {exc}") from None


def _ignore(_: str) -> None:
    """Replay answers snapshot requests with the recording's own REST records."""
