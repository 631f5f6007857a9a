"""The pure check functions: every check at and around its boundary, and every trading state.

Limits come from tests/risk/limits_test.toml (SPY: max order 100, max position 150, collar 5%, notional
100k, gross 300k, net 200k, credit 250k, daily loss 5k, 50 open orders); SPY's mark is 500.00.
"""

from __future__ import annotations

import itertools
import random
from decimal import Decimal
from typing import Any

import pytest

from nexus.instruments import Instrument, load_instruments
from nexus.messages import (
    CancelAll,
    CancelOrder,
    ExecReport,
    ExecType,
    NewOrder,
    OrderType,
    Reason,
    ReplaceOrder,
    Side,
    TimeInForce,
    TradingState,
)
from risk.checks import Checker, TokenBucket
from risk.limits import AccountLimits, SymbolLimits, load_limits
from risk.positions import ZERO, Account
from tests.risk.conftest import LIMITS

D = Decimal
_ids = itertools.count(1)
TST = Instrument(symbol="TST", tick=D("0.05"), lot=D(1), min_qty=D(5), max_qty=D(1000), ref_price=D(10))


@pytest.fixture
def checker() -> Checker:
    instruments = {**load_instruments(), "TST": TST}
    c = Checker(load_limits(LIMITS, instruments))
    c.market.quote("SPY", D("499.99"), D("500.01"))  # mark 500.00
    c.market.quote("TST", D("9.95"), D("10.05"))
    return c


def new(
    account: str = "alice",
    symbol: str = "SPY",
    side: Side = Side.BUY,
    qty: str = "10",
    price: str | None = "500.00",
    **kw: object,
) -> NewOrder:
    return NewOrder(
        account=account,
        client_order_id=str(kw.pop("coid", f"o{next(_ids)}")),
        symbol=symbol,
        side=side,
        qty=D(qty),
        price=None if price is None else D(price),
        **kw,  # type: ignore[arg-type]
    )


def reason(checker: Checker, order: NewOrder, now: float = 0.0) -> str | None:
    verdict = checker.check_new(order, now)
    return None if verdict is None else verdict[0]


def fill(checker: Checker, account: str, side: Side, qty: str, px: str, symbol: str = "SPY") -> None:
    """A fill of an order of `account` as the engine would report it (the order fully filled)."""
    coid = f"f{next(_ids)}"
    checker.account(account).on_report(
        ExecReport(
            account=account,
            client_order_id=coid,
            exec_type=ExecType.FILLED,
            symbol=symbol,
            side=side,
            price=D(px),
            qty=D(qty),
            last_qty=D(qty),
            last_px=D(px),
            cum_qty=D(qty),
            leaves_qty=D(0),
        )
    )


def limits(checker: Checker, scope: str = "alice", **fields: object) -> None:
    checker.limits.update(scope, AccountLimits(**fields))  # type: ignore[arg-type]


def test_a_plain_order_passes_and_counts_as_open_at_once(checker: Checker) -> None:
    order = new()
    assert reason(checker, order) is None
    acct = checker.accounts["alice"]
    assert order.client_order_id in acct.orders
    assert acct.holdings["SPY"].open_buy == 10


def test_unknown_account_is_refused_when_the_file_says_so(checker: Checker) -> None:
    assert reason(checker, new(account="mallory")) == Reason.UNKNOWN_ACCOUNT
    checker.limits.config.unknown_accounts = "defaults"
    checker.limits.update("defaults", AccountLimits())
    assert reason(checker, new(account="mallory")) is None


def test_instrument_known_and_tradable(checker: Checker) -> None:
    assert reason(checker, new(symbol="NOPE")) == Reason.UNKNOWN_SYMBOL
    limits(checker, symbol={"SPY": SymbolLimits(tradable=False)})
    assert reason(checker, new()) == Reason.INSTRUMENT_NOT_TRADABLE
    assert reason(checker, new(account="bob")) is None  # only alice's SPY was switched off


