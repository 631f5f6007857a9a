"""One sample of every public message, shared by the message and subject tests."""

from __future__ import annotations

from decimal import Decimal

from nexus import messages as m
from nexus.messages import Side, TradingState

SAMPLES: list[m.Message] = [
    m.Trade(
        venue="binance",
        symbol="BTC-USDT",
        venue_symbol="BTCUSDT",
        trade_id="123",
        price=Decimal("43123.45"),
        size=Decimal("0.0125"),
        aggressor=Side.BUY,
        seq=7,
        ts_event=1,
        ts_recv=2,
        ts_pub=3,
    ),
    m.Quote(
        venue="coinbase",
        symbol="ETH-USD",
        venue_symbol="ETH-USD",
        bid_px=Decimal("2000.10"),
        bid_sz=Decimal("1.5"),
        ask_px=None,
        ask_sz=Decimal("0"),
    ),
    m.BookSnapshot(
        venue="sim",
        symbol="AAA",
        venue_symbol="AAA",
        bids=((Decimal("10.0"), Decimal("5")),),
        asks=((Decimal("10.5"), Decimal("3")), (Decimal("11"), Decimal("1"))),
        seq=100,
    ),
    m.BookDelta(
        venue="sim", symbol="AAA", venue_symbol="AAA", bids=((Decimal("10.0"), Decimal("0")),), seq=101
    ),
    m.FeedStatus(feed="binance-main", venue="binance", state="connected", health=0.93, active="primary"),
    m.NewOrder(
        account="acc-1",
        client_order_id="c1",
        symbol="AAA",
        side=Side.SELL,
        qty=Decimal("3"),
        price=Decimal("10.5"),
    ),
    m.CancelOrder(account="acc-1", client_order_id="c2", symbol="AAA", orig_client_order_id="c1"),
    m.ReplaceOrder(
        account="acc-1", client_order_id="c3", symbol="AAA", orig_client_order_id="c1", qty=Decimal("2")
    ),
    m.CancelAll(account="acc-1", client_order_id="c4"),
    m.ExecReport(
        account="acc-1",
        client_order_id="c1",
        exec_type=m.ExecType.PARTIALLY_FILLED,
        symbol="AAA",
        side=Side.SELL,
        price=Decimal("10.5"),
        qty=Decimal("3"),
        last_qty=Decimal("1"),
        last_px=Decimal("10.5"),
        cum_qty=Decimal("1"),
        leaves_qty=Decimal("2"),
        avg_px=Decimal("10.5"),
    ),
    m.Heartbeat(
        service="risk", instance="1", seq=1, ts=5, started=1, pid=42, state="ready", stats={"x_total": 3.0}
    ),
    m.Alert(
        name="SERVICE_DOWN", severity="critical", state="raised", source="risk.1", text="no heartbeat for 3s"
    ),
    m.ErrorReply(code="DECODE_ERROR", reason="expected an object"),
    m.KillSwitch(state=TradingState.HALTED, account="acc-1", reason="runaway"),
    m.AccountRisk(
        account="acc-1",
        state=TradingState.ACTIVE,
        positions=(m.Position(symbol="AAA", qty=Decimal("-2"), avg_px=Decimal("10.5")),),
    ),
    m.RiskAudit(scope="account:acc-1", field="max_order_qty", old="10", new="20", operator="ops"),
    m.PortfolioTarget(
        portfolio="main",
        objective="max_sharpe",
        symbols=("A", "B"),
        weights=(0.4, 0.6),
        exp_return=0.1,
        volatility=0.2,
        sharpe=0.5,
    ),
    m.OptimizeRequest(
        objective=m.Objective.MAX_SHARPE,
        symbols=("A", "B"),
        mu=(0.08, 0.12),
        cov=((0.04, 0.01), (0.01, 0.09)),
        risk_free=0.02,
        upper=0.7,
    ),
]
