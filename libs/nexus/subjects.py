"""The whole NATS subject scheme. No subject string is written anywhere else.

Subjects are dotted, general first, identifiers last. Tokens are `[A-Za-z0-9_-]` only; symbols such as
`BTC/USDT` or `BRK.B` are mapped with `safe_symbol` and the original is kept in the message.

Market data (feed-handler, order-engine as a venue)
    md.p0.trade.<venue>.<symbol>        Trade           never dropped, never conflated
    md.p1.quote.<venue>.<symbol>        Quote           conflated per symbol under backpressure
    md.p1.book.<venue>.<symbol>         BookSnapshot / BookDelta
    md.p2.status.<feed>                 FeedStatus

Orders (clients -> risk -> order-engine)
    ord.in.p1.<account>.<symbol>        NewOrder, ReplaceOrder          client order entry (JetStream)
    ord.in.p0.<account>.<symbol>        CancelOrder, CancelAll          cancels: the p0 path
    ord.ok.p1.<account>.<symbol>        approved NewOrder/ReplaceOrder  risk -> engine (JetStream)
    ord.ok.p0.<account>.<symbol>        approved cancels                risk -> engine (JetStream)
    ord.exec.<account>.<symbol>         ExecReport                      engine/risk -> owner
    ord.query.<account>                 request/reply: an order's latest report by client order id
    ord.book.<symbol>                   request/reply: L2 snapshot of the engine's book
    ord.req.<account>                   request/reply order entry: the reply is the accepted/rejected report
    `CancelAll` for every symbol uses the symbol token `ALL_SYMBOLS`.

Order flow inside JetStream (stream definitions in nexus.streams)
    ord.inp.<k>.<tier>.<account>.<symbol>   how the order-entry stream stores ord.in.* (k = partition)
    ord.okp.<k>.<tier>.<account>.<symbol>   how the approved stream stores ord.ok.*
    ord.eng.exec.<k>.<account>.<symbol>     engine partition k's exec reports; its stream republishes
                                            each one, once stored, on ord.exec.<account>.<symbol>
    ord.eng.trade.<k>.<venue>.<symbol>      engine partition k's trades, republished on md.p0.trade.*

Risk
    risk.p0.kill                        KillSwitch (halt / reduce / resume an account or everyone)
    risk.state.<account>                AccountRisk (positions, P&L, exposure)
    risk.audit                          RiskAudit (every runtime limit change)

Portfolio
    pf.target.<portfolio>               PortfolioTarget
    pf.solve                            request/reply: on-demand optimisation

System
    sys.hb.<service>.<instance>         Heartbeat with stats, every second
    sys.alert.<severity>                Alert raised/cleared
    sys.dlq.<service>                   raw bytes a service could not decode (dead letters)

Priority is expressed as distinct subject tiers (p0, p1, p2) and distinct queue groups per tier
(`<service>.p0`, `<service>.p1`, ...); see `queue_group`.
"""

from __future__ import annotations

import re
from enum import StrEnum
from functools import lru_cache
from typing import Final

from nexus.errors import SubjectError
from nexus.messages import (
    TOKEN_MAX,
    TOKEN_PATTERN,
    AccountRisk,
    Alert,
    BookDelta,
    BookSnapshot,
    CancelAll,
    CancelOrder,
    ExecReport,
    FeedStatus,
    Heartbeat,
    KillSwitch,
    Message,
    NewOrder,
    OptimizeRequest,
    PortfolioTarget,
    Quote,
    ReplaceOrder,
    RiskAudit,
    Trade,
)

# Builders are pure functions of a small set of tokens: cache them so the hot path pays a dict lookup,
# not a regex validation, per publish.
cache = lru_cache(maxsize=1 << 16)

_TOKEN = re.compile(TOKEN_PATTERN)
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")

ALL: Final = ">"
ANY: Final = "*"
ALL_SYMBOLS: Final = "_all"
"""Symbol token of a CancelAll that covers every symbol of an account."""