@pytest.mark.parametrize(
    ("qty", "expected"),
    [
        ("0", Reason.QTY_NOT_POSITIVE),
        ("-1", Reason.QTY_NOT_POSITIVE),
        ("1", None),
        ("1.5", Reason.QTY_NOT_LOT_MULTIPLE),
        ("100", None),  # max_order_qty of SPY
        ("101", Reason.MAX_ORDER_QTY),
    ],
)
def test_quantity(checker: Checker, qty: str, expected: str | None) -> None:
    assert reason(checker, new(qty=qty, price="500.00")) == expected


@pytest.mark.parametrize(
    ("qty", "expected"),
    [("4", Reason.QTY_BELOW_MIN), ("5", None), ("1000", None), ("1001", Reason.MAX_ORDER_QTY)],
)
def test_instrument_minimum_and_maximum(checker: Checker, qty: str, expected: str | None) -> None:
    assert reason(checker, new(symbol="TST", qty=qty, price="10.00", account="mm")) == expected


@pytest.mark.parametrize(
    ("price", "expected"),
    [
        (None, Reason.PRICE_REQUIRED),
        ("0", Reason.PRICE_NOT_POSITIVE),
        ("-500", Reason.PRICE_NOT_POSITIVE),
        ("500.005", Reason.PRICE_OFF_TICK),
        ("500.01", None),
    ],
)
def test_price(checker: Checker, price: str | None, expected: str | None) -> None:
    assert reason(checker, new(price=price)) == expected


def test_tick_of_a_non_decimal_tick(checker: Checker) -> None:
    assert reason(checker, new(symbol="TST", qty="5", price="10.05")) is None
    assert reason(checker, new(symbol="TST", qty="5", price="10.02")) == Reason.PRICE_OFF_TICK


@pytest.mark.parametrize(
    ("side", "price", "expected"),
    [
        (Side.BUY, "525.00", None),  # mark 500, 5% = 25.00
        (Side.BUY, "525.01", Reason.PRICE_COLLAR),
        (Side.BUY, "474.99", Reason.PRICE_COLLAR),  # a fat finger either way
        (Side.SELL, "475.00", None),
        (Side.SELL, "474.99", Reason.PRICE_COLLAR),
        (Side.SELL, "525.01", Reason.PRICE_COLLAR),
    ],
)
def test_price_collar_in_percent(checker: Checker, side: Side, price: str, expected: str | None) -> None:
    assert reason(checker, new(side=side, qty="1", price=price)) == expected


def test_price_collar_in_ticks_widens_the_band(checker: Checker) -> None:
    limits(checker, collar_ticks=3000)  # 30.00 > 5% of 500
    assert reason(checker, new(qty="1", price="530.00")) is None
    assert reason(checker, new(qty="1", price="530.01")) == Reason.PRICE_COLLAR


def test_no_reference_price(checker: Checker) -> None:
    assert reason(checker, new(symbol="AAPL", qty="1", price="228.50")) == Reason.NO_REFERENCE_PRICE
    limits(checker, require_reference=False)
    assert reason(checker, new(symbol="AAPL", qty="1", price="228.50")) is None


def test_market_orders_are_priced_against_the_opposite_best(checker: Checker) -> None:
    mkt: dict[str, Any] = {"order_type": OrderType.MARKET, "tif": TimeInForce.IOC}
    assert reason(checker, new(price=None, qty="1", **mkt)) is None
    checker.market.quote("SPY", D("499.99"), None)  # no ask: a market buy cannot be priced
    assert reason(checker, new(price=None, qty="1", **mkt)) == Reason.NO_REFERENCE_PRICE
    assert reason(checker, new(side=Side.SELL, price=None, qty="1", **mkt)) is None
    # notional of a market buy is taken at the ask
    checker.market.quote("SPY", D("499.99"), D("1000.00"))
    limits(checker, max_notional=D("50000"))
    assert reason(checker, new(price=None, qty="50", **mkt)) is None
    assert reason(checker, new(price=None, qty="51", **mkt)) == Reason.MAX_NOTIONAL


