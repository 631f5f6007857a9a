"""The base of every wire message, and the enums shared by several streams.

Wire rules (docs/ARCHITECTURE and README "Messages"):
- every message is a frozen, keyword-only msgspec Struct with a `type` tag and a schema version `v`;
- JSON on the wire; prices and quantities are decimals encoded as strings ("43123.45");
- timestamps are integer nanoseconds since the Unix epoch;
- new fields get defaults, a field's type never changes, unknown fields are ignored by decoders
  (an old consumer must read a newer producer's messages).
"""

from __future__ import annotations

import time
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

import msgspec

Price = Annotated[Decimal, msgspec.Meta(description='decimal price as a string, e.g. "43123.45"')]
Qty = Annotated[Decimal, msgspec.Meta(description='decimal quantity as a string, e.g. "0.0125"')]
Nanos = Annotated[int, msgspec.Meta(ge=0, description="nanoseconds since the Unix epoch")]

TOKEN_MAX = 64
"""The longest subject token (an account, a symbol, a venue): a subject stays far below nats-server's
4 KiB protocol line, beyond which the server closes the connection."""
TOKEN_PATTERN = rf"^[A-Za-z0-9_-]{{1,{TOKEN_MAX}}}$"


def _bounded(pattern: str, description: str) -> msgspec.Meta:
    """Decoding checks the length (free in msgspec). The characters are checked where a subject or a
    header is built from the value (nexus.subjects, nexus.client), not per decode: three patterns cost
    1.2 µs a command in each service that decodes it. The JSON schema states the pattern for clients in
    other languages."""
    return msgspec.Meta(max_length=TOKEN_MAX, extra_json_schema={"pattern": pattern}, description=description)


_TOKEN_CHARS = "of A-Z a-z 0-9 _ - (a subject token)"
Token = Annotated[str, _bounded(TOKEN_PATTERN, f"1-{TOKEN_MAX} {_TOKEN_CHARS}")]
OptionalToken = Annotated[
    str, _bounded(rf"^[A-Za-z0-9_-]{{0,{TOKEN_MAX}}}$", f"empty, or 1-{TOKEN_MAX} {_TOKEN_CHARS}")
]
ClientOrderId = Annotated[
    str,
    _bounded(
        rf"^[!-~]{{0,{TOKEN_MAX}}}$",
        f"up to {TOKEN_MAX} visible ASCII characters, no spaces (it is the Nats-Msg-Id header)",
    ),
]


def now_ns() -> int:
    """Wall-clock time in integer nanoseconds (the unit of every timestamp on the wire)."""
    return time.time_ns()


class Message(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Base of every wire message. `v` is the schema version of the concrete type."""

    v: int = 1


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderType(StrEnum):
    LIMIT = "limit"
    MARKET = "market"


class TimeInForce(StrEnum):
    GTC = "gtc"
    IOC = "ioc"
    FOK = "fok"


class StpMode(StrEnum):
    """Self-trade prevention when an order would trade against its own account's resting order."""

    CANCEL_NEWEST = "cancel_newest"
    CANCEL_OLDEST = "cancel_oldest"
    CANCEL_BOTH = "cancel_both"
    DECREMENT = "decrement"


class ExecType(StrEnum):
    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REPLACED = "replaced"
    REJECTED = "rejected"


class TradingState(StrEnum):
    ACTIVE = "active"
    REDUCING = "reducing"
    HALTED = "halted"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"
