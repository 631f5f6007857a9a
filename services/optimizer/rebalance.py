"""Rebalance orders from target weights: weights + positions + marks + instruments -> orders. No I/O.

    plan = plan_rebalance(
        weights={"SPY": 0.6, "AAPL": 0.4}, positions={"SPY": Decimal(10)},
        marks={"SPY": 500.0, "AAPL": 228.5}, instruments=load_instruments(),
        capital=100_000, min_notional=50, aggression_bps=5,
    )
    plan.orders   -> [RebalanceOrder(symbol="SPY", side=BUY, qty=Decimal(110), price=Decimal("500.25"), ...),
                      RebalanceOrder(symbol="AAPL", side=BUY, qty=Decimal(175), price=Decimal("228.61"), ...)]
    plan.skipped  -> {symbol: why}  (no mark, unknown instrument, already at target, below the minimum, ...)

Per symbol: target quantity = weight x capital / mark; the trade is target - position, rounded toward zero
to a whole number of lots (so the position ends within one lot of the target and never beyond it), capped
at the instrument's max_qty, and skipped below the instrument's min_qty or below `min_notional` (|trade| x
mark). Every order is a limit order priced `aggression_bps` basis points through the mark (buys above, sells
below), rounded to the tick towards the mark (a buy's price down, a sell's up) so it is never more
aggressive than asked; the service sends them immediate-or-cancel.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, Decimal

from nexus.instruments import Instrument
from nexus.messages import Side


class Skip:
    """Why a symbol gets no order (the values are the stats' and logs' words)."""

    NO_MARK = "no_mark"
    UNKNOWN_INSTRUMENT = "unknown_instrument"
    NOT_TRADABLE = "not_tradable"
    AT_TARGET = "at_target"
    BELOW_MIN_QTY = "below_min_qty"
    BELOW_MIN_NOTIONAL = "below_min_notional"
    BAD_WEIGHT = "bad_weight"


@dataclass(frozen=True)
class RebalanceOrder:
    symbol: str
    side: Side
    qty: Decimal
    """Positive, a whole number of lots."""
    price: Decimal
    """On the tick."""
    mark: float
    position: Decimal
    target_qty: Decimal
    """weight x capital / mark, unrounded (as far as a decimal of the float goes)."""

    @property
    def notional(self) -> float:
        return float(self.qty) * self.mark


@dataclass(frozen=True)
class RebalancePlan:
    orders: list[RebalanceOrder] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def notional(self) -> float:
        return sum(o.notional for o in self.orders)


def _decimal(x: float) -> Decimal:
    return Decimal(repr(float(x)))


def limit_price(inst: Instrument, mark: float, side: Side, aggression_bps: float) -> Decimal | None:
    """The mark moved `aggression_bps` in the order's favour of filling, rounded to the tick towards the
    mark; None when that is not a positive price."""
    bps = _decimal(aggression_bps) / 10_000  # in decimals: 64,000 x 1.001 is 64,064, not 64,063.99
    factor = 1 + bps if side is Side.BUY else 1 - bps
    raw = _decimal(mark) * factor / inst.tick
    ticks = raw.to_integral_value(rounding=ROUND_FLOOR if side is Side.BUY else ROUND_CEILING)
    price = ticks * inst.tick
    return price if price > 0 else None


def plan_rebalance(
    weights: Mapping[str, float],
    positions: Mapping[str, Decimal],
    marks: Mapping[str, float],
    instruments: Mapping[str, Instrument],
    *,
    capital: float,
    min_notional: float = 0.0,
    aggression_bps: float = 5.0,
) -> RebalancePlan:
    """The orders that take `positions` to `weights` of `capital` at `marks` (see the module's docstring).
    Symbols outside `weights` are left alone, whatever their position."""
    plan = RebalancePlan()
    for symbol, weight in weights.items():
        inst = instruments.get(symbol)
        mark = marks.get(symbol)
        if inst is None:
            plan.skipped[symbol] = Skip.UNKNOWN_INSTRUMENT
            continue
        if not inst.tradable:
            plan.skipped[symbol] = Skip.NOT_TRADABLE
            continue
        if mark is None or not (math.isfinite(mark) and mark > 0):
            plan.skipped[symbol] = Skip.NO_MARK
            continue
        if not math.isfinite(weight):
            plan.skipped[symbol] = Skip.BAD_WEIGHT
            continue
        position = positions.get(symbol, Decimal(0))
        target = _decimal(weight * capital / mark)
        delta = target - position
        lots = (abs(delta) / inst.lot).to_integral_value(rounding=ROUND_DOWN)
        qty = min(
            lots * inst.lot, (inst.max_qty / inst.lot).to_integral_value(rounding=ROUND_DOWN) * inst.lot
        )
        if qty <= 0:
            plan.skipped[symbol] = Skip.AT_TARGET
            continue
        if qty < inst.min_qty:
            plan.skipped[symbol] = Skip.BELOW_MIN_QTY
            continue
        if float(qty) * mark < min_notional:
            plan.skipped[symbol] = Skip.BELOW_MIN_NOTIONAL
            continue
        side = Side.BUY if delta > 0 else Side.SELL
        price = limit_price(inst, mark, side, aggression_bps)
        if price is None:
            plan.skipped[symbol] = Skip.NO_MARK
            continue
        plan.orders.append(
            RebalanceOrder(
                symbol=symbol,
                side=side,
                qty=qty,
                price=price,
                mark=mark,
                position=position,
                target_qty=target,
            )
        )
    return plan
