"""What a protocol parser reports to (implemented by the feed), and helpers shared by the parsers."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Protocol, TypeVar

import msgspec

from feed_handler.errors import BadInput
from feed_handler.normalised import MarketDataMsg

# A venue's prices and sizes are decoded twice, both times in C: as text (`str`), which is what gets
# published, and as values (`PriceValue`, `SizeValue`, with a decoder made by `value_decoder`), which
# the checks and the book compare (exactly: see feed_handler.book). A value decoder accepts a string
# only when it is a JSON number (digits, at most one point, an optional exponent: "43123.45000000",
# "1e-5"; no spaces, no "+"), so the text that goes out is a decimal every consumer can read.
S = TypeVar("S", bound=msgspec.Struct)
MAX_PRICE = 9e15
"""Prices are below this (and finite; "nan" fails the bound)."""
PriceValue = Annotated[float, msgspec.Meta(gt=0, lt=MAX_PRICE)]
QuotePriceValue = Annotated[float, msgspec.Meta(lt=MAX_PRICE)]
"""A top-of-book price, which may be 0 on a side with no orders (the parser checks the rest)."""
SizeValue = Annotated[float, msgspec.Meta(ge=0, le=1e300)]
"""Non-negative and finite. Sizes are the only values bounded by `>= 0`, so `classify` reports a failure
of that bound as a negative size (a "nan" size fails it too, and is reported so)."""
LevelList = list[tuple[str, str]]
"""Price levels as a venue sends them: [[price, size], ...]."""
LevelValues = list[tuple[PriceValue, SizeValue]]
"""The same levels' values (a level with a negative size or a price not above 0 fails to decode)."""


def value_decoder(kind: type[S]) -> msgspec.json.Decoder[S]:
    """A decoder of `kind`'s float fields from the venue's decimal strings (lax: a string may hold a
    number)."""
    return msgspec.json.Decoder(kind, strict=False)


Retime = Callable[[int], int]
"""Maps a venue event time (ns) to the published ts_event (identity live; shifted in a replay)."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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


def identity(ns: int) -> int:
    """Live: a message's event time is the venue's."""
    return ns


def at_receipt(ns: int) -> int:
    """A replay as fast as possible: a message happened when it was received. The Binance parser knows
    this Retime (and `identity`) and uses the time it has without a call; called, it reads the clock."""
    return time.time_ns()


def classify(exc: Exception) -> BadInput:
    """One of messages.DECODE_ERRORS as a BadInput with a reason code (RecursionError: JSON nested deeper
    than msgspec follows, so invalid JSON as far as a venue is concerned)."""
    text = str(exc)
    if not isinstance(exc, msgspec.ValidationError):
        return BadInput("invalid_json", text)
    if "missing required field" in text:
        return BadInput("missing_field", text)
    if "Expected `float` >= 0" in text:
        return BadInput("negative_size", text)
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
