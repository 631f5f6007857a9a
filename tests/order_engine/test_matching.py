"""The matching rules, one edge case per test, on the pure engine (no NATS)."""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest

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
    StpMode,
    TimeInForce,
    Trade,
)
from order_engine.engine import MatchingEngine, Output
from tests.order_engine.gen import INSTRUMENTS

D = Decimal
BUY, SELL = Side.BUY, Side.SELL
_ids = itertools.count(1)


@pytest.fixture
def engine() -> MatchingEngine:
    return MatchingEngine(INSTRUMENTS)


def new(
    engine: MatchingEngine,
    account: str,
    side: Side,
    qty: str,
    price: str | None,
    *,
    coid: str | None = None,
    symbol: str = "AAA",
    **kw: object,
) -> list[Output]:
    cmd = NewOrder(
        account=account,
        client_order_id=coid or f"o{next(_ids)}",
        symbol=symbol,
        side=side,
        qty=D(qty),
        price=None if price is None else D(price),
        **kw,  # type: ignore[arg-type]
    )
    return engine.process(cmd, 1)


def reports(outputs: list[Output]) -> list[ExecReport]:
    return [o for o in outputs if isinstance(o, ExecReport)]


def trades(outputs: list[Output]) -> list[Trade]:
    return [o for o in outputs if isinstance(o, Trade)]


def kinds(outputs: list[Output]) -> list[tuple[str, str, str]]:
    """(exec type, order id the report is about, reason) of each report."""
    return [
        (r.exec_type.value, r.orig_client_order_id or r.client_order_id, str(r.reason))
        for r in reports(outputs)
    ]


def levels(engine: MatchingEngine, symbol: str = "AAA") -> tuple[list[tuple[D, D]], list[tuple[D, D]]]:
    snap = engine.snapshot(symbol, None)
    return list(snap.bids), list(snap.asks)


def test_a_sweep_of_several_levels_rests_its_remainder(engine: MatchingEngine) -> None:
    new(engine, "m", SELL, "3", "100.00", coid="a1")
    new(engine, "m", SELL, "4", "100.01", coid="a2")
    new(engine, "m", SELL, "5", "100.03", coid="a3")
    out = new(engine, "t", BUY, "10", "100.02", coid="b1")

    assert [(t.price, t.size, t.aggressor) for t in trades(out)] == [
        (D("100.00"), 3, BUY),
        (D("100.01"), 4, BUY),
    ]
    last = reports(out)[-1]
    assert last.client_order_id == "b1"
    assert last.exec_type is ExecType.PARTIALLY_FILLED
    assert (last.cum_qty, last.leaves_qty) == (7, 3)
    assert last.avg_px == D("100.00571429")  # (3*100.00 + 4*100.01) / 7, to a millionth of a tick
    assert levels(engine) == ([(D("100.02"), D(3))], [(D("100.03"), D(5))])


def test_fok_with_too_little_liquidity_does_not_trade_at_all(engine: MatchingEngine) -> None:
    new(engine, "m", SELL, "3", "100.00")
    new(engine, "m", SELL, "3", "100.01")
    before = levels(engine)
    out = new(engine, "t", BUY, "7", "100.01", tif=TimeInForce.FOK, coid="fok")

    assert trades(out) == []
    assert kinds(out) == [("accepted", "fok", ""), ("cancelled", "fok", Reason.FOK_NOT_FILLABLE)]
    assert levels(engine) == before
    # exactly enough liquidity fills it in full
    out = new(engine, "t", BUY, "6", "100.01", tif=TimeInForce.FOK, coid="fok2")
    assert sum(t.size for t in trades(out)) == 6
    assert reports(out)[-1].exec_type is ExecType.FILLED


def test_ioc_remainder_is_cancelled_and_never_rests(engine: MatchingEngine) -> None:
    new(engine, "m", SELL, "2", "100.00")
    out = new(engine, "t", BUY, "5", "100.05", tif=TimeInForce.IOC, coid="ioc")

    assert sum(t.size for t in trades(out)) == 2
    last = reports(out)[-1]
    assert (last.exec_type, last.reason, last.cum_qty, last.leaves_qty) == (
        ExecType.CANCELLED,
        Reason.IOC_REMAINDER,
        2,
        0,
    )
    assert levels(engine) == ([], [])