class Tier(StrEnum):
    """Priority tier: p0 urgent (trades, cancels), p1 normal (quotes, book, new orders), p2 low (status)."""

    P0 = "p0"
    P1 = "p1"
    P2 = "p2"


def token(value: str) -> str:
    """Return `value` if it is a valid subject token, else raise SubjectError."""
    if not _TOKEN.fullmatch(value):
        raise SubjectError(value, f"a token is A-Z a-z 0-9 _ -, not empty, at most {TOKEN_MAX} characters")
    return value


def _pattern(value: str) -> str:
    """A token or a wildcard, for subscription patterns."""
    return value if value in (ANY, ALL) else token(value)


@cache
def safe_symbol(venue_symbol: str) -> str:
    """Map a venue's symbol to a subject-safe token: `BTC/USDT` -> `BTC-USDT`, `BRK.B` -> `BRK_B`."""
    if not venue_symbol:
        raise SubjectError(venue_symbol, "a symbol must not be empty")
    return _UNSAFE.sub("_", venue_symbol.replace("/", "-"))


@cache
def queue_group(service: str, tier: Tier) -> str:
    """Queue group of a service's subscription on one tier, e.g. `risk.p0`."""
    return f"{token(service)}.{tier}"


# -- market data ------------------------------------------------------------------------------------


@cache
def trade(venue: str, symbol: str) -> str:
    return f"md.p0.trade.{_pattern(venue)}.{_pattern(symbol)}"


@cache
def quote(venue: str, symbol: str) -> str:
    return f"md.p1.quote.{_pattern(venue)}.{_pattern(symbol)}"


@cache
def book(venue: str, symbol: str) -> str:
    return f"md.p1.book.{_pattern(venue)}.{_pattern(symbol)}"


@cache
def feed_status(feed: str) -> str:
    return f"md.p2.status.{_pattern(feed)}"


def market_data(tier: Tier | None = None) -> str:
    """Every market-data subject, or every subject of one tier (`md.p0.>`)."""
    return "md.>" if tier is None else f"md.{tier}.>"


# -- orders -----------------------------------------------------------------------------------------


@cache
def order_entry(tier: Tier, account: str, symbol: str) -> str:
    """Where clients send order commands (captured by the order-entry stream)."""
    return f"ord.in.{tier}.{_pattern(account)}.{_pattern(symbol)}"


@cache
def order_approved(tier: Tier, account: str, symbol: str) -> str:
    """Where risk forwards the commands it approved (captured by the engine's input stream)."""
    return f"ord.ok.{tier}.{_pattern(account)}.{_pattern(symbol)}"


@cache
def exec_report(account: str, symbol: str) -> str:
    return f"ord.exec.{_pattern(account)}.{_pattern(symbol)}"


@cache
def order_query(account: str) -> str:
    return f"ord.query.{_pattern(account)}"


@cache
def book_request(symbol: str) -> str:
    return f"ord.book.{_pattern(symbol)}"


@cache
def order_request(account: str) -> str:
    """Request/reply order entry for clients that want the answer as the reply (any language)."""
    return f"ord.req.{_pattern(account)}"


# The order flow as JetStream stores it. The entry and approved streams rewrite each command's subject
# to put a partition token first (nats-server's partition() of the symbol token), so each engine
# partition consumes `ord.inp.<k>.>`; see nexus.streams.


@cache
def order_entry_stored(partition: int | str, tier: Tier | str, account: str, symbol: str) -> str:
    return f"ord.inp.{_pattern(str(partition))}.{_pattern(tier)}.{_pattern(account)}.{_pattern(symbol)}"


@cache
def order_approved_stored(partition: int | str, tier: Tier | str, account: str, symbol: str) -> str:
    return f"ord.okp.{_pattern(str(partition))}.{_pattern(tier)}.{_pattern(account)}.{_pattern(symbol)}"