def test_max_notional_per_order(checker: Checker) -> None:
    limits(checker, max_notional=D("25000"))
    assert reason(checker, new(qty="50", price="500.00")) is None
    assert reason(checker, new(qty="50", price="500.01")) == Reason.MAX_NOTIONAL


def test_max_notional_across_the_collar_band(checker: Checker) -> None:
    """At the top and the bottom of the band (TST: mark 10.00, collar 5 %), after the mark moves and after
    the limit changes."""
    limits(checker, max_notional=D("1000"))
    assert reason(checker, new(symbol="TST", qty="95", price="10.50")) is None  # 997.50
    assert reason(checker, new(symbol="TST", qty="96", price="10.50")) == Reason.MAX_NOTIONAL  # 1,008
    assert reason(checker, new(symbol="TST", qty="105", price="9.50")) is None  # 997.50
    assert reason(checker, new(symbol="TST", qty="106", price="9.50")) == Reason.MAX_NOTIONAL
    checker.market.quote("TST", D("19.95"), D("20.05"))  # mark 20: band 19.00..21.00
    assert reason(checker, new(symbol="TST", qty="50", price="20.00")) is None  # 1,000
    assert reason(checker, new(symbol="TST", qty="48", price="21.00")) == Reason.MAX_NOTIONAL  # 1,008
    assert reason(checker, new(symbol="TST", qty="47", price="21.00")) is None  # 987
    limits(checker, max_notional=D("2000"))
    assert reason(checker, new(symbol="TST", qty="95", price="21.00")) is None  # 1,995


def test_duplicate_client_order_id(checker: Checker) -> None:
    assert reason(checker, new(coid="same")) is None
    assert reason(checker, new(coid="same")) == Reason.DUPLICATE_ORDER_ID
    # an id the engine reported (e.g. before a restart of risk) is known too
    checker.account("bob").on_report(
        ExecReport(
            account="bob", client_order_id="seen", exec_type=ExecType.ACCEPTED, symbol="SPY", side=Side.BUY,
            price=D(500), qty=D(1), leaves_qty=D(1), cum_qty=D(0),
        )
    )  # fmt: skip
    assert reason(checker, new(account="bob", coid="seen")) == Reason.DUPLICATE_ORDER_ID


def test_max_open_orders(checker: Checker) -> None:
    for _ in range(50):
        assert reason(checker, new(qty="1")) is None
    assert reason(checker, new(qty="1")) == Reason.MAX_OPEN_ORDERS
    # a fill closing one makes room again
    acct = checker.accounts["alice"]
    coid = next(iter(acct.orders))
    acct.set_leaves(coid, D(0))
    assert reason(checker, new(qty="1")) is None


def test_max_position_counts_open_orders_worst_case(checker: Checker) -> None:
    assert reason(checker, new(qty="100")) is None
    assert reason(checker, new(qty="50")) is None  # 150 if both fill: at the limit
    assert reason(checker, new(qty="1")) == Reason.MAX_POSITION
    # sells are the other side: up to 150 short if every sell fills, with no buy filled
    assert reason(checker, new(side=Side.SELL, qty="100")) is None
    assert reason(checker, new(side=Side.SELL, qty="50")) is None
    assert reason(checker, new(side=Side.SELL, qty="1")) == Reason.MAX_POSITION


def test_max_position_with_a_filled_position(checker: Checker) -> None:
    fill(checker, "alice", Side.BUY, "140", "500.00")
    assert reason(checker, new(qty="10")) is None
    assert reason(checker, new(qty="1")) == Reason.MAX_POSITION
    assert reason(checker, new(side=Side.SELL, qty="100")) is None  # reduces


