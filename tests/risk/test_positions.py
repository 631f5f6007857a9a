"""Positions and P&L from fills, checked against a computation by hand."""

from __future__ import annotations

from decimal import Decimal

from nexus.messages import ExecReport, ExecType, Side
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
