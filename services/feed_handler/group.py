"""Failover groups: one logical feed over a primary and backups that carry the same symbols.

Every member runs all the time (hot standby); only the active member's data is published, under the
group's venue token, so consumers see one stream across a switch.

Switching (`choose`, pure):
- failover: the active member is not flowing (disconnected, backoff, ...) or its health is below
  `failover_health` -> the best-ranked member that is flowing with health >= `failover_health` (else the
  healthiest flowing one). A disconnect is seen at once (state change), so the backup's data is published
  within milliseconds; health is evaluated every 100 ms.
- start-up: while the primary makes its first connection (up to `startup_grace`), nothing switches.
- failback (hysteresis): a member ranked above the active one that has had health >= `failback_health`
  (> failover_health) for `failback_after` seconds becomes active again.

Across a switch no trade is published twice and none the new source saw is lost:
- trade ids already published are remembered per symbol (RecentTradeIds) and skipped;
- a standby member keeps its last STANDBY_WINDOW seconds of trades; at promotion those not yet published
  are published (the old primary may have died before sending them), except trades a standby received
  before the group published its first trade of that symbol: they precede the group's stream (a backup
  that connected a moment before the primary), publishing them would put an old trade after newer ones;
- the new active member's latest quote per symbol and a BookSnapshot of each of its synced books are
  published at promotion, so quote and book consumers resync to the new source at once.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from feed_handler.config import GroupConfig
from feed_handler.counters import FeedCounters
from feed_handler.dedupe import RecentTradeIds
from feed_handler.feed import Feed
from feed_handler.normalised import BookSnapshot, MarketDataMsg, Quote, Trade
from feed_handler.outbox import Outbox
from nexus import subjects
from nexus.logs import get_logger
from nexus.messages import FeedStatus, now_ns

STANDBY_WINDOW = 2.0
"""Seconds of a standby member's trades kept for publication at its promotion."""
STANDBY_MAX = 10_000
TICK = 0.1


@dataclass(frozen=True)
class MemberView:
    """What the switching rule needs to know about a member."""

    name: str
    state: str
    flowing: bool
    health: float
    healthy_since: float | None = None
    starting: bool = False
    """Not live yet since its start, within the group's startup grace: not a reason to fail over."""


def choose(members: list[MemberView], active: str, now: float, cfg: GroupConfig) -> tuple[str, str] | None:
    """The member to switch to and why, or None to stay. `members` are in rank order (primary first)."""
    by_name = {m.name: m for m in members}
    cur = by_name.get(active)

    def usable(m: MemberView) -> bool:
        return m.flowing and m.health >= cfg.failover_health

    if cur is not None and cur.starting:
        return None
    if cur is None or not usable(cur):
        candidates = [m for m in members if m is not cur and usable(m)]
        if not candidates and (cur is None or not cur.flowing):
            candidates = sorted((m for m in members if m is not cur and m.flowing), key=lambda m: -m.health)
        if not candidates:
            return None
        if cur is None:
            why = "no active member"
        else:
            role = "primary" if cur is members[0] else "backup"
            why = (
                f"{role} {cur.name} {cur.state}"
                if not cur.flowing
                else f"{role} {cur.name} health {cur.health:.2f} < {cfg.failover_health:.2f}"
            )
        return candidates[0].name, f"failover: {why}"
    for m in members:
        if m is cur:
            break
        if m.flowing and m.healthy_since is not None and now - m.healthy_since >= cfg.failback_after:
            return m.name, f"failback: {m.name} healthy for {now - m.healthy_since:.1f}s"
    return None