def _room(checker: Checker) -> None:
    """Lift alice's SPY position cap so the account-wide limits are what binds."""
    limits(checker, symbol={"SPY": SymbolLimits(max_position=D(10**6))})


def test_max_net_exposure(checker: Checker) -> None:
    _room(checker)
    for _ in range(4):
        assert reason(checker, new(qty="100")) is None  # 400 x 500 = 200,000 net: at the limit
    assert reason(checker, new(qty="1")) == Reason.MAX_NET_EXPOSURE
    # the short side is a separate worst case: selling 400 nets -200,000 if every sell fills
    for _ in range(4):
        assert reason(checker, new(side=Side.SELL, qty="100")) is None
    assert reason(checker, new(side=Side.SELL, qty="1")) == Reason.MAX_NET_EXPOSURE


def test_max_gross_exposure(checker: Checker) -> None:
    _room(checker)
    limits(checker, max_net_exposure=D(10**9), credit_limit=D(10**9))
    limits(checker, symbol={"TST": SymbolLimits(max_position=D(10**6))})
    checker.market.quote("TST", D("99.99"), D("100.01"))  # mark 100
    for _ in range(5):
        assert reason(checker, new(qty="100")) is None  # 250,000 in SPY
    for _ in range(5):
        assert reason(checker, new(symbol="TST", side=Side.SELL, qty="100", price="100.00")) is None  # 50,000
    assert (
        reason(checker, new(symbol="TST", side=Side.SELL, qty="5", price="100.00"))
        == Reason.MAX_GROSS_EXPOSURE
    )


def test_buying_power_shrinks_with_losses(checker: Checker) -> None:
    _room(checker)
    limits(checker, max_net_exposure=D(10**9), max_gross_exposure=D(10**9), daily_loss_limit=D(10**9))
    for _ in range(5):
        assert reason(checker, new(qty="100")) is None  # 250,000 = credit
    assert reason(checker, new(qty="1")) == Reason.BUYING_POWER
    # a realised loss of 1,000 takes 2 shares of room away; margin 0.5 doubles the room
    checker.accounts["alice"].orders.clear()
    checker.accounts["alice"].holdings.clear()
    fill(checker, "alice", Side.BUY, "10", "500.00")
    fill(checker, "alice", Side.SELL, "10", "400.00")
    assert reason(checker, new(qty="100")) is None
    assert reason(checker, new(qty="100")) is None
    assert reason(checker, new(qty="100")) is None
    assert reason(checker, new(qty="100")) is None
    assert reason(checker, new(qty="98")) is None  # 498 x 500 = 249,000 = 250,000 - 1,000
    assert reason(checker, new(qty="1")) == Reason.BUYING_POWER
    limits(checker, margin_rate=D("0.5"))
    assert reason(checker, new(qty="1")) is None


def test_daily_loss_limit_lets_reducing_orders_through(checker: Checker) -> None:
    fill(checker, "alice", Side.BUY, "100", "500.00")
    fill(checker, "alice", Side.SELL, "90", "444.45")  # realised -4,999.50; 10 left, marked at 500
    assert reason(checker, new(qty="1")) is None
    checker.market.quote("SPY", D("499.94"), D("499.96"))  # mark 499.95: unrealised -0.50 -> -5,000.00
    assert reason(checker, new(qty="1", price="499.95")) == Reason.DAILY_LOSS_LIMIT
    assert reason(checker, new(side=Side.SELL, qty="5", price="499.95")) is None  # reduces