def partition_transform(partitions: int, *, approved: bool = False) -> tuple[str, str]:
    """(source, destination) of the subject transform that partitions commands by their symbol token."""
    if partitions < 1:
        raise ValueError("partitions must be >= 1")
    source = f"ord.ok.{ANY}.{ANY}.{ANY}" if approved else f"ord.in.{ANY}.{ANY}.{ANY}"
    prefix = "ord.okp" if approved else "ord.inp"
    tokens = "{{wildcard(1)}}.{{wildcard(2)}}.{{wildcard(3)}}"
    dest = f"{prefix}.{{{{partition({partitions},3)}}}}.{tokens}"
    return source, dest


@cache
def engine_exec(partition: int | str, account: str, symbol: str) -> str:
    """Where engine partition `partition` publishes an exec report (into the engine's exec stream)."""
    return f"ord.eng.exec.{_pattern(str(partition))}.{_pattern(account)}.{_pattern(symbol)}"


@cache
def engine_trade(partition: int | str, venue: str, symbol: str) -> str:
    """Where engine partition `partition` publishes a trade (into the engine's trade stream)."""
    return f"ord.eng.trade.{_pattern(str(partition))}.{_pattern(venue)}.{_pattern(symbol)}"


def engine_exec_republish(partition: int) -> tuple[str, str]:
    """(source, destination) of partition k's exec stream republish: -> ord.exec.<account>.<symbol>."""
    return engine_exec(partition, ANY, ANY), "ord.exec.{{wildcard(1)}}.{{wildcard(2)}}"


def engine_trade_republish(partition: int) -> tuple[str, str]:
    """(source, destination) of partition k's trade stream republish: -> md.p0.trade.<venue>.<symbol>."""
    return engine_trade(partition, ANY, ANY), "md.p0.trade.{{wildcard(1)}}.{{wildcard(2)}}"


def command_tier(command: Message) -> Tier:
    """Cancels travel on p0 so that a burst of new orders never delays them."""
    return Tier.P0 if isinstance(command, CancelOrder | CancelAll) else Tier.P1


def command_symbol(command: NewOrder | CancelOrder | ReplaceOrder | CancelAll) -> str:
    if isinstance(command, CancelAll):
        return ALL_SYMBOLS if command.symbol is None else safe_symbol(command.symbol)
    return safe_symbol(command.symbol)


# -- risk, portfolio, system -------------------------------------------------------------------------


def kill_switch() -> str:
    return "risk.p0.kill"


@cache
def risk_state(account: str) -> str:
    return f"risk.state.{_pattern(account)}"


def risk_audit() -> str:
    return "risk.audit"


@cache
def portfolio_target(portfolio: str) -> str:
    return f"pf.target.{_pattern(portfolio)}"


def optimize_request() -> str:
    return "pf.solve"


@cache
def heartbeat(service: str, instance: str) -> str:
    return f"sys.hb.{_pattern(service)}.{_pattern(instance)}"


@cache
def alert(severity: str) -> str:
    return f"sys.alert.{_pattern(severity)}"


@cache
def dead_letter(service: str) -> str:
    return f"sys.dlq.{_pattern(service)}"


def subject_for(msg: Message) -> str:
    """The subject a message is published on: each message type knows its subject through this function."""
    match msg:
        case Trade():
            return trade(msg.venue, msg.symbol)
        case Quote():
            return quote(msg.venue, msg.symbol)
        case BookSnapshot() | BookDelta():
            return book(msg.venue, msg.symbol)
        case FeedStatus():
            return feed_status(msg.feed)
        case NewOrder() | ReplaceOrder() | CancelOrder() | CancelAll():
            return order_entry(command_tier(msg), msg.account, command_symbol(msg))
        case ExecReport():
            return exec_report(msg.account, safe_symbol(msg.symbol))
        case KillSwitch():
            return kill_switch()
        case AccountRisk():
            return risk_state(msg.account)
        case RiskAudit():
            return risk_audit()
        case PortfolioTarget():
            return portfolio_target(msg.portfolio)
        case OptimizeRequest():
            return optimize_request()
        case Heartbeat():
            return heartbeat(msg.service, msg.instance)
        case Alert():
            return alert(msg.severity)
    raise SubjectError(type(msg).__name__, "this message type has no subject of its own (a reply?)")
