"""Every Nexus wire message, the tagged union of each stream, and one reused decoder per union.

    decode(MARKET_DATA, data)  ->  Trade | Quote | BookSnapshot | BookDelta
    encode(msg)                ->  JSON bytes

`match` on the decoded type. Decoders raise msgspec.DecodeError / msgspec.ValidationError on bad input,
and RecursionError on JSON nested deeper than msgspec follows (`{"a":` a few thousand times): catch
DECODE_ERRORS wherever bytes come from outside. The bus counts and logs those and keeps going.
"""

from __future__ import annotations

from typing import Any, Final, TypeAlias

import msgspec

from nexus.messages.base import (
    TOKEN_MAX,
    TOKEN_PATTERN,
    ClientOrderId,
    ExecType,
    Message,
    Nanos,
    OptionalToken,
    OrderType,
    Price,
    Qty,
    Severity,
    Side,
    StpMode,
    TimeInForce,
    Token,
    TradingState,
    now_ns,
)
from nexus.messages.marketdata import (
    BookDelta,
    BookSnapshot,
    FeedStatus,
    Level,
    MarketData,
    Quote,
    Trade,
)
from nexus.messages.orders import (
    BookRequest,
    CancelAll,
    CancelOrder,
    ExecReport,
    NewOrder,
    OrderCommand,
    OrderQuery,
    Reason,
    ReplaceOrder,
    RiskCancelAll,
    RiskReject,
)
from nexus.messages.portfolio import CovEstimator, MeanEstimator, Objective, OptimizeRequest
from nexus.messages.system import (
    AccountRisk,
    Alert,
    ErrorReply,
    Heartbeat,
    KillSwitch,
    PortfolioTarget,
    Position,
    RiskAudit,
)

# One tagged union per stream.
MarketDataMsg: TypeAlias = Trade | Quote | BookSnapshot | BookDelta
OrderCommandMsg: TypeAlias = NewOrder | CancelOrder | ReplaceOrder | CancelAll
ApprovedCommandMsg: TypeAlias = OrderCommandMsg | RiskReject | RiskCancelAll
"""What the approved stream (ORD_OK) carries: risk's decision on each command."""
AnyMessage: TypeAlias = (
    Trade
    | Quote
    | BookSnapshot
    | BookDelta
    | FeedStatus
    | NewOrder
    | CancelOrder
    | ReplaceOrder
    | CancelAll
    | ExecReport
    | Heartbeat
    | Alert
    | ErrorReply
    | KillSwitch
    | AccountRisk
    | RiskAudit
    | PortfolioTarget
    | OptimizeRequest
    | OrderQuery
    | BookRequest
    | RiskReject
    | RiskCancelAll
)

PUBLIC_MESSAGES: Final[tuple[type[Message], ...]] = (
    Trade,
    Quote,
    BookSnapshot,
    BookDelta,
    FeedStatus,
    NewOrder,
    CancelOrder,
    ReplaceOrder,
    CancelAll,
    ExecReport,
    Heartbeat,
    Alert,
    ErrorReply,
    KillSwitch,
    AccountRisk,
    RiskAudit,
    PortfolioTarget,
    OptimizeRequest,
)
"""Every message an external client may see; `nexus schema` writes a JSON Schema for each."""

_encoder: Final = msgspec.json.Encoder()
_decoders: dict[Any, msgspec.json.Decoder[Any]] = {}


def encode(msg: Message) -> bytes:
    """JSON bytes of a message (with its `type` tag)."""
    return _encoder.encode(msg)


def decoder(kind: Any) -> msgspec.json.Decoder[Any]:
    """The one reused decoder for a message type or union."""
    dec = _decoders.get(kind)
    if dec is None:
        dec = _decoders[kind] = msgspec.json.Decoder(kind)
    return dec


DECODE_ERRORS: Final = (msgspec.DecodeError, msgspec.ValidationError, RecursionError)
"""What decoding bytes from outside can raise (ValidationError is a DecodeError; listed for the reader)."""


def decode(kind: Any, data: bytes | bytearray | memoryview) -> Any:
    """Decode `data` as `kind` (a message type or a union). Raises msgspec.DecodeError/ValidationError."""
    return decoder(kind).decode(data)


def tag_of(kind: type[Message]) -> str:
    """The `type` tag a message class is encoded with."""
    info = msgspec.inspect.type_info(kind)
    assert isinstance(info, msgspec.inspect.StructType)
    return str(info.tag)


__all__ = [
    "DECODE_ERRORS",
    "PUBLIC_MESSAGES",
    "TOKEN_MAX",
    "TOKEN_PATTERN",
    "AccountRisk",
    "Alert",
    "AnyMessage",
    "ApprovedCommandMsg",
    "BookDelta",
    "BookRequest",
    "BookSnapshot",
    "CancelAll",
    "CancelOrder",
    "ClientOrderId",
    "CovEstimator",
    "ErrorReply",
    "ExecReport",
    "ExecType",
    "FeedStatus",
    "Heartbeat",
    "KillSwitch",
    "Level",
    "MarketData",
    "MarketDataMsg",
    "MeanEstimator",
    "Message",
    "Nanos",
    "NewOrder",
    "Objective",
    "OptimizeRequest",
    "OptionalToken",
    "OrderCommand",
    "OrderCommandMsg",
    "OrderQuery",
    "OrderType",
    "PortfolioTarget",
    "Position",
    "Price",
    "Qty",
    "Quote",
    "Reason",
    "ReplaceOrder",
    "RiskAudit",
    "RiskCancelAll",
    "RiskReject",
    "Severity",
    "Side",
    "StpMode",
    "TimeInForce",
    "Token",
    "Trade",
    "TradingState",
    "decode",
    "decoder",
    "encode",
    "now_ns",
    "tag_of",
]