def test_reduce_only(checker: Checker) -> None:
    assert reason(checker, new(side=Side.SELL, qty="1", reduce_only=True)) == Reason.REDUCE_ONLY
    fill(checker, "alice", Side.BUY, "10", "500.00")
    assert reason(checker, new(side=Side.SELL, qty="11", reduce_only=True)) == Reason.REDUCE_ONLY  # flips
    assert reason(checker, new(side=Side.BUY, qty="1", reduce_only=True)) == Reason.REDUCE_ONLY  # grows
    assert reason(checker, new(side=Side.SELL, qty="6", reduce_only=True)) is None
    # with 6 open to sell, only 4 more can reduce
    assert reason(checker, new(side=Side.SELL, qty="5", reduce_only=True)) == Reason.REDUCE_ONLY
    assert reason(checker, new(side=Side.SELL, qty="4", reduce_only=True)) is None


def test_rate_limit_denies_at_the_configured_rate_and_refusals_take_no_token(checker: Checker) -> None:
    # account slow: 20 orders/s, burst 10
    assert [reason(checker, new(account="slow", qty="1"), 100.0) for _ in range(11)] == [None] * 10 + [
        Reason.RATE_LIMIT
    ]
    assert reason(checker, new(account="slow", qty="1"), 100.0499) == Reason.RATE_LIMIT  # 0.998 of a token
    assert reason(checker, new(account="slow", qty="1"), 100.0501) is None  # one token after 50 ms
    assert reason(checker, new(account="slow", qty="1", price="0"), 100.5) == Reason.PRICE_NOT_POSITIVE
    results = [reason(checker, new(account="slow", qty="1"), 101.0) for _ in range(12)]
    assert results.count(None) == 10  # refilled to the burst, not beyond
    assert results[10:] == [Reason.RATE_LIMIT, Reason.RATE_LIMIT]


def test_token_bucket_over_a_long_run() -> None:
    bucket = TokenBucket(rate=100.0, burst=5, now=0.0)
    passed = sum(bucket.take(i * 0.001) for i in range(10_000))  # 1,000 attempts a second for 10 s
    assert passed == 5 + 999  # the burst, then 100 a second (the first ms refills nothing)


def test_states(checker: Checker) -> None:
    assert reason(checker, new(coid="resting")) is None
    checker.account("alice").state = TradingState.HALTED
    assert reason(checker, new()) == Reason.TRADING_HALTED
    replace = ReplaceOrder(
        account="alice", client_order_id="r1", symbol="SPY", orig_client_order_id="resting", qty=D(5)
    )
    verdict = checker.check_replace(replace, 0.0)
    assert verdict is not None
    assert verdict[0] == Reason.TRADING_HALTED
    cancel = CancelOrder(account="alice", client_order_id="c1", symbol="SPY", orig_client_order_id="resting")
    assert checker.check_cancel(cancel) is None
    assert checker.check_cancel(CancelAll(account="alice", client_order_id="c2")) is None
    assert reason(checker, new(account="bob")) is None  # only alice is halted

    checker.account("alice").state = TradingState.ACTIVE
    checker.global_state = TradingState.HALTED
    assert reason(checker, new()) == Reason.TRADING_HALTED
    assert reason(checker, new(account="bob")) == Reason.TRADING_HALTED

    checker.global_state = TradingState.REDUCING  # reducing everywhere: flat accounts cannot open
    assert reason(checker, new(account="bob")) == Reason.TRADING_REDUCING
    fill(checker, "bob", Side.SELL, "20", "500.00")
    # bob already has 10 open to buy (approved above): 10 more buy back the 20 short if both fill
    assert reason(checker, new(account="bob", qty="10")) is None
    assert reason(checker, new(account="bob", qty="1")) == Reason.TRADING_REDUCING  # could go long
    assert reason(checker, new(account="bob", side=Side.SELL, qty="1")) == Reason.TRADING_REDUCING

    checker.global_state = TradingState.ACTIVE
    checker.account("bob").state = TradingState.REDUCING  # an account's own state applies the same way
    assert reason(checker, new(account="bob", qty="1")) == Reason.TRADING_REDUCING
    assert reason(checker, new(account="carol", qty="1")) is None


