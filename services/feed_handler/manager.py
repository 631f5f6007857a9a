"""The feeds and failover groups of one feed-handler: add, start, stop, remove, report."""

from __future__ import annotations

from typing import Any

import msgspec

from feed_handler.adapters.base import Adapter
from feed_handler.adapters.binance import BinanceAdapter
from feed_handler.adapters.coinbase import CoinbaseAdapter
from feed_handler.adapters.replay import ReplayAdapter
from feed_handler.adapters.synthetic import SyntheticAdapter
from feed_handler.config import (
    BinanceFeed,
    CoinbaseFeed,
    FeedConfig,
    FeedsFile,
    GroupConfig,
    ReplayFeed,
    SyntheticFeed,
)
from feed_handler.errors import ConfigError, FeedConflict, FeedNotFound
from feed_handler.feed import Feed
from feed_handler.group import FailoverGroup
from feed_handler.outbox import Outbox
from nexus.logs import get_logger

ADAPTERS: dict[type[Any], type[Adapter[Any]]] = {
    SyntheticFeed: SyntheticAdapter,
    ReplayFeed: ReplayAdapter,
    BinanceFeed: BinanceAdapter,
    CoinbaseFeed: CoinbaseAdapter,
}


def make_adapter(config: FeedConfig, feed: Feed) -> Adapter[Any]:
    return ADAPTERS[type(config)](config, feed)


class FeedManager:
    def __init__(self, outbox: Outbox, *, status_interval: float = 2.0) -> None:
        self.outbox = outbox
        self.status_interval = status_interval
        self.feeds: dict[str, Feed] = {}
        self.groups: dict[str, FailoverGroup] = {}
        self.log = get_logger("feed_handler.manager")

    # -- adding ---------------------------------------------------------------------------------------

    def add_feed(self, config: FeedConfig, start: bool | None = None) -> Feed:
        config.check()
        self._free_name(config.name)
        feed = Feed(config, self.outbox, make_adapter, status_interval=self.status_interval)
        self.feeds[config.name] = feed
        self.log.info("feed.added", feed=config.name, kind=config.kind, venue=config.venue)
        if config.autostart if start is None else start:
            feed.start()
        else:
            feed.publish_status()
        return feed

    def add_group(self, config: GroupConfig, start: bool | None = None) -> FailoverGroup:
        config.check()
        self._free_name(config.name)
        members = []
        for name in config.members:
            feed = self.feeds.get(name)
            if feed is None:
                raise ConfigError(config.name, f"member {name!r} is not a feed")
            if feed.group:
                raise ConfigError(config.name, f"member {name!r} is already in group {feed.group!r}")
            members.append(feed)
        if not config.venue:
            config.venue = members[0].venue
        for feed in members:
            if feed.running:
                raise FeedConflict(feed.name, "stop the feed before adding it to a group")
        group = FailoverGroup(config, members, self.outbox, status_interval=self.status_interval)
        self.groups[config.name] = group
        self.log.info("group.added", group=config.name, members=config.members, venue=config.venue)
        if config.autostart if start is None else start:
            group.start()
        else:
            group.publish_status()
        return group

    def load(self, file: FeedsFile) -> None:
        """Everything a feeds file declares; members start with their group."""
        grouped = {m for g in file.group for m in g.members}
        for cfg in file.feed:
            self.add_feed(cfg, start=False if cfg.name in grouped else None)
        for group in file.group:
            self.add_group(group)

    def _free_name(self, name: str) -> None:
        if name in self.feeds or name in self.groups:
            raise FeedConflict(name, "a feed or group of that name exists")

    # -- control --------------------------------------------------------------------------------------

    def get(self, name: str) -> Feed | FailoverGroup:
        item = self.feeds.get(name) or self.groups.get(name)
        if item is None:
            raise FeedNotFound(name)
        return item

    def start(self, name: str) -> None:
        item = self.get(name)
        if isinstance(item, Feed) and item.group:
            raise FeedConflict(name, f"member of group {item.group!r}: start the group")
        if item.running:
            raise FeedConflict(name, "already running")
        item.start()

    async def stop(self, name: str) -> None:
        item = self.get(name)
        if isinstance(item, Feed) and item.group:
            raise FeedConflict(name, f"member of group {item.group!r}: stop the group")
        if not item.running:
            raise FeedConflict(name, "not running")
        await item.stop()

    async def remove(self, name: str) -> None:
        item = self.get(name)
        if isinstance(item, Feed):
            if item.group:
                raise FeedConflict(name, f"member of group {item.group!r}: remove the group first")
            if item.running:
                await item.stop("removed")
            del self.feeds[name]
        else:
            if item.running:
                await item.stop()
            item.detach()
            del self.groups[name]
        self.log.info("feed.removed", feed=name)

    async def switch(self, group: str, member: str) -> None:
        """Make `member` the active member of `group` now (an operator's manual failover)."""
        item = self.get(group)
        if not isinstance(item, FailoverGroup):
            raise FeedConflict(group, "not a group")
        target = next((m for m in item.members if m.name == member), None)
        if target is None:
            raise FeedNotFound(member)
        if target is item.active:
            raise FeedConflict(member, "already active")
        item.switch(target, f"manual switch to {member}")

    async def stop_all(self) -> None:
        for group in list(self.groups.values()):
            if group.running:
                await group.stop()
        for feed in list(self.feeds.values()):
            if feed.running:
                await feed.stop("service stopping")

    # -- reporting ------------------------------------------------------------------------------------

    def view(self, name: str) -> dict[str, Any]:
        item = self.get(name)
        out: dict[str, Any] = {"name": name, **item.details()}
        out["config"] = msgspec.to_builtins(item.config)
        return out

    def details(self) -> dict[str, Any]:
        feeds: dict[str, Any] = {name: f.details() for name, f in self.feeds.items()}
        feeds.update({name: g.details() for name, g in self.groups.items()})
        return feeds

    def totals(self) -> dict[str, float]:
        fc = [f.counters for f in self.feeds.values()]
        gc = [g.counters for g in self.groups.values()]
        return {
            "md_msgs_total": float(sum(c.msgs_total for c in fc)),
            "md_trades_total": float(sum(c.trades_total for c in fc)),
            "md_gaps_total": float(sum(c.gaps_total for c in fc)),
            "md_resyncs_total": float(sum(c.resyncs_total for c in fc)),
            "md_duplicates_total": float(sum(c.duplicates_total for c in gc)),
            "feed_errors_total": float(sum(c.errors_total for c in fc)),
            "feed_reconnects_total": float(sum(c.reconnects_total for c in fc)),
            "feed_connect_failures_total": float(sum(c.connect_failures_total for c in fc)),
            "feed_failovers_total": float(sum(c.failovers_total for c in gc)),
            "feeds": float(len(self.feeds)),
            "feeds_live": float(sum(1 for f in self.feeds.values() if f.flowing)),
            "groups": float(len(self.groups)),
        }