def test_market_order_on_an_empty_side_is_rejected(engine: MatchingEngine) -> None:
    new(engine, "m", BUY, "2", "99.00")  # only bids
    out = new(engine, "t", BUY, "1", None, order_type=OrderType.MARKET)
    assert kinds(out) == [("rejected", out[0].client_order_id, Reason.NO_LIQUIDITY)]  # type: ignore[union-attr]
    # on the side that has liquidity it trades and cancels its remainder
    out = new(engine, "t", SELL, "5", None, order_type=OrderType.MARKET, coid="mkt")
    assert [t.price for t in trades(out)] == [D("99.00")]
    assert kinds(out)[-1] == ("cancelled", "mkt", Reason.IOC_REMAINDER)


def test_post_only_is_rejected_when_it_would_take(engine: MatchingEngine) -> None:
    new(engine, "m", SELL, "2", "100.00")
    out = new(engine, "t", BUY, "1", "100.00", post_only=True, coid="po")
    assert kinds(out) == [("rejected", "po", Reason.POST_ONLY_WOULD_TAKE)]
    out = new(engine, "t", BUY, "1", "99.99", post_only=True, coid="po2")
    assert kinds(out) == [("accepted", "po2", "")]


def _queue(engine: MatchingEngine, price: str) -> list[str]:
    st = engine.syms["AAA"]
    level = st.book.bids.levels[st.inst.to_ticks(D(price)) or 0]
    return [o.coid for o in level.live_orders()]


def test_replace_that_lowers_the_size_keeps_priority(engine: MatchingEngine) -> None:
    new(engine, "x", BUY, "5", "99.00", coid="first")
    new(engine, "y", BUY, "5", "99.00", coid="second")
    out = engine.process(
        ReplaceOrder(account="x", client_order_id="r1", symbol="AAA", orig_client_order_id="first", qty=D(2)),
        1,
    )
    assert kinds(out) == [("replaced", "first", "")]
    assert reports(out)[0].client_order_id == "r1"
    assert reports(out)[0].leaves_qty == 2
    assert _queue(engine, "99.00") == ["first", "second"]
    # the first in the queue is still the first to trade
    out = new(engine, "t", SELL, "2", "99.00")
    assert reports(out)[1].client_order_id == "first"


@pytest.mark.parametrize(("price", "qty"), [(None, "6"), ("99.00", "6"), ("98.99", None)])
def test_replace_that_raises_the_size_or_moves_the_price_loses_priority(
    engine: MatchingEngine, price: str | None, qty: str | None
) -> None:
    new(engine, "x", BUY, "5", "99.00", coid="first")
    new(engine, "y", BUY, "5", "99.00", coid="second")
    new(engine, "z", BUY, "5", "98.99", coid="third")
    engine.process(
        ReplaceOrder(
            account="x",
            client_order_id="r1",
            symbol="AAA",
            orig_client_order_id="first",
            price=None if price is None else D(price),
            qty=None if qty is None else D(qty),
        ),
        1,
    )
    at = price or "99.00"
    assert _queue(engine, at)[-1] == "first"
    assert "first" not in _queue(engine, "98.99" if at == "99.00" else "99.00")


def test_replace_to_a_crossing_price_trades(engine: MatchingEngine) -> None:
    new(engine, "m", SELL, "3", "100.00")
    new(engine, "x", BUY, "5", "99.00", coid="b")
    out = engine.process(
        ReplaceOrder(
            account="x", client_order_id="r", symbol="AAA", orig_client_order_id="b", price=D("100.00")
        ),
        1,
    )
    assert kinds(out)[0] == ("replaced", "b", "")
    assert [t.size for t in trades(out)] == [3]
    assert levels(engine) == ([(D("100.00"), D(2))], [])


def test_cancel_of_an_unknown_a_filled_and_another_accounts_order_is_rejected(engine: MatchingEngine) -> None:
    new(engine, "alice", SELL, "1", "100.00", coid="filled")
    new(engine, "bob", BUY, "1", "100.00")
    new(engine, "bob", BUY, "1", "99.00", coid="bobs")

    def cancel(account: str, orig: str) -> tuple[str, str, str]:
        out = engine.process(
            CancelOrder(
                account=account, client_order_id=f"x{next(_ids)}", symbol="AAA", orig_client_order_id=orig
            ),
            1,
        )
        assert len(out) == 1
        return kinds(out)[0]

    assert cancel("alice", "nope") == ("rejected", "nope", Reason.UNKNOWN_ORDER)
    assert cancel("alice", "filled") == ("rejected", "filled", Reason.ORDER_CLOSED)
    assert cancel("alice", "bobs") == ("rejected", "bobs", Reason.NOT_OWNER)
    assert levels(engine) == ([(D("99.00"), D(1))], [])
    assert cancel("bob", "bobs") == ("cancelled", "bobs", Reason.CANCELLED_BY_CLIENT)
    assert cancel("bob", "bobs") == ("rejected", "bobs", Reason.ORDER_CLOSED)


