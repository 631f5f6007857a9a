"""The normalised messages as the feed handler builds them: the venue's decimals kept as its strings.

Every consumer reads nexus.messages (Trade, Quote, BookSnapshot, BookDelta) with prices and sizes as
Decimals. On the wire a Decimal is a JSON string, so a message whose decimals are the venue's own
strings encodes to the same bytes. The handler builds these twins instead: it never pays for turning a
venue's text into a Decimal and back (about 0.25 µs per value to decode and 0.1 µs to encode, against
~5 values a message at 100k+ messages a second).

The twins have the nexus types' tags, fields and field order (tests/feed_handler/test_normalised.py
checks that they encode byte for byte the same and decode as the nexus types). They are not frozen: the
handler owns each message until it is published, and sets `ts_pub` (and a failover group its venue) in
place.

What the strings may be is checked where they enter: each parser decodes the venue's message a second
time as numbers (feed_handler.protocols.base), which only a JSON number in a string passes ("43123.45",
"1e-5"; no spaces, no "+", no "nan"), with bounds on prices and sizes; ndjson replays are read as nexus
messages first.
"""

from __future__ import annotations

from typing import TypeAlias

import msgspec

from nexus.messages import Side
from nexus.messages.base import Nanos

Dec: TypeAlias = str
"""A decimal as the venue wrote it ("43123.45000000"); a consumer decodes it as a Decimal."""
Level: TypeAlias = tuple[Dec, Dec]
"""[price, size]; in a BookDelta a size of 0 removes the level."""


class MarketData(msgspec.Struct, kw_only=True, tag_field="type", gc=False):
    """The fields of nexus.messages.Message and MarketData, in the same order (not frozen, so not a
    subclass of Message). Not tracked by the garbage collector: a message holds strings, numbers and
    tuples of strings, never a reference back to anything, so it cannot be part of a cycle."""

    v: int = 1
    venue: str
    symbol: str
    venue_symbol: str
    seq: int = 0
    ts_event: Nanos = 0
    ts_recv: Nanos = 0
    ts_pub: Nanos = 0


class Trade(MarketData, kw_only=True, tag="trade"):
    trade_id: str
    price: Dec
    size: Dec
    aggressor: Side | None = None


class Quote(MarketData, kw_only=True, tag="quote"):
    bid_px: Dec | None
    bid_sz: Dec
    ask_px: Dec | None
    ask_sz: Dec


class BookSnapshot(MarketData, kw_only=True, tag="book_snapshot"):
    bids: tuple[Level, ...] = ()
    asks: tuple[Level, ...] = ()


class BookDelta(MarketData, kw_only=True, tag="book_delta"):
    bids: tuple[Level, ...] = ()
    asks: tuple[Level, ...] = ()
    first_seq: int = 0


MarketDataMsg: TypeAlias = Trade | Quote | BookSnapshot | BookDelta
BookMsg: TypeAlias = BookSnapshot | BookDelta
