"""Messages every service speaks: heartbeats, alerts, request errors, risk and portfolio state."""

from __future__ import annotations

from typing import Any

import msgspec

from nexus.messages.base import Message, Nanos, OptionalToken, Price, Qty, TradingState


class Heartbeat(Message, frozen=True, kw_only=True, tag="heartbeat"):
    """Sent every second by every service. `stats` holds flat numbers (counters and gauges, names in
    snake_case, counters ending in `_total`); `details` holds structured state such as per-feed health.
    `state` is starting, ready, stopping or stopped."""

    service: str
    instance: str
    seq: int
    ts: Nanos
    started: Nanos
    pid: int
    state: str
    http_url: str = ""
    stats: dict[str, float] = msgspec.field(default_factory=dict)
    details: dict[str, Any] = msgspec.field(default_factory=dict)


class Alert(Message, frozen=True, kw_only=True, tag="alert"):
    """An alert raised or cleared by the monitor. `name` is the rule (SERVICE_DOWN, FEED_FAILOVER, ...),
    `source` what it is about (a service instance, a feed, an account)."""

    name: str
    severity: str
    state: str
    source: str
    text: str
    value: float | None = None
    threshold: float | None = None
    ts: Nanos = 0


class ErrorReply(Message, frozen=True, kw_only=True, tag="error"):
    """The answer to a request that could not be served: a code and the reason in words."""

    code: str
    reason: str


class KillSwitch(Message, frozen=True, kw_only=True, tag="kill_switch"):
    """Set the trading state of one account (or every account when `account` is empty). With
    `cancel_open`, every open order of the affected accounts is cancelled."""

    state: TradingState
    account: OptionalToken = ""
    cancel_open: bool = True
    reason: str = ""
    operator: str = ""
    ts: Nanos = 0


class Position(msgspec.Struct, frozen=True, kw_only=True):
    symbol: str
    qty: Qty
    avg_px: Price | None = None
    mark: Price | None = None
    realised_pnl: float = 0.0
    unrealised_pnl: float = 0.0


class AccountRisk(Message, frozen=True, kw_only=True, tag="account_risk"):
    """An account's positions, P&L and exposure as the risk service sees them."""

    account: str
    state: TradingState
    positions: tuple[Position, ...] = ()
    realised_pnl: float = 0.0
    unrealised_pnl: float = 0.0
    gross_exposure: float = 0.0
    net_exposure: float = 0.0
    open_order_exposure: float = 0.0
    open_orders: int = 0
    ts: Nanos = 0


class RiskAudit(Message, frozen=True, kw_only=True, tag="risk_audit"):
    """A runtime change of a risk limit or trading state: who changed what from which value to which."""

    scope: str
    field: str
    old: str
    new: str
    operator: str = ""
    ts: Nanos = 0


class PortfolioTarget(Message, frozen=True, kw_only=True, tag="portfolio_target"):
    """Target weights from the optimizer, with the portfolio's expected return, volatility and Sharpe
    (annualised, in the units the optimizer was configured with)."""

    portfolio: str
    objective: str
    symbols: tuple[str, ...]
    weights: tuple[float, ...]
    exp_return: float
    volatility: float
    sharpe: float
    status: str = "optimal"
    solve_us: int = 0
    ts: Nanos = 0
    risk_contributions: tuple[float, ...] = ()
    """Each asset's share of the portfolio variance, w_i (Σw)_i / w'Σw (sums to 1)."""
