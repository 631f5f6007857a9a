"""Order commands (client -> risk -> engine) and execution reports (engine/risk -> client)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import msgspec

from nexus.messages.base import (
    ClientOrderId,
    ExecType,
    Message,
    Nanos,
    OptionalToken,
    OrderType,
    Price,
    Qty,
    Side,
    StpMode,
    TimeInForce,
    Token,
)


class OrderCommand(Message, frozen=True, kw_only=True):
    """Fields of every order command. `client_order_id` is unique per account and is the JetStream
    Nats-Msg-Id of the command, so a retried submit is the same command. `ts` is the client's send time.
    Accounts and symbols are subject tokens; an empty one decodes, and the engine rejects it
    (INVALID_FIELD) like any other command it cannot take."""

    account: OptionalToken
    client_order_id: ClientOrderId
    ts: Nanos = 0


class NewOrder(OrderCommand, frozen=True, kw_only=True, tag="new_order"):
    """A new order. Market orders carry no price; they are IOC and rejected when the other side is empty."""

    symbol: OptionalToken
    side: Side
    qty: Qty
    price: Price | None = None
    order_type: OrderType = OrderType.LIMIT
    tif: TimeInForce = TimeInForce.GTC
    post_only: bool = False
    reduce_only: bool = False
    stp: StpMode = StpMode.CANCEL_NEWEST


class CancelOrder(OrderCommand, frozen=True, kw_only=True, tag="cancel_order"):
    """Cancel the order whose client order id is `orig_client_order_id`."""

    symbol: OptionalToken
    orig_client_order_id: ClientOrderId


class ReplaceOrder(OrderCommand, frozen=True, kw_only=True, tag="replace_order"):
    """Change price and/or quantity of a resting order. A price change or a size increase loses time
    priority; a size decrease keeps it. Omitted fields keep their value."""

    symbol: OptionalToken
    orig_client_order_id: ClientOrderId
    price: Price | None = None
    qty: Qty | None = None


class CancelAll(OrderCommand, frozen=True, kw_only=True, tag="cancel_all"):
    """Cancel every open order of the account, or only those of `symbol`."""

    symbol: OptionalToken | None = None


class ExecReport(Message, frozen=True, kw_only=True, tag="exec_report"):
    """What happened to an order. Quantities are cumulative: `cum_qty` filled so far, `leaves_qty` still open.

    `reason` is a machine-readable code (see Reason) on rejections and cancels, `text` says it for people.
    `seq` is the engine's sequence number per symbol; `ts_cmd` the command's client time (for latency),
    `ts_event` when the engine processed it.
    """

    account: str
    client_order_id: str
    exec_type: ExecType
    symbol: str
    orig_client_order_id: str = ""
    order_id: int = 0
    side: Side | None = None
    order_type: OrderType | None = None
    price: Price | None = None
    qty: Qty | None = None
    last_qty: Qty | None = None
    last_px: Price | None = None
    cum_qty: Qty | None = None
    leaves_qty: Qty | None = None
    avg_px: Price | None = None
    trade_id: str = ""
    liquidity: str = ""
    reason: str = ""
    text: str = ""
    venue: str = ""
    seq: int = 0
    ts_cmd: Nanos = 0
    ts_event: Nanos = 0


class RiskReject(Message, frozen=True, kw_only=True, tag="risk_reject"):
    """Risk's refusal of a command, stored on ord.ok.* in the command's place under the command's own
    Nats-Msg-Id: whatever risk decides again after a restart, the stream keeps one decision per command,
    and the engine answers it like any other (a REJECTED report with this reason and text)."""

    command: NewOrder | CancelOrder | ReplaceOrder | CancelAll
    reason: str
    text: str = ""


class RiskCancelAll(Message, frozen=True, kw_only=True, tag="risk_cancel_all"):
    """The kill switch cancelling an account's open orders: the engine runs `command` and reports each
    cancel with reason CANCELLED_BY_RISK."""

    command: CancelAll
    text: str = ""


class Reason(StrEnum):
    """Reject and cancel reason codes. Carried as plain strings on the wire so new codes never break
    an older consumer; compare with these constants."""

    # decoding and shape
    DECODE_ERROR = "DECODE_ERROR"
    INVALID_FIELD = "INVALID_FIELD"
    # instrument and order shape
    UNKNOWN_SYMBOL = "UNKNOWN_SYMBOL"
    INSTRUMENT_NOT_TRADABLE = "INSTRUMENT_NOT_TRADABLE"
    QTY_NOT_POSITIVE = "QTY_NOT_POSITIVE"
    QTY_NOT_LOT_MULTIPLE = "QTY_NOT_LOT_MULTIPLE"
    QTY_BELOW_MIN = "QTY_BELOW_MIN"
    QTY_ABOVE_MAX = "QTY_ABOVE_MAX"
    PRICE_NOT_POSITIVE = "PRICE_NOT_POSITIVE"
    PRICE_OFF_TICK = "PRICE_OFF_TICK"
    PRICE_REQUIRED = "PRICE_REQUIRED"
    # order lifecycle
    DUPLICATE_ORDER_ID = "DUPLICATE_ORDER_ID"
    UNKNOWN_ORDER = "UNKNOWN_ORDER"
    NOT_OWNER = "NOT_OWNER"
    ORDER_CLOSED = "ORDER_CLOSED"
    NO_LIQUIDITY = "NO_LIQUIDITY"
    POST_ONLY_WOULD_TAKE = "POST_ONLY_WOULD_TAKE"
    FOK_NOT_FILLABLE = "FOK_NOT_FILLABLE"
    IOC_REMAINDER = "IOC_REMAINDER"
    SELF_TRADE = "SELF_TRADE"
    CANCELLED_BY_CLIENT = "CANCELLED_BY_CLIENT"
    CANCELLED_BY_RISK = "CANCELLED_BY_RISK"
    # pre-trade risk
    PRICE_COLLAR = "PRICE_COLLAR"
    NO_REFERENCE_PRICE = "NO_REFERENCE_PRICE"
    MAX_ORDER_QTY = "MAX_ORDER_QTY"
    MAX_NOTIONAL = "MAX_NOTIONAL"
    MAX_POSITION = "MAX_POSITION"
    MAX_GROSS_EXPOSURE = "MAX_GROSS_EXPOSURE"
    MAX_NET_EXPOSURE = "MAX_NET_EXPOSURE"
    BUYING_POWER = "BUYING_POWER"
    RATE_LIMIT = "RATE_LIMIT"
    MAX_OPEN_ORDERS = "MAX_OPEN_ORDERS"
    DAILY_LOSS_LIMIT = "DAILY_LOSS_LIMIT"
    REDUCE_ONLY = "REDUCE_ONLY"
    TRADING_HALTED = "TRADING_HALTED"
    TRADING_REDUCING = "TRADING_REDUCING"
    UNKNOWN_ACCOUNT = "UNKNOWN_ACCOUNT"
    # the engine itself
    ENGINE_ERROR = "ENGINE_ERROR"


class OrderQuery(Message, frozen=True, kw_only=True, tag="order_query"):
    """Request on `ord.query.<account>`: the engine's answer to a command by its client order id — the
    first answer (accepted/rejected, cancelled, replaced) or, with `latest`, the latest report of that
    order. With `symbol` only the engine partition serving it answers (an ErrorReply when it does not
    know the id); without it, only a partition that knows the id answers."""

    account: Token
    client_order_id: ClientOrderId
    symbol: OptionalToken = ""
    latest: bool = False


class BookRequest(Message, frozen=True, kw_only=True, tag="book_request"):
    """Request on `ord.book.<symbol>`: the engine's L2 book of `symbol`, `depth` levels a side
    (0 = every level); the reply is a BookSnapshot whose `seq` is the last output it includes."""

    symbol: Token
    depth: Annotated[int, msgspec.Meta(ge=0)] = 10
