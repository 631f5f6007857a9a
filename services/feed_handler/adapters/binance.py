"""Binance spot over a websocket: SUBSCRIBE on connect (again after every reconnect), frames through
BinanceProtocol, REST depth snapshots fetched when a book needs (re)syncing. Pings from the venue are
answered by the websockets library (pong), and the client pings too (`ping_interval`)."""

from __future__ import annotations

import asyncio
import itertools

from websockets.asyncio.client import connect

from feed_handler.adapters.base import Adapter, AdapterFailed, FeedContext
from feed_handler.book import Book
from feed_handler.config import BinanceFeed
from feed_handler.errors import BadInput, SessionEnded
from feed_handler.http import HttpError, http_get
from feed_handler.protocols import binance
from feed_handler.resilience_helpers import retry_delays
from nexus.messages import now_ns

SNAPSHOT_ATTEMPTS = 5
"""REST snapshot attempts for one symbol before the session is given up (and the feed reconnects)."""


class BinanceAdapter(Adapter[BinanceFeed]):
    def __init__(self, config: BinanceFeed, ctx: FeedContext) -> None:
        super().__init__(config, ctx)
        self._ids = itertools.count(1)
        self._sub_id = 0
        self.proto = binance.BinanceProtocol(
            ctx.venue,
            config.symbols,
            ctx,
            need_snapshot=self._need_snapshot,
            on_ack=self._on_ack,
        )
        self._fetches: set[asyncio.Task[None]] = set()
        self._failure: BaseException | None = None
        self.snapshots_total = 0
        self.snapshot_failures_total = 0

    def books(self) -> dict[str, Book]:
        return self.proto.books()

    def stats(self) -> dict[str, float]:
        return {
            "snapshots_total": float(self.snapshots_total),
            "snapshot_failures_total": float(self.snapshot_failures_total),
            "stale_diffs_total": float(self.proto.stale_diffs_total),
        }

    async def run(self) -> None:
        cfg = self.config
        self.proto.reset()
        self._failure = None
        try:
            async with connect(
                cfg.url,
                open_timeout=5,
                ping_interval=10,
                ping_timeout=10,
                close_timeout=1,
                max_size=16 * 1024 * 1024,
            ) as ws:
                self._sub_id = next(self._ids)
                streams = binance.stream_names(cfg.symbols, cfg.channels, cfg.depth_interval)
                await ws.send(binance.subscribe_frame(streams, self._sub_id).decode())
                ctx = self.ctx
                on_frame = self.proto.on_frame
                async for frame in ws:
                    on_frame(frame, now_ns())
                    if self._failure is not None:
                        raise self._failure
                    if ctx.congested:
                        await ctx.wait_room()
                raise SessionEnded(f"closed by the venue: {ws.close_code} {ws.close_reason}".strip())
        finally:
            for task in self._fetches:
                task.cancel()
            await asyncio.gather(*self._fetches, return_exceptions=True)
            self._fetches.clear()

    def _on_ack(self, request_id: int, error: str | None) -> None:
        if request_id != self._sub_id:
            return
        if error is not None:
            self._failure = AdapterFailed(f"SUBSCRIBE refused: {error}")
            return
        self.ctx.live(f"subscribed {len(self.config.symbols)} symbols")

    def _need_snapshot(self, venue_symbol: str) -> None:
        task = asyncio.get_running_loop().create_task(self._fetch(venue_symbol), name=f"depth-{venue_symbol}")
        self._fetches.add(task)
        task.add_done_callback(self._fetches.discard)

    async def _fetch(self, venue_symbol: str) -> None:
        cfg = self.config
        url = f"{cfg.rest_url.rstrip('/')}/api/v3/depth?symbol={venue_symbol}&limit={cfg.snapshot_limit}"
        for attempt, delay in enumerate(retry_delays(SNAPSHOT_ATTEMPTS), 1):
            try:
                body = await http_get(url, cfg.snapshot_timeout)
            except HttpError as exc:
                self.snapshot_failures_total += 1
                self.ctx.bad_input(BadInput("snapshot_failed", f"{exc} (attempt {attempt})"), url)
                if delay is None:
                    break
                await asyncio.sleep(delay)
                continue
            self.snapshots_total += 1
            self.proto.on_snapshot(venue_symbol, body, now_ns())
            return
        self.proto.snapshot_failed(venue_symbol)
        self._failure = SessionEnded(
            f"no depth snapshot for {venue_symbol} after {SNAPSHOT_ATTEMPTS} attempts"
        )
