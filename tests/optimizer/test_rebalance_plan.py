"""Rebalance orders without NATS: weights + positions + marks + instruments -> orders, checked by hand."""

from __future__ import annotations

from decimal import Decimal

import pytest

from nexus.instruments import Instrument
from nexus.messages import Side
from optimizer.rebalance import RebalanceOrder, Skip, limit_price, plan_rebalance

D = Decimal

INSTRUMENTS = {
    "BTC": Instrument(symbol="BTC", tick=D("0.01"), lot=D("0.0001"), min_qty=D("0.0001"), max_qty=D("100")),
    "SPY": Instrument(symbol="SPY", tick=D("0.01"), lot=D("1"), min_qty=D("1"), max_qty=D("100000")),
    "SOL": Instrument(symbol="SOL", tick=D("0.005"), lot=D("0.5"), min_qty=D("2"), max_qty=D("50")),
    "OFF": Instrument(symbol="OFF", tick=D("0.01"), lot=D("1"), max_qty=D("100"), tradable=False),
}


def by_symbol(orders: list[RebalanceOrder]) -> dict[str, RebalanceOrder]:
    return {o.symbol: o for o in orders}


def test_target_quantities_are_rounded_down_to_the_lot_and_priced_on_the_tick() -> None:
    plan = plan_rebalance(
        {"BTC": 0.5, "SPY": 0.3, "SOL": 0.2},
        {},
        {"BTC": 64_000.0, "SPY": 500.005, "SOL": 145.0},
        INSTRUMENTS,
        capital=100_000,
        aggression_bps=10,
    )
    orders = by_symbol(plan.orders)
    assert set(orders) == {"BTC", "SPY", "SOL"}
    # 50,000 / 64,000 = 0.78125 -> 0.7812 (lot 0.0001, down)
    assert orders["BTC"].qty == D("0.7812")
    # 30,000 / 500.005 = 59.9994 -> 59 (down, not to the nearest 60)
    assert orders["SPY"].qty == D("59")
    # 20,000 / 145 = 137.93 -> capped at max_qty 50
    assert orders["SOL"].qty == D("50")
    for o in plan.orders:
        inst = INSTRUMENTS[o.symbol]
        assert o.side is Side.BUY
        assert inst.to_lots(o.qty) is not None
        assert inst.to_ticks(o.price) is not None
    # buys 10 bp above the mark, rounded down to the tick: 64,064 / 500.505005 -> 500.50 / 145.145 -> 145.145
    assert orders["BTC"].price == D("64064.00")
    assert orders["SPY"].price == D("500.50")
    assert orders["SOL"].price == D("145.145")
    assert orders["SPY"].target_qty == pytest.approx(D("59.9994"), abs=D("0.0001"))


def test_the_position_is_subtracted_and_the_rest_is_within_one_lot() -> None:
    plan = plan_rebalance({"SPY": 0.3}, {"SPY": D(20)}, {"SPY": 400.0}, INSTRUMENTS, capital=100_001)
    (order,) = plan.orders
    # target 75.0025, holding 20: buy 55 (55.0025 rounded down)
    assert (order.side, order.qty, order.position) == (Side.BUY, D(55), D(20))
    after = order.position + order.qty
    assert D(0) <= order.target_qty - after < INSTRUMENTS["SPY"].lot


def test_over_target_sells_and_a_sell_is_priced_below_the_mark_rounded_up() -> None:
    plan = plan_rebalance(
        {"SPY": 0.1, "BTC": 0.0}, {"SPY": D(100), "BTC": D("0.25")}, {"SPY": 333.333, "BTC": 60_000.0},
        INSTRUMENTS, capital=100_000, aggression_bps=5,
    )  # fmt: skip
    orders = by_symbol(plan.orders)
    # 10,000 / 333.333 = 30.0000300 -> hold 100, sell 69.99997 -> 69 (toward zero)
    assert (orders["SPY"].side, orders["SPY"].qty) == (Side.SELL, D(69))
    # 333.333 x (1 - 0.0005) = 333.1663335 -> up to the tick 333.17
    assert orders["SPY"].price == D("333.17")
    # a zero weight sells the whole position
    assert (orders["BTC"].side, orders["BTC"].qty) == (Side.SELL, D("0.2500"))
    assert orders["BTC"].price == D("59970.00")


