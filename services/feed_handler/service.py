"""The feed-handler service on the shared runtime: feeds from NEXUS_CONFIG_FILE (or the packaged default
`sim` feed), one outbox drained onto NATS trades first, REST control plane, stats and per-feed details
in the heartbeat."""

from __future__ import annotations

import asyncio
import gc
from typing import Annotated, Any

import msgspec
from fastapi import FastAPI

from feed_handler.api import routes
from feed_handler.config import load_feeds
from feed_handler.manager import FeedManager
from feed_handler.outbox import Outbox, Publisher
from nexus.bus import Bus
from nexus.fastpub import DirectPublish
from nexus.runtime import Service
from nexus.settings import PositiveFloat, Settings
from nexus.subjects import Tier

Count = Annotated[int, msgspec.Meta(ge=1)]
Bytes = Annotated[int, msgspec.Meta(ge=0, le=1 << 20)]


class FeedHandlerSettings(Settings, kw_only=True, forbid_unknown_fields=True):
    """Settings of the feed-handler service (NEXUS_* variables). Feeds come from NEXUS_CONFIG_FILE."""

    status_interval: PositiveFloat = 2.0
    """Seconds between periodic FeedStatus messages (state changes are published at once)."""
    p0_queue_limit: Count = 100_000
    """Trades pending publication above which intake pauses (trades are never dropped)."""
    p1_queue_limit: Count = 65_536
    """Quote/book updates pending above which quotes are dropped (book data is merged, never dropped)."""
    conflate_at: Count = 1024
    """Quote/book updates pending from which updates are conflated per subject (latest wins)."""
    p1_coalesce_bytes: Bytes = 65_536
    """While quotes and book updates are published faster than one turn of the loop, gather up to this
    many bytes before a write to the socket (nexus.fastpub; 0: write every turn)."""
    p0_coalesce_bytes: Bytes = 65_536
    """The same for trades and feed status, on their own connection."""

    def __post_init__(self) -> None:
        super().__post_init__()
        load_feeds(self.config_file)  # a bad feeds file stops the service at start, naming the problem


class FeedHandler(Service[FeedHandlerSettings]):
    """Normalised market data from venue adapters onto priority subjects."""

    name = "feed-handler"
    settings_cls = FeedHandlerSettings
    dedicated_p0 = True
    """Trades go out on their own NATS connection (bench/bench_feed_flood.py measures why)."""
    checked_subjects = True
    """Every subject the handler uses is built by nexus.subjects, whose builders check each token (feed
    and group names and venues are also checked when a feed is added): nats-py need not check again."""

    def __init__(self, settings: FeedHandlerSettings, bus: Bus) -> None:
        super().__init__(settings, bus)
        self.outbox = Outbox(
            p0_limit=settings.p0_queue_limit,
            p1_limit=settings.p1_queue_limit,
            conflate_at=min(settings.conflate_at, settings.p1_queue_limit),
        )
        self.manager = FeedManager(self.outbox, status_interval=settings.status_interval)
        self.publisher: Publisher | None = None

    async def start(self) -> None:
        # straight onto the connections: trades and feed status on the p0 one (dedicated_p0), quotes and
        # book on the main one; a stalled main connection then never holds up a trade or a status
        p0 = DirectPublish(self.bus.conn(Tier.P0), coalesce=self.settings.p0_coalesce_bytes)
        main = DirectPublish(self.bus.conn(Tier.P1), coalesce=self.settings.p1_coalesce_bytes)
        self.publisher = Publisher(self.outbox, p0, main, p2=p0)
        self.spawn(self.publisher.run(), name="publisher")
        self.manager.load(load_feeds(self.settings.config_file))
        # What exists now lives as long as the process: keep it out of the collector's full scans.
        gc.collect()
        gc.freeze()

    async def stop_intake(self) -> None:
        await self.manager.stop_all()

    async def stop(self) -> None:
        # publish what is still queued (bounded), then stop the publisher
        try:
            async with asyncio.timeout(2.0):
                await self.outbox.drained()
        except TimeoutError:
            self.log.warning("feed.unpublished_at_stop", pending=len(self.outbox))
        await self.cancel_tasks()

    def ready(self) -> tuple[bool, str]:
        failed = [f.name for f in self.manager.feeds.values() if f.state == "failed"]
        if failed:
            return True, f"failed feeds: {', '.join(failed)}"
        return True, ""

    def stats(self) -> dict[str, float]:
        box = self.outbox
        stats = self.manager.totals()
        stats.update(
            {
                "md_published_total": float(self.publisher.published_total if self.publisher else 0),
                "md_conflated_total": float(box.conflated_total),
                "md_dropped_total": float(box.dropped_total),
                "md_publish_errors_total": float(self.publisher.errors_total if self.publisher else 0),
                "outbox_p0_queue_depth": float(len(box.p0)),
                "outbox_p0_queue_limit": float(box.p0_limit),
                "outbox_p1_queue_depth": float(len(box.p1)),
                "outbox_p1_queue_limit": float(box.p1_limit),
            }
        )
        return stats

    def details(self) -> dict[str, Any]:
        return {"feeds": self.manager.details()}

    def add_routes(self, app: FastAPI) -> None:
        routes(app, self.manager)