def test_duplicate_client_order_id_is_rejected_and_the_original_untouched(engine: MatchingEngine) -> None:
    new(engine, "a", BUY, "2", "99.00", coid="same")
    out = new(engine, "a", BUY, "9", "98.00", coid="same")
    assert kinds(out) == [("rejected", "same", Reason.DUPLICATE_ORDER_ID)]
    assert levels(engine) == ([(D("99.00"), D(2))], [])
    # the query still answers with the original order's first report
    first = engine.query("a", "same")
    assert first is not None
    assert (first.exec_type, first.qty) == (ExecType.ACCEPTED, 2)
    # another account may use the same id
    assert kinds(new(engine, "b", BUY, "1", "98.00", coid="same")) == [("accepted", "same", "")]


def test_the_latest_report_of_an_order_is_its_accepted_one_until_something_happens(
    engine: MatchingEngine,
) -> None:
    (accepted,) = reports(new(engine, "a", BUY, "2", "99.00", coid="rest"))
    assert engine.query("a", "rest", latest=True) == accepted
    new(engine, "b", SELL, "1", "99.00", coid="hit")
    latest = engine.query("a", "rest", latest=True)
    assert latest is not None
    assert (latest.exec_type, latest.cum_qty, latest.leaves_qty) == (ExecType.PARTIALLY_FILLED, 1, 1)
    assert engine.query("a", "rest") == accepted


def test_stp_cancel_newest_cancels_the_incoming_order(engine: MatchingEngine) -> None:
    new(engine, "a", SELL, "2", "100.00", coid="rest")
    out = new(engine, "a", BUY, "2", "100.00", coid="in", stp=StpMode.CANCEL_NEWEST)
    assert trades(out) == []
    assert kinds(out) == [("accepted", "in", ""), ("cancelled", "in", Reason.SELF_TRADE)]
    assert levels(engine) == ([], [(D("100.00"), D(2))])


def test_stp_cancel_oldest_cancels_the_resting_order_and_goes_on(engine: MatchingEngine) -> None:
    new(engine, "a", SELL, "2", "100.00", coid="rest")
    new(engine, "b", SELL, "1", "100.00", coid="other")
    out = new(engine, "a", BUY, "3", "100.00", coid="in", stp=StpMode.CANCEL_OLDEST)
    assert kinds(out)[:2] == [("accepted", "in", ""), ("cancelled", "rest", Reason.SELF_TRADE)]
    assert [(t.size, t.price) for t in trades(out)] == [(1, D("100.00"))]
    assert levels(engine) == ([(D("100.00"), D(2))], [])


def test_stp_cancel_both_cancels_both(engine: MatchingEngine) -> None:
    new(engine, "a", SELL, "2", "100.00", coid="rest")
    out = new(engine, "a", BUY, "3", "100.00", coid="in", stp=StpMode.CANCEL_BOTH)
    assert kinds(out) == [
        ("accepted", "in", ""),
        ("cancelled", "rest", Reason.SELF_TRADE),
        ("cancelled", "in", Reason.SELF_TRADE),
    ]
    assert levels(engine) == ([], [])


def test_stp_decrement_reduces_both_by_the_overlap(engine: MatchingEngine) -> None:
    new(engine, "a", SELL, "2", "100.00", coid="rest")
    new(engine, "b", SELL, "4", "100.01", coid="other")
    out = new(engine, "a", BUY, "5", "100.01", coid="in", stp=StpMode.DECREMENT)
    # the resting order is decremented to nothing, the incoming one by 2, then it trades with "other"
    assert kinds(out)[:3] == [
        ("accepted", "in", ""),
        ("cancelled", "rest", Reason.SELF_TRADE),
        ("replaced", "in", Reason.SELF_TRADE),
    ]
    assert reports(out)[2].qty == 3
    assert [(t.size, t.price) for t in trades(out)] == [(3, D("100.01"))]
    assert levels(engine) == ([], [(D("100.01"), D(1))])
    # and the other way round: a smaller incoming order is decremented away, the resting one shrinks
    new(engine, "b", BUY, "6", "99.00", coid="big")
    out = new(engine, "b", SELL, "2", "99.00", coid="small", stp=StpMode.DECREMENT)
    assert kinds(out) == [
        ("accepted", "small", ""),
        ("replaced", "big", Reason.SELF_TRADE),
        ("cancelled", "small", Reason.SELF_TRADE),
    ]
    assert levels(engine) == ([(D("99.00"), D(4))], [(D("100.01"), D(1))])