def test_a_short_position_is_bought_back_through_zero_to_a_long_target() -> None:
    plan = plan_rebalance({"SPY": 0.5}, {"SPY": D(-10)}, {"SPY": 500.0}, INSTRUMENTS, capital=10_000)
    (order,) = plan.orders
    assert (order.side, order.qty) == (Side.BUY, D(20))  # -10 -> 10


def test_nothing_when_already_at_target_or_within_a_lot() -> None:
    plan = plan_rebalance(
        {"SPY": 0.3, "BTC": 0.5},
        {"SPY": D(60), "BTC": D("0.7812")},
        {"SPY": 500.0, "BTC": 64_000.0},
        INSTRUMENTS,
        capital=100_000,
    )
    assert plan.orders == []
    assert plan.skipped == {"SPY": Skip.AT_TARGET, "BTC": Skip.AT_TARGET}
    # 0.6 of a lot over the target is still within the lot: no sell
    plan = plan_rebalance({"SPY": 0.3}, {"SPY": D("60.6")}, {"SPY": 500.0}, INSTRUMENTS, capital=100_000)
    assert plan.orders == []


def test_trades_below_the_minimum_notional_or_quantity_are_skipped() -> None:
    marks = {"SPY": 500.0, "SOL": 100.0}
    # SPY: buy 3 = 1,500 of notional; SOL: buy 1.5 (3 lots) = 150, below its min_qty of 2
    weights = {"SPY": 0.03, "SOL": 0.003}
    plan = plan_rebalance(weights, {}, marks, INSTRUMENTS, capital=50_000, min_notional=1_499)
    assert [o.symbol for o in plan.orders] == ["SPY"]
    assert plan.skipped == {"SOL": Skip.BELOW_MIN_QTY}
    plan = plan_rebalance(weights, {}, marks, INSTRUMENTS, capital=50_000, min_notional=1_501)
    assert plan.orders == []
    assert plan.skipped["SPY"] == Skip.BELOW_MIN_NOTIONAL


def test_symbols_without_a_mark_unknown_or_switched_off_are_skipped() -> None:
    plan = plan_rebalance(
        {"SPY": 0.25, "BTC": 0.25, "NOPE": 0.25, "OFF": 0.25, "SOL": float("nan")},
        {"BTC": D(1)},
        {"SPY": 500.0, "BTC": float("nan"), "OFF": 10.0, "SOL": 100.0},
        INSTRUMENTS,
        capital=100_000,
    )
    assert [o.symbol for o in plan.orders] == ["SPY"]
    assert plan.skipped == {
        "BTC": Skip.NO_MARK,
        "NOPE": Skip.UNKNOWN_INSTRUMENT,
        "OFF": Skip.NOT_TRADABLE,
        "SOL": Skip.BAD_WEIGHT,
    }


def test_positions_outside_the_weights_are_left_alone() -> None:
    plan = plan_rebalance(
        {"SPY": 0.0}, {"BTC": D(3), "SPY": D(0)}, {"BTC": 60_000.0}, INSTRUMENTS, capital=1e6
    )
    assert plan.orders == []
    assert plan.skipped == {"SPY": Skip.NO_MARK}


def test_limit_prices_never_cross_zero_and_zero_aggression_is_the_mark_on_the_tick() -> None:
    spy = INSTRUMENTS["SPY"]
    assert limit_price(spy, 500.017, Side.BUY, 0) == D("500.01")
    assert limit_price(spy, 500.017, Side.SELL, 0) == D("500.02")
    assert limit_price(spy, 0.004, Side.BUY, 5) is None  # rounds down to 0.00
