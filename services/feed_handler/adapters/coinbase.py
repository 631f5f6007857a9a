"""Coinbase Exchange over a websocket: subscribe on connect (again after every reconnect), frames through
CoinbaseProtocol; a book that must be resynced is unsubscribed and subscribed again on level2, which
makes the venue send a fresh snapshot of that product."""

from __future__ import annotations

from websockets.asyncio.client import connect

from feed_handler.adapters.base import Adapter, FeedContext
from feed_handler.book import Book
from feed_handler.config import CoinbaseFeed
from feed_handler.errors import SessionEnded
from feed_handler.protocols import coinbase
from nexus.messages import now_ns


class CoinbaseAdapter(Adapter[CoinbaseFeed]):
    def __init__(self, config: CoinbaseFeed, ctx: FeedContext) -> None:
        super().__init__(config, ctx)
        self.proto = coinbase.CoinbaseProtocol(
            ctx.venue,
            config.symbols,
            ctx,
            level2="level2" in config.channels,
            need_resubscribe=self._need_resubscribe,
            on_subscribed=self._on_subscribed,
        )
        self._resubscribe: list[str] = []
        self._live = False
        self.resubscribes_total = 0

    def books(self) -> dict[str, Book]:
        return self.proto.books()

    def stats(self) -> dict[str, float]:
        return {
            "resubscribes_total": float(self.resubscribes_total),
            "ignored_updates_total": float(self.proto.ignored_total),
        }

    async def run(self) -> None:
        cfg = self.config
        self.proto.reset()
        self._resubscribe.clear()
        self._live = False
        async with connect(
            cfg.url,
            open_timeout=5,
            ping_interval=10,
            ping_timeout=10,
            close_timeout=1,
            max_size=16 * 1024 * 1024,
        ) as ws:
            await ws.send(coinbase.subscribe_frame(cfg.symbols, list(cfg.channels)).decode())
            ctx = self.ctx
            on_frame = self.proto.on_frame
            async for frame in ws:
                on_frame(frame, now_ns())
                if self._resubscribe:
                    products, self._resubscribe = self._resubscribe, []
                    self.resubscribes_total += len(products)
                    await ws.send(coinbase.subscribe_frame(products, ["level2"], unsubscribe=True).decode())
                    await ws.send(coinbase.subscribe_frame(products, ["level2"]).decode())
                if ctx.congested:
                    await ctx.wait_room()
            raise SessionEnded(f"closed by the venue: {ws.close_code} {ws.close_reason}".strip())

    def _on_subscribed(self) -> None:
        # Coinbase answers every (re)subscribe with `subscriptions`; the first one makes the session live.
        if not self._live:
            self._live = True
            self.ctx.live(f"subscribed {len(self.config.symbols)} products")

    def _need_resubscribe(self, product: str) -> None:
        if product not in self._resubscribe:
            self._resubscribe.append(product)
