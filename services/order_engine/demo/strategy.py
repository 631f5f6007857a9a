"""What the demo traders decide, without I/O: where the maker quotes and what the takers send.

Prices are integer ticks of the instrument; sizes are multiples of its minimum quantity.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from nexus.instruments import Instrument
from nexus.messages import OrderType, Side, TimeInForce

HALF_SPREAD_BPS = 5
"""The maker's best quotes sit this far from the mid (in basis points)."""
LEVEL_STEP_BPS = 2
"""And each further level this much further out."""


def mid_ticks(inst: Instrument, bid: Decimal | None, ask: Decimal | None) -> int:
    """The mid of a quote in whole ticks; the instrument's reference price when a side is missing."""
    mid = inst.ref_price
    if bid is not None and ask is not None and bid > 0 and ask > 0:
        mid = (bid + ask) / 2
    return max(1, int((mid / inst.tick).to_integral_value(ROUND_HALF_EVEN)))


def bps_in_ticks(inst: Instrument, mid: int, bps: int) -> int:
    return max(1, int(mid * bps // 10_000))


@dataclass(frozen=True)
class Quote:
    level: int
    side: Side
    price: int
    """ticks"""


def ladder(inst: Instrument, mid: int, levels: int) -> list[Quote]:
    """The maker's quotes: `levels` bids below and asks above the mid, never crossing each other."""
    half = bps_in_ticks(inst, mid, HALF_SPREAD_BPS)
    step = bps_in_ticks(inst, mid, LEVEL_STEP_BPS)
    out = []
    for i in range(levels):
        out.append(Quote(i, Side.BUY, max(1, mid - half - i * step)))
        out.append(Quote(i, Side.SELL, mid + half + i * step))
    return out


@dataclass(frozen=True)
class TakerOrder:
    side: Side
    qty: Decimal
    price: Decimal | None
    order_type: OrderType
    tif: TimeInForce


def taker_order(rng: random.Random, inst: Instrument, mid: int) -> TakerOrder:
    """A random order: mostly marketable IOC limits through the maker's best level, some market orders,
    some passive limits that rest a while."""
    side = rng.choice((Side.BUY, Side.SELL))
    qty = inst.min_qty * rng.randint(1, 5) if inst.min_qty > 0 else inst.lot * rng.randint(1, 5)
    half = bps_in_ticks(inst, mid, HALF_SPREAD_BPS)
    sign = 1 if side is Side.BUY else -1
    r = rng.random()
    if r < 0.7:
        price = mid + sign * (half + rng.randint(0, 2) * bps_in_ticks(inst, mid, LEVEL_STEP_BPS))
        return TakerOrder(side, qty, inst.price(max(1, price)), OrderType.LIMIT, TimeInForce.IOC)
    if r < 0.85:
        return TakerOrder(side, qty, None, OrderType.MARKET, TimeInForce.IOC)
    price = mid - sign * rng.randint(1, max(1, half))
    return TakerOrder(side, qty, inst.price(max(1, price)), OrderType.LIMIT, TimeInForce.GTC)
