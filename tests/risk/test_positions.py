"""Positions and P&L from fills, checked against a computation by hand."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from nexus.messages import ExecReport, ExecType, OrderType, Side
from risk.positions import Account, Market

D = Decimal


def report(coid: str, side: Side, qty: str, px: str, *, leaves: str = "0", symbol: str = "SPY") -> ExecReport:
    return ExecReport(
        account="alice",
        client_order_id=coid,
        exec_type=ExecType.FILLED if leaves == "0" else ExecType.PARTIALLY_FILLED,
        symbol=symbol,
        side=side,
        price=D(px),
        qty=D(qty) + D(leaves),
        last_qty=D(qty),
        last_px=D(px),
        leaves_qty=D(leaves),
    )


def test_average_cost_pnl_through_a_scripted_sequence() -> None:
    acct, market = Account("alice"), Market()
    steps = [
        # (side, qty, price) -> position, average price, realised so far (by hand)
        ((Side.BUY, "10", "100"), ("10", "100", "0")),
        ((Side.BUY, "10", "110"), ("20", "105", "0")),  # (10x100 + 10x110) / 20
        ((Side.SELL, "5", "120"), ("15", "105", "75")),  # (120-105) x 5
        ((Side.SELL, "20", "90"), ("-5", "90", "-150")),  # closes 15: (90-105) x 15 = -225; 5 short at 90
        ((Side.BUY, "2", "85"), ("-3", "90", "-140")),  # (90-85) x 2 = +10
    ]
    for i, ((side, qty, px), (pos, avg, realised)) in enumerate(steps):
        acct.on_report(report(f"c{i}", side, qty, px))
        h = acct.holdings["SPY"]
        assert (h.qty, h.avg_px, acct.realised_today) == (D(pos), D(avg), D(realised))
    market.mark("SPY", D("80"))
    snap = acct.snapshot(market)
    assert snap.unrealised_pnl == 30.0  # (80 - 90) x -3
    assert snap.realised_pnl == -140.0
    assert snap.gross_exposure == 240.0  # |-3| x 80
    assert snap.positions[0].qty == D(-3)
    acct.on_report(report("c9", Side.BUY, "3", "95"))  # (90-95) x 3 = -15: flat
    snap = acct.snapshot(market)
    assert (snap.realised_pnl, snap.unrealised_pnl, snap.gross_exposure) == (-155.0, 0.0, 0.0)


def test_open_orders_follow_the_engine_reports() -> None:
    acct, market = Account("alice"), Market()
    market.mark("SPY", D("100"))
    acct.add_order("a", "SPY", Side.BUY, D(10), D(100), reduce_only=False)
    acct.add_order("b", "SPY", Side.SELL, D(4), D(101), reduce_only=False)
    acct.refresh(market)
    assert (acct.gross, acct.net_long, acct.net_short) == (D(1000), D(1000), D(-400))
    acct.on_report(report("a", Side.BUY, "3", "100", leaves="7"))  # partial fill: 3 long, 7 open
    assert acct.orders["a"].qty == 7
    assert acct.gross == D(1000)  # worst case unchanged: 3 + 7 = 10 long
    acct.on_report(
        ExecReport(
            account="alice", client_order_id="x", orig_client_order_id="a", exec_type=ExecType.REPLACED,
            symbol="SPY", side=Side.BUY, price=D(99), leaves_qty=D(2),
        )
    )  # fmt: skip
    assert acct.orders["a"].qty == 2
    assert acct.gross == D(500)  # 3 + 2 = 5 long x 100
    acct.on_report(
        ExecReport(
            account="alice", client_order_id="y", orig_client_order_id="b", exec_type=ExecType.CANCELLED,
            symbol="SPY", side=Side.SELL, leaves_qty=D(0),
        )
    )  # fmt: skip
    assert set(acct.orders) == {"a"}
    assert acct.net_short == D(300)  # position 3, nothing open to sell
    market.mark("SPY", D("110"))
    acct.refresh(market)
    assert (acct.gross, acct.unrealised) == (D(550), D(30))


def test_a_new_trading_day_starts_realised_pnl_at_zero() -> None:
    acct = Account("alice")
    day1 = 1_700_000_000 * 10**9
    r = report("a", Side.BUY, "1", "100")
    acct.on_report(r)
    acct.on_report(
        ExecReport(
            account="alice", client_order_id="b", exec_type=ExecType.FILLED, symbol="SPY", side=Side.SELL,
            last_qty=D(1), last_px=D(90), leaves_qty=D(0), ts_event=day1,
        )
    )  # fmt: skip
    assert acct.realised_today == D(-10)
    acct.roll_day(day1 + 86_400 * 10**9)
    assert acct.realised_today == 0
    assert acct.realised_total == D(-10)


# -- risk's open orders against the engine's own truth ------------------------------------------------
# The real matching engine answers each command risk decided (approved: the engine runs it; refused: the
# engine's reject, as for a RiskReject), and every report it makes is fed back to risk, as over NATS.


class Desk:
    def __init__(self) -> None:
        from nexus.instruments import load_instruments
        from order_engine.engine import MatchingEngine
        from risk.checks import Checker
        from risk.limits import load_limits
        from tests.risk.conftest import LIMITS

        instruments = load_instruments()
        self.checker = Checker(load_limits(LIMITS, instruments))
        self.checker.market.quote("SPY", D("499.99"), D("500.01"))
        self.engine = MatchingEngine(instruments)
        self.ts = 1_700_000_000 * 10**9

    def send(self, cmd: Any) -> list[ExecReport]:
        from nexus.messages import NewOrder, ReplaceOrder

        if type(cmd) is NewOrder:
            verdict = self.checker.check_new(cmd, 0.0)
        elif type(cmd) is ReplaceOrder:
            verdict = self.checker.check_replace(cmd, 0.0)
        else:
            verdict = self.checker.check_cancel(cmd)
        self.ts += 1
        outs = (
            self.engine.process(cmd, self.ts)
            if verdict is None
            else self.engine.reject(cmd, *verdict, self.ts)
        )
        reports = [o for o in outs if isinstance(o, ExecReport)]
        for r in reports:
            self.checker.account(r.account).on_report(r)
        return reports

    def risk_open(self, account: str) -> dict[str, Decimal]:
        acct = self.checker.account(account)
        return {coid: o.qty for coid, o in acct.orders.items()}

    def engine_open(self, account: str) -> dict[str, Decimal]:
        st = self.engine.syms["SPY"]
        return {o.coid: st.qty(o.leaves) for o in self.engine.open_orders(account)}

    def open_buy_sell(self, account: str) -> tuple[Decimal, Decimal]:
        h = self.checker.account(account).holdings["SPY"]
        return h.open_buy, h.open_sell


def _new(coid: str, side: Side, qty: str, px: str | None = "500.00", **kw: Any) -> Any:
    from nexus.messages import NewOrder

    return NewOrder(
        account=kw.pop("account", "alice"), client_order_id=coid, symbol="SPY", side=side, qty=D(qty),
        price=None if px is None else D(px), **kw,
    )  # fmt: skip


def test_a_self_trade_decrement_shrinks_the_resting_order_in_risk_too() -> None:
    from nexus.messages import StpMode

    desk = Desk()
    desk.send(_new("s", Side.SELL, "10"))
    reports = desk.send(_new("b", Side.BUY, "4", stp=StpMode.DECREMENT))
    assert any(r.exec_type is ExecType.REPLACED and r.client_order_id == "s" for r in reports)
    assert desk.engine_open("alice") == {"s": D(6)}
    assert desk.risk_open("alice") == desk.engine_open("alice")
    assert desk.open_buy_sell("alice") == (D(0), D(6))


def test_a_refused_duplicate_id_does_not_close_the_live_order_it_duplicates() -> None:
    desk = Desk()
    desk.send(_new("a", Side.BUY, "10"))
    (reject,) = desk.send(_new("a", Side.BUY, "20"))  # refused by risk: the engine answers REJECTED
    assert reject.exec_type is ExecType.REJECTED
    assert reject.reason == "DUPLICATE_ORDER_ID"
    assert desk.engine_open("alice") == {"a": D(10)}
    assert desk.risk_open("alice") == desk.engine_open("alice")
    assert desk.open_buy_sell("alice") == (D(10), D(0))


def test_an_approved_order_the_engine_refuses_as_a_duplicate_is_dropped() -> None:
    from nexus.messages import CancelOrder

    desk = Desk()
    desk.send(_new("a", Side.BUY, "10"))
    desk.send(CancelOrder(account="alice", client_order_id="x", symbol="SPY", orig_client_order_id="a"))
    (reject,) = desk.send(_new("x", Side.BUY, "10"))  # risk does not know cancel ids; the engine does
    assert reject.reason == "DUPLICATE_ORDER_ID"
    assert desk.risk_open("alice") == desk.engine_open("alice") == {}


def test_open_orders_match_the_engine_through_fills_replaces_stp_ioc_and_cancel_all() -> None:
    from nexus.messages import CancelAll, ReplaceOrder, StpMode, TimeInForce

    desk = Desk()
    desk.send(_new("s1", Side.SELL, "10", "501.00"))
    desk.send(_new("s2", Side.SELL, "10", "502.00"))
    desk.send(_new("b1", Side.BUY, "5", "501.00", account="bob"))  # s1 partly filled
    desk.send(_new("b2", Side.BUY, "20", "502.00", tif=TimeInForce.IOC, account="bob"))  # IOC remainder
    desk.send(_new("s3", Side.SELL, "8", "503.00"))
    desk.send(_new("b3", Side.BUY, "3", "503.00", stp=StpMode.DECREMENT))  # s3 decremented to 5
    desk.send(ReplaceOrder(account="alice", client_order_id="r1", symbol="SPY", orig_client_order_id="s3",
                           qty=D("9")))  # fmt: skip
    desk.send(_new("b4", Side.BUY, "2", None, order_type=OrderType.MARKET, account="bob"))
    for account in ("alice", "bob"):
        assert desk.risk_open(account) == desk.engine_open(account), account
    desk.send(CancelAll(account="alice", client_order_id="ca"))
    assert desk.risk_open("alice") == desk.engine_open("alice") == {}
    assert desk.open_buy_sell("alice") == (D(0), D(0))


def test_a_replace_quantity_is_the_whole_order_so_a_partly_filled_order_shrinks() -> None:
    from nexus.messages import ReplaceOrder, TradingState

    desk = Desk()
    desk.send(_new("r", Side.BUY, "10"))
    desk.send(_new("s", Side.SELL, "6", account="bob"))  # r: 6 filled, 4 open
    assert desk.risk_open("alice") == {"r": D(4)}
    desk.checker.account("alice").state = TradingState.REDUCING
    # qty 8 of which 6 are filled: 2 left open, less than the 4 open now (the engine's reading)
    (replaced,) = desk.send(
        ReplaceOrder(account="alice", client_order_id="x", symbol="SPY", orig_client_order_id="r", qty=D(8))
    )
    assert replaced.exec_type is ExecType.REPLACED, replaced.reason
    assert desk.risk_open("alice") == desk.engine_open("alice") == {"r": D(2)}
    # qty 11: 5 open, more than now: refused while reducing
    (refused,) = desk.send(
        ReplaceOrder(account="alice", client_order_id="y", symbol="SPY", orig_client_order_id="r", qty=D(11))
    )
    assert refused.reason == "TRADING_REDUCING"


def test_a_mark_is_a_positive_price() -> None:
    market = Market()
    market.mark("SPY", D("0"))
    market.mark("TST", D("-1"))
    assert market.marks == {}
    assert market.version == 0
    market.mark("SPY", D("500"))
    assert market.marks == {"SPY": D("500")}