class FailoverGroup:
    def __init__(
        self,
        config: GroupConfig,
        members: list[Feed],
        outbox: Outbox,
        *,
        status_interval: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.members = members
        self.outbox = outbox
        self.status_interval = status_interval
        self.clock = clock
        self.counters = FeedCounters()
        self.dedupe = RecentTradeIds()
        self._first_trade: dict[str, float] = {}
        """Clock time of the group's first published trade per symbol (where its trade stream begins)."""
        self.log = get_logger("feed_handler.group").bind(group=config.name)
        self.active: Feed = members[0]
        self.reason = "primary"
        self._healthy_since: dict[str, float | None] = {m.name: None for m in members}
        self._standby: dict[str, deque[tuple[float, Trade]]] = {
            m.name: deque(maxlen=STANDBY_MAX) for m in members
        }
        self._last_quotes: dict[str, dict[str, Quote]] = {m.name: {} for m in members}
        self._task: asyncio.Task[None] | None = None
        self._last_status = 0.0
        self._stopping = False
        for m in members:
            m.group = config.name
            m.route = self._router(m)
            m.listeners.append(self._member_changed)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def venue(self) -> str:
        return self.config.venue

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        for m in self.members:
            m.start()
        if not self.running:
            self._task = asyncio.create_task(self._watch(), name=f"group-{self.name}")
        self.publish_status()

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        for m in self.members:
            await m.stop("group stopped")
        self._stopping = False
        self.publish_status()

    def detach(self) -> None:
        """Give the members back their own routing (the group is being removed)."""
        for m in self.members:
            m.group = ""
            m.route = m._route_direct
            if self._member_changed in m.listeners:
                m.listeners.remove(self._member_changed)

    # -- routing --------------------------------------------------------------------------------------

    def _router(self, member: Feed) -> Callable[[MarketDataMsg], None]:
        standby = self._standby[member.name]
        last_quotes = self._last_quotes[member.name]
        clock = self.clock

        def route(msg: MarketDataMsg) -> None:
            if msg.venue != self.config.venue:
                msg.venue = self.config.venue  # the member's message, not yet queued: the group's now
            if member is self.active:
                self._publish(msg)
            elif type(msg) is Trade:
                standby.append((clock(), msg))
            elif type(msg) is Quote:
                last_quotes[msg.symbol] = msg

        return route

    def _publish(self, msg: MarketDataMsg) -> None:
        c = self.counters
        c.msgs_total += 1
        if type(msg) is Trade:
            if not self.dedupe.add(msg.symbol, msg.trade_id):
                c.duplicates_total += 1
                return
            c.trades_total += 1
            if msg.symbol not in self._first_trade:
                self._first_trade[msg.symbol] = self.clock()
            self.outbox.put_trade(subjects.trade(msg.venue, msg.symbol), msg, c)
        elif type(msg) is Quote:
            self.outbox.put(subjects.quote(msg.venue, msg.symbol), msg, c)
        else:
            self.outbox.put(subjects.book(msg.venue, msg.symbol), msg, c)  # type: ignore[arg-type]

    # -- switching ------------------------------------------------------------------------------------

    def _member_changed(self, member: Feed) -> None:
        self.evaluate()
        if member is self.active:
            self.publish_status()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            self.evaluate()
            if self.clock() - self._last_status >= self.status_interval:
                self.publish_status()

    def views(self, now: float) -> list[MemberView]:
        out = []
        for m in self.members:
            if m.flowing and m.health >= self.config.failback_health:
                since = self._healthy_since[m.name]
                if since is None:
                    since = self._healthy_since[m.name] = now
            else:
                since = self._healthy_since[m.name] = None
            starting = not m.live_since_start and now - m.started_at < self.config.startup_grace
            out.append(MemberView(m.name, str(m.state), m.flowing, m.health, since, starting))
        return out

    def evaluate(self) -> None:
        if self._stopping:
            return
        now = self.clock()
        decision = choose(self.views(now), self.active.name, now, self.config)
        if decision is not None:
            target = next(m for m in self.members if m.name == decision[0])
            self.switch(target, decision[1])

    def switch(self, target: Feed, reason: str) -> None:
        old = self.active
        if target is old:
            return
        self.active = target
        self.reason = reason
        self.counters.failovers_total += 1
        self.log.warning("feed.failover", old=old.name, new=target.name, reason=reason)
        self.publish_status()
        # trades the new source saw recently that the old one never published, from where the group's
        # stream of that symbol began (a symbol with no trade published yet: all of them)
        cutoff = self.clock() - STANDBY_WINDOW
        began = dict(self._first_trade)
        replayed = 0
        for t, trade in self._standby[target.name]:
            if (
                t >= max(cutoff, began.get(trade.symbol, cutoff))
                and (trade.symbol, trade.trade_id) not in self.dedupe
            ):
                self._publish(trade)
                replayed += 1
        self._standby[target.name].clear()
        self._standby[old.name].clear()
        quotes = self._last_quotes[target.name]
        venue_symbols = {q.symbol: q.venue_symbol for q in quotes.values()}
        now = now_ns()
        for sym, book in target.adapter.books().items():
            self._publish(
                BookSnapshot(
                    venue=self.venue,
                    symbol=sym,
                    venue_symbol=venue_symbols.get(sym, sym),
                    seq=book.seq,
                    ts_event=now,
                    ts_recv=now,
                    bids=book.bids(),
                    asks=book.asks(),
                )
            )
        for quote in quotes.values():
            self._publish(quote)
        quotes.clear()
        if replayed:
            self.log.info("feed.failover_replayed", group=self.name, trades=replayed)

    # -- reporting ------------------------------------------------------------------------------------

    def status(self) -> FeedStatus:
        a = self.active
        return FeedStatus(
            feed=self.name,
            venue=self.venue,
            state=str(a.state),
            health=a.health if a.flowing else 0.0,
            reason=self.reason if a.flowing else f"{self.reason}; {a.name}: {a.reason}",
            active=a.name,
            ts=now_ns(),
        )

    def publish_status(self) -> None:
        self._last_status = self.clock()
        self.outbox.put_status(subjects.feed_status(self.name), self.status())

    def details(self) -> dict[str, Any]:
        c = self.counters
        a = self.active
        members = {m.name: m.counters for m in self.members}
        return {
            "kind": "group",
            "state": str(a.state),
            "reason": self.reason,
            "health": a.health if a.flowing else 0.0,
            "venue": self.venue,
            "active": a.name,
            "members": [m.name for m in self.members],
            "running": self.running,
            "msgs_total": c.msgs_total,
            "published_total": c.published_total,
            "trades_total": c.trades_total,
            "errors_total": sum(mc.errors_total for mc in members.values()),
            "gaps_total": sum(mc.gaps_total for mc in members.values()),
            "reconnects_total": sum(mc.reconnects_total for mc in members.values()),
            "conflated_total": c.conflated_total,
            "dropped_total": c.dropped_total,
            "duplicates_total": c.duplicates_total,
            "failovers_total": c.failovers_total,
        }
