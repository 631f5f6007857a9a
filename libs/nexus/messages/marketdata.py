"""Normalised market data: what every venue adapter produces and every consumer reads."""

from __future__ import annotations

from nexus.messages.base import Message, Nanos, Price, Qty, Side

Level = tuple[Price, Qty]
"""One price level: [price, size]. In a BookDelta a size of 0 removes the level."""


class MarketData(Message, frozen=True, kw_only=True):
    """Fields common to every market-data message.

    `symbol` is subject-safe (`BTC-USDT`); `venue_symbol` is what the venue calls it (`BTCUSDT`, `BTC/USDT`).
    `seq` is the venue's sequence or update id where it has one (0 when it has none).
    Timestamps: `ts_event` at the venue, `ts_recv` when the adapter received it, `ts_pub` when published.
    """

    venue: str
    symbol: str
    venue_symbol: str
    seq: int = 0
    ts_event: Nanos = 0
    ts_recv: Nanos = 0
    ts_pub: Nanos = 0


class Trade(MarketData, frozen=True, kw_only=True, tag="trade"):
    """A trade printed by a venue. `aggressor` is the taker's side when the venue reports it."""

    trade_id: str
    price: Price
    size: Qty
    aggressor: Side | None = None


class Quote(MarketData, frozen=True, kw_only=True, tag="quote"):
    """Top of book. A side with no orders has price null and size 0."""

    bid_px: Price | None
    bid_sz: Qty
    ask_px: Price | None
    ask_sz: Qty


class BookSnapshot(MarketData, frozen=True, kw_only=True, tag="book_snapshot"):
    """A full L2 book (best first on both sides). `seq` is the update id the snapshot includes."""

    bids: tuple[Level, ...] = ()
    asks: tuple[Level, ...] = ()


class BookDelta(MarketData, frozen=True, kw_only=True, tag="book_delta"):
    """Changed L2 levels; size 0 removes a level. Covers venue update ids `first_seq`..`seq`."""

    bids: tuple[Level, ...] = ()
    asks: tuple[Level, ...] = ()
    first_seq: int = 0


class FeedStatus(Message, frozen=True, kw_only=True, tag="feed_status"):
    """A feed's state change or periodic health. `state` is one of the FeedState values (a string so
    that a newer state never breaks an older consumer). `active` is the source a failover group publishes."""

    feed: str
    venue: str = ""
    state: str
    health: float = 1.0
    reason: str = ""
    active: str = ""
    ts: Nanos = 0