def test_replace_checks(checker: Checker) -> None:
    assert reason(checker, new(coid="r", qty="10")) is None
    assert reason(checker, new(coid="big", qty="100")) is None  # 110 open to buy

    def rep(**kw: object) -> str | None:
        r = ReplaceOrder(
            account="alice",
            client_order_id=f"x{next(_ids)}",
            symbol="SPY",
            orig_client_order_id="r",
            **kw,  # type: ignore[arg-type]
        )
        verdict = checker.check_replace(r, 0.0)
        return None if verdict is None else verdict[0]

    assert rep(price=D("501.00")) is None
    assert rep(price=D("501.005")) == Reason.PRICE_OFF_TICK
    assert rep(price=D("600.00")) == Reason.PRICE_COLLAR
    assert rep(qty=D("1.5")) == Reason.QTY_NOT_LOT_MULTIPLE
    assert rep(qty=D("50")) is None  # 10 -> 50: 150 open, at the position limit
    assert rep(qty=D("51")) == Reason.MAX_POSITION
    checker.account("alice").state = TradingState.REDUCING
    assert rep(qty=D("5")) is None  # shrinking is always allowed
    assert rep(qty=D("11")) == Reason.TRADING_REDUCING
    # a replace of an order risk does not know is the engine's to answer
    unknown = ReplaceOrder(account="alice", client_order_id="u", symbol="SPY", orig_client_order_id="nope")
    assert checker.check_replace(unknown, 0.0) is None


def test_replace_rate_limit(checker: Checker) -> None:
    limits(checker, modifies_per_sec=1.0, modify_burst=2)
    assert reason(checker, new(coid="m")) is None

    def replace(i: int) -> ReplaceOrder:
        return ReplaceOrder(
            account="alice",
            client_order_id=f"m{i}",
            symbol="SPY",
            orig_client_order_id="m",
            price=D("500.00"),
        )

    verdicts = [checker.check_replace(replace(i), 5.0) for i in range(3)]
    assert [v and v[0] for v in verdicts] == [None, None, Reason.RATE_LIMIT]


def test_an_order_the_engine_rejected_no_longer_counts(checker: Checker) -> None:
    order = new(qty="100")
    assert reason(checker, order) is None
    assert reason(checker, new(qty="100")) == Reason.MAX_POSITION
    checker.account("alice").on_report(
        ExecReport(
            account="alice", client_order_id=order.client_order_id, exec_type=ExecType.REJECTED, symbol="SPY",
            reason=Reason.POST_ONLY_WOULD_TAKE,
        )
    )  # fmt: skip
    assert reason(checker, new(qty="100")) is None


def test_limit_changes_apply_at_once_and_are_reported_field_by_field(checker: Checker) -> None:
    assert reason(checker, new(qty="60")) is None
    changes = checker.limits.update("alice", AccountLimits(symbol={"SPY": SymbolLimits(max_order_qty=D(50))}))
    assert changes == [("symbol.SPY.max_order_qty", "", "50")]
    assert reason(checker, new(qty="60")) == Reason.MAX_ORDER_QTY
    assert reason(checker, new(qty="50")) is None