@pytest.mark.parametrize(
    ("qty", "price", "symbol", "reason"),
    [
        ("1", "100.005", "AAA", Reason.PRICE_OFF_TICK),
        ("1.5", "100.00", "AAA", Reason.QTY_NOT_LOT_MULTIPLE),
        ("0", "100.00", "AAA", Reason.QTY_NOT_POSITIVE),
        ("-3", "100.00", "AAA", Reason.QTY_NOT_POSITIVE),
        ("501", "100.00", "AAA", Reason.QTY_ABOVE_MAX),
        ("0.1", "2000", "BBB", Reason.QTY_BELOW_MIN),
        ("1", "-1", "AAA", Reason.PRICE_NOT_POSITIVE),
        ("1", "NaN", "AAA", Reason.INVALID_FIELD),
        ("1", "sNaN", "AAA", Reason.INVALID_FIELD),
        ("sNaN", "100.00", "AAA", Reason.INVALID_FIELD),
        ("1", "1E+100000", "AAA", Reason.INVALID_FIELD),
        ("1", "100.00", "NOPE", Reason.UNKNOWN_SYMBOL),
        ("1", "50", "HALT", Reason.INSTRUMENT_NOT_TRADABLE),
    ],
)
def test_bad_orders_are_rejected_with_a_reason_and_counted(
    engine: MatchingEngine, qty: str, price: str, symbol: str, reason: Reason
) -> None:
    out = new(engine, "a", BUY, qty, price, symbol=symbol)
    assert [(r.exec_type, r.reason) for r in reports(out)] == [(ExecType.REJECTED, reason)]
    assert engine.stats()[f"rejects_{reason.lower()}_total"] == 1
    assert levels(engine) == ([], [])


def test_prices_and_quantities_seen_before_are_checked_alike(engine: MatchingEngine) -> None:
    """The engine remembers prices and quantities that passed its checks; an equal decimal written
    otherwise is the same value, and a value that fails still fails after valid ones were seen."""
    new(engine, "a", BUY, "1", "100.00", coid="a1")
    new(engine, "a", BUY, "1.0", "100.0", coid="a2")
    new(engine, "a", BUY, "2", "100", coid="a3")
    assert levels(engine) == ([(D("100.00"), D(4))], [])
    for coid, qty, price, reason in [
        ("b1", "1", "sNaN", Reason.INVALID_FIELD),
        ("b2", "sNaN", "100.00", Reason.INVALID_FIELD),
        ("b3", "1", "100.005", Reason.PRICE_OFF_TICK),
        ("b4", "1.5", "100.00", Reason.QTY_NOT_LOT_MULTIPLE),
        ("b5", "501", "100", Reason.QTY_ABOVE_MAX),
    ]:
        out = new(engine, "a", BUY, qty, price, coid=coid)
        assert [(r.exec_type, r.reason) for r in reports(out)] == [(ExecType.REJECTED, reason)]
    assert levels(engine) == ([(D("100.00"), D(4))], [])


def test_cancel_all_cancels_every_open_order_of_the_account_only(engine: MatchingEngine) -> None:
    new(engine, "a", BUY, "1", "99.00", coid="a1")
    new(engine, "a", SELL, "1", "101.00", coid="a2")
    new(engine, "a", BUY, "1", "1000.0", symbol="BBB", coid="a3")
    new(engine, "b", BUY, "1", "98.00", coid="b1")
    out = engine.process(CancelAll(account="a", client_order_id="ca"), 1)
    assert kinds(out) == [
        ("accepted", "ca", ""),
        ("cancelled", "a1", Reason.CANCELLED_BY_CLIENT),
        ("cancelled", "a2", Reason.CANCELLED_BY_CLIENT),
        ("cancelled", "a3", Reason.CANCELLED_BY_CLIENT),
    ]
    assert reports(out)[0].symbol == "_all"
    assert levels(engine) == ([(D("98.00"), D(1))], [])


def test_every_output_of_a_symbol_takes_the_next_sequence_number(engine: MatchingEngine) -> None:
    outs = new(engine, "m", SELL, "1", "100.00") + new(engine, "t", BUY, "1", "100.00")
    outs += new(engine, "t", BUY, "1", "1000.0", symbol="BBB")
    assert [o.seq for o in outs if o.symbol == "AAA"] == [1, 2, 3, 4, 5]
    assert [o.seq for o in outs if o.symbol == "BBB"] == [1]
    deltas = engine.book_updates(7)
    assert {(type(d).__name__, d.symbol, d.seq) for d in deltas} >= {
        ("BookDelta", "AAA", 5),
        ("Quote", "BBB", 1),
    }
