"""What a protocol parser reports to (implemented by the feed), and helpers shared by the parsers."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Protocol

import msgspec

from feed_handler.errors import BadInput
from nexus.messages import MarketDataMsg

LevelList = list[tuple[Decimal, Decimal]]
"""Price levels as a venue sends them: [[price, size], ...]."""

Retime = Callable[[int], int]
"""Maps a venue event time (ns) to the published ts_event (identity live; shifted in a replay)."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ZERO = Decimal(0)
"""Comparing a Decimal with a Decimal zero costs half of comparing it with the int 0."""


class Output(Protocol):
    """Where a parser sends what it made of the venue's messages (the Feed implements it)."""

    def emit(self, msg: MarketDataMsg) -> None:
        """A normalised message, ready to publish."""

    def bad_input(self, exc: BadInput, raw: bytes | str) -> None:
        """A venue message that could not be used (counted per reason, logged with a throttled sample)."""

    def gap(self, symbol: str, detail: str) -> None:
        """A sequence gap (update ids or trade ids jumped)."""

    def resync(self, symbol: str, reason: str) -> None:
        """A book is being rebuilt from a fresh snapshot."""

    def touch(self) -> None:
        """The venue said something that is not market data (ack, heartbeat): the feed is alive."""


def check_levels(levels: LevelList, what: str) -> None:
    """Refuse a level with a negative size or a price that is not positive (BadInput, with the reason)."""
    for price, size in levels:
        if size < _ZERO:
            raise BadInput("negative_size", f"{what} level {price} has size {size}")
        if price <= _ZERO:
            raise BadInput("invalid_field", f"{what} level price {price} is not positive")


def identity(ns: int) -> int:
    return ns


def classify(exc: msgspec.DecodeError) -> BadInput:
    """A msgspec decode error as a BadInput with a reason code."""
    text = str(exc)
    if not isinstance(exc, msgspec.ValidationError):
        return BadInput("invalid_json", text)
    if "missing required field" in text:
        return BadInput("missing_field", text)
    if "Invalid value" in text and "`$.type`" in text:
        return BadInput("unknown_type", text)
    return BadInput("invalid_field", text)


def iso_ns(text: str) -> int:
    """An ISO-8601 UTC time (`2021-04-17T16:43:37.089723Z`) as integer nanoseconds."""
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise BadInput("invalid_field", f"time {text!r} is not ISO-8601") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    delta = dt - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def sample(raw: bytes | str, limit: int = 200) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes | bytearray) else raw
    return text if len(text) <= limit else text[:limit] + "…"