def test_the_room_gives_the_answers_of_the_full_check() -> None:
    """Differential: a checker that passes orders fitting in the account's room (as in production) and
    one that checks every order in full give the same answer to each of a seeded random stream of
    orders, fills, cancels, orders growing, mark moves and limit changes, and end with the same
    exposure. The stream keeps both accounts near their exposure, buying-power and loss limits."""
    rng = random.Random(1)
    instruments = {**load_instruments(), "TST": TST}
    fast, full = (Checker(load_limits(LIMITS, instruments)) for _ in range(2))
    marks = {"SPY": D("500.00"), "TST": D("100.00")}
    both = (fast, full)

    def quote(symbol: str) -> None:
        for c in both:
            c.market.quote(symbol, marks[symbol] - D("0.05"), marks[symbol] + D("0.05"))

    for c in both:  # bob is bound by his account-wide limits; alice by buying power, gross, her SPY position
        c.limits.update(
            "bob",
            AccountLimits(
                margin_rate=D("0.5"),
                credit_limit=D(110_000),
                max_notional=D(49_000),
                symbol={"SPY": SymbolLimits(max_position=D(10**6))},
            ),
        )
        c.limits.update(
            "alice",
            AccountLimits(max_net_exposure=D(10**9), symbol={"TST": SymbolLimits(max_position=D(2000))}),
        )
    for symbol in marks:
        quote(symbol)

    answers: dict[str, int] = {}
    passed_on_room = 0
    for step in range(20_000):
        kind = rng.random()
        account = rng.choice(("alice", "bob"))
        open_ids = list(fast.account(account).orders)
        if kind < 0.55 or not open_ids:
            symbol = rng.choice(("SPY", "TST"))
            sym = fast.limits.account(account).symbol(symbol)  # type: ignore[union-attr]
            assert sym is not None
            market = rng.random() < 0.05
            offset = rng.randint(-20, 20) * sym.tick
            order = new(
                account=account,
                symbol=symbol,
                side=rng.choice((Side.BUY, Side.SELL)),
                qty=str(rng.choice((5, 10, 40, 100) if symbol == "SPY" else (5, 50, 300))),
                price=None if market else str(marks[symbol] + offset),
                order_type=OrderType.MARKET if market else OrderType.LIMIT,
                reduce_only=rng.random() < 0.05,
            )
            acct = fast.account(account)
            room = acct.room if acct.room_version == fast.market.version else None
            full.account(account).room = None  # the full check, every time
            got, want = fast.check_new(order, step), full.check_new(order, step)
            assert (got and got[0]) == (want and want[0]), (step, order, got, want)
            mark = marks[symbol]
            passed_on_room += got is None and room is not None and acct.room == room - order.qty * mark
            answers[want[0] if want else "approved"] = answers.get(want[0] if want else "approved", 0) + 1
        elif kind < 0.70:  # a fill of part or all of an open order, at a price near the mark
            coid = rng.choice(open_ids)
            o = fast.account(account).orders[coid]
            last = min(o.qty, D(rng.choice((5, 10, 100))))
            px = marks[o.symbol] + rng.randint(-400, 400) * D("0.05")
            report = ExecReport(
                account=account, client_order_id=coid, symbol=o.symbol, side=o.side, price=o.price,
                exec_type=ExecType.FILLED if last == o.qty else ExecType.PARTIALLY_FILLED,
                last_qty=last, last_px=px, cum_qty=o.cum + last, leaves_qty=o.qty - last,
            )  # fmt: skip
            for c in both:
                c.account(account).on_report(report)
        elif kind < 0.85:
            coid = rng.choice(open_ids)
            for c in both:
                c.account(account).set_leaves(coid, ZERO)
        elif kind < 0.90:  # a replace the engine reports: the order grows (or shrinks)
            coid = rng.choice(open_ids)
            leaves = fast.account(account).orders[coid].qty + rng.choice((-5, 10, 50))
            for c in both:
                c.account(account).set_leaves(coid, max(leaves, ZERO))
        elif kind < 0.97:
            symbol = rng.choice(("SPY", "TST"))
            marks[symbol] += rng.randint(-40, 40) * D("0.05")
            quote(symbol)
        else:
            change = (
                AccountLimits(max_gross_exposure=D(rng.choice((150_000, 300_000, 600_000))))
                if rng.random() < 0.5
                else AccountLimits(daily_loss_limit=D(rng.choice((5_000, 50_000, 500_000))))
            )
            for c in both:
                c.limits.update(account, change)
    for name in ("alice", "bob"):
        a, b = fast.account(name), full.account(name)
        a.refresh(fast.market)
        b.refresh(full.market)
        assert (a.gross, a.net_long, a.net_short, a.unrealised) == (
            b.gross,
            b.net_long,
            b.net_short,
            b.unrealised,
        )
    # the stream went where it should: orders passed on the room, and at every account-wide limit
    assert passed_on_room > 300, passed_on_room
    binding = (
        Reason.MAX_GROSS_EXPOSURE,
        Reason.MAX_NET_EXPOSURE,
        Reason.BUYING_POWER,
        Reason.DAILY_LOSS_LIMIT,
    )
    for code in (*binding, Reason.MAX_POSITION, Reason.MAX_NOTIONAL):
        assert answers.get(code, 0) > 0, answers


def test_a_fill_at_a_loss_takes_buying_power_out_of_the_room(checker: Checker) -> None:
    _room(checker)
    limits(checker, max_gross_exposure=D(10**9), max_net_exposure=D(10**9), credit_limit=D(100_000))
    order = new(qty="100")
    assert reason(checker, order) is None  # 50,000 of 100,000: 50,000 left
    checker.account("alice").on_report(
        ExecReport(
            account="alice", client_order_id=order.client_order_id, exec_type=ExecType.FILLED, symbol="SPY",
            side=Side.BUY, price=D(500), qty=D(100), last_qty=D(100), last_px=D(520), cum_qty=D(100),
            leaves_qty=D(0),
        )
    )  # fmt: skip
    # bought 20 above the mark: -2,000 unrealised, so 48,000 left
    assert reason(checker, new(qty="97")) == Reason.BUYING_POWER
    assert reason(checker, new(qty="96")) is None


def test_a_reducing_order_can_use_up_net_room(checker: Checker) -> None:
    """Selling a long position while short elsewhere makes the account's short worst case larger."""
    _room(checker)
    limits(checker, max_gross_exposure=D(10**9), credit_limit=D(10**9), max_net_exposure=D(50_000))
    checker.market.quote("TST", D("99.95"), D("100.05"))  # mark 100
    fill(checker, "alice", Side.SELL, "400", "100.00", symbol="TST")
    fill(checker, "alice", Side.BUY, "20", "500.00")  # net: -40,000 + 10,000
    assert reason(checker, new(symbol="TST", side=Side.SELL, qty="5", price="100.00")) is None  # -30,500
    assert reason(checker, new(side=Side.SELL, qty="20")) is None  # reduces SPY to 0: short case -40,500
    assert (
        reason(checker, new(symbol="TST", side=Side.SELL, qty="100", price="100.00"))
        == Reason.MAX_NET_EXPOSURE
    )
    assert reason(checker, new(symbol="TST", side=Side.SELL, qty="95", price="100.00")) is None  # -50,000


def test_used_ids_are_remembered_at_least_seen_memory_deep(checker: Checker) -> None:
    """The newest `seen_memory` ids are always remembered, from orders the checks approved and from the
    engine's reports alike; older ones are forgotten a generation at once (at most twice as many kept)."""
    acct = checker.accounts["mm"] = Account("mm", seen_memory=100)
    used: list[str] = []
    for i in range(1_000):
        coid = f"c{i}"
        if i % 3:
            assert (
                reason(checker, new(account="mm", coid=coid, qty="1", side=Side.BUY if i % 2 else Side.SELL))
                is None
            )
            acct.set_leaves(coid, ZERO)  # the engine fills or cancels it
        else:
            acct.remember_id(coid)  # an order the engine reported
        used.append(coid)
        remembered = acct.seen | acct.seen_before
        assert set(used[-100:]) <= remembered, i
        assert len(remembered) <= 200
        assert remembered <= set(used)
    assert "c0" not in acct.seen | acct.seen_before
    assert reason(checker, new(account="mm", coid=used[-100], qty="1")) == Reason.DUPLICATE_ORDER_ID
    assert reason(checker, new(account="mm", coid="c0", qty="1")) is None
