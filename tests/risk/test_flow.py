"""Risk in front of the real engine over a real nats-server: what trading clients and operators see."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from nats.js.api import DiscardPolicy

from nexus import messages, streams, subjects
from nexus.bus import Bus
from nexus.messages import (
    AccountRisk,
    ExecReport,
    ExecType,
    KillSwitch,
    NewOrder,
    OrderType,
    Reason,
    RiskAudit,
    RiskReject,
    Side,
    TimeInForce,
    TradingState,
    now_ns,
)
from nexus.natsserver import NatsServer
from nexus.testing import wait_for
from risk.limits import AccountLimits
from risk.service import CONTROL_BUCKET
from tests.order_engine.conftest import RunningEngine, start_engine
from tests.risk.conftest import RunningRisk, client, publish_quote, start_risk

pytestmark = pytest.mark.integration

D = Decimal


def order(
    account: str, coid: str, side: Side = Side.BUY, qty: str = "1", price: str | None = "500.00", **kw: Any
) -> NewOrder:
    return NewOrder(
        account=account,
        client_order_id=coid,
        symbol=kw.pop("symbol", "SPY"),
        side=side,
        qty=D(qty),
        price=None if price is None else D(price),
        ts=now_ns(),
        **kw,
    )


async def test_an_accepted_order_is_filled_and_both_accounts_have_positions(
    risk: RunningRisk, client_bus: Bus
) -> None:
    alice, bob = await client(client_bus, "alice"), await client(client_bus, "bob")
    fills: list[ExecReport] = []
    alice.on_report = fills.append
    sell = await alice.new_order("SPY", Side.SELL, "10", price="500.00")
    assert sell.exec_type is ExecType.ACCEPTED
    buy = await bob.new_order("SPY", Side.BUY, "4", price="500.00")
    assert buy.exec_type is ExecType.ACCEPTED
    await wait_for(lambda: any(r.exec_type is ExecType.PARTIALLY_FILLED for r in fills), timeout=5)
    checker = risk.service.checker
    await wait_for(lambda: checker.accounts["bob"].holdings["SPY"].qty == 4, timeout=5)
    assert checker.accounts["alice"].holdings["SPY"].qty == -4
    assert checker.accounts["alice"].orders[sell.client_order_id].qty == 6  # still open
    async with httpx.AsyncClient(base_url=risk.runner.http_url, timeout=5) as http:
        body = (await http.get("/accounts/alice")).json()
    assert body["positions"][0]["qty"] == "-4"
    assert body["open_orders"] == 1


REJECTIONS: list[tuple[str, NewOrder]] = [
    (Reason.UNKNOWN_ACCOUNT, order("mallory", "r1")),
    (Reason.UNKNOWN_SYMBOL, order("alice", "r2", symbol="NOPE")),
    (Reason.QTY_NOT_POSITIVE, order("alice", "r3", qty="0")),
    (Reason.QTY_NOT_LOT_MULTIPLE, order("alice", "r4", qty="1.5")),
    (Reason.MAX_ORDER_QTY, order("alice", "r5", qty="101")),
    (Reason.PRICE_REQUIRED, order("alice", "r6", price=None)),
    (Reason.PRICE_NOT_POSITIVE, order("alice", "r7", price="-1")),
    (Reason.PRICE_OFF_TICK, order("alice", "r8", price="500.001")),
    (Reason.PRICE_COLLAR, order("alice", "r9", price="525.01")),
    (Reason.NO_REFERENCE_PRICE, order("alice", "r10", symbol="AAPL", price="228.50")),
    (Reason.MAX_NOTIONAL, order("mm", "r11", qty="1000", price="500.00", symbol="SPY")),
    (Reason.REDUCE_ONLY, order("alice", "r12", side=Side.SELL, reduce_only=True)),
    (Reason.MAX_POSITION, order("carol", "r13", qty="100")),  # carol has 100 open first (below)
]


async def test_each_kind_of_rejection_comes_back_with_its_reason_code(
    risk: RunningRisk, client_bus: Bus
) -> None:
    carol = await client(client_bus, "carol")
    assert (await carol.submit(order("carol", "c-first", qty="100"))).exec_type is ExecType.ACCEPTED
    risk.service.limits.update("mm", AccountLimits(max_notional=D("400000")))
    for expected, cmd in REJECTIONS:
        c = await client(client_bus, cmd.account)
        report = await c.submit(cmd)
        assert (report.exec_type, report.reason, report.client_order_id) == (
            ExecType.REJECTED,
            expected,
            cmd.client_order_id,
        ), report
        assert report.text  # says why, in words
        # the engine remembers risk's answer: asking again (a retry) returns the same reject
        assert await c.submit(cmd) == report
    # A client order id used again after the dedupe window (here: under another Nats-Msg-Id, which is
    # what the stream sees once the window has passed) is refused by risk.
    reports: list[ExecReport] = []
    carol.on_report = reports.append
    await client_bus.js.publish(
        subjects.order_entry(subjects.Tier.P1, "carol", "SPY"),
        messages.encode(order("carol", "c-first", qty="1")),
        headers={"Nats-Msg-Id": "carol:c-first:later"},
    )
    await wait_for(lambda: any(r.reason == Reason.DUPLICATE_ORDER_ID for r in reports), timeout=5)
    stats = risk.service.stats()
    assert stats["rejected_total"] == len(REJECTIONS) + 1
    assert stats["rejects_price_collar_total"] == 1


async def test_the_rate_limit_denies_at_the_configured_rate(risk: RunningRisk, client_bus: Bus) -> None:
    slow = await client(client_bus, "slow")  # 20 orders/s, burst 10
    t0 = time.monotonic()
    ioc: dict[str, Any] = {"tif": TimeInForce.IOC}
    burst = await asyncio.gather(*(slow.submit(order("slow", f"b{i}", **ioc)) for i in range(30)))
    first_burst = [r.reason or "ok" for r in burst]
    assert first_burst.count("ok") >= 10
    assert set(first_burst) <= {"ok", Reason.RATE_LIMIT}
    # paced at 40/s for 2 s: about half pass (20/s), never more than the rate allows
    results = []
    for i in range(80):
        results.append(asyncio.ensure_future(slow.submit(order("slow", f"p{i}", **ioc))))
        await asyncio.sleep(0.025)
    answers = [r.reason or "ok" for r in await asyncio.gather(*results)]
    elapsed = time.monotonic() - t0
    passed = first_burst.count("ok") + answers.count("ok")
    assert passed <= 10 + 20 * elapsed + 1
    assert answers.count("ok") >= 20  # the paced part got its share: 20/s over 2 s is ~40
    assert answers.count(Reason.RATE_LIMIT) >= 20


async def test_the_kill_switch_stops_an_account_mid_burst_and_cancels_its_resting_orders(
    risk: RunningRisk, client_bus: Bus
) -> None:
    mm, bob = await client(client_bus, "mm"), await client(client_bus, "bob")
    cancelled: list[ExecReport] = []
    mm.on_report = lambda r: cancelled.append(r) if r.exec_type is ExecType.CANCELLED else None
    sent_after_ack: list[asyncio.Task[ExecReport]] = []
    before: list[asyncio.Task[ExecReport]] = []
    acked = asyncio.Event()

    async def burst() -> None:
        for i in range(400):
            cmd = order("mm", f"k{i}", price=f"{490 + i % 10}.00")  # resting bids below the market
            task = asyncio.ensure_future(mm.submit(cmd))
            (sent_after_ack if acked.is_set() else before).append(task)
            await asyncio.sleep(0.002)

    runner = asyncio.create_task(burst())
    await wait_for(lambda: sum(t.done() for t in before) >= 50, timeout=10)
    ack: KillSwitch = await client_bus.request(
        subjects.kill_switch(),
        KillSwitch(state=TradingState.HALTED, account="mm", reason="runaway", operator="test"),
        KillSwitch,
        timeout=5,
    )
    acked.set()
    assert ack.state is TradingState.HALTED
    assert ack.ts > 0
    await runner
    after = await asyncio.gather(*sent_after_ack)
    assert after, "the burst went on after the ack"
    assert all(r.reason == Reason.TRADING_HALTED for r in after)
    accepted_before = [r for r in await asyncio.gather(*before) if r.exec_type is ExecType.ACCEPTED]
    assert len(accepted_before) >= 50
    # every order of mm that was resting is cancelled by risk, the book has none of mm's orders left
    await wait_for(lambda: len(cancelled) == len(accepted_before), timeout=10)
    assert {r.orig_client_order_id for r in cancelled} == {r.client_order_id for r in accepted_before}
    assert {r.reason for r in cancelled} == {Reason.CANCELLED_BY_RISK}
    assert (await bob.book("SPY", depth=0)).bids == ()
    # other accounts trade on; cancels of the halted account still pass
    assert (await bob.new_order("SPY", Side.BUY, "1", price="500.00")).exec_type is ExecType.ACCEPTED
    again = await mm.cancel("SPY", accepted_before[0].client_order_id)
    assert again.reason == Reason.ORDER_CLOSED  # it reached the engine, which says the order is gone
    await wait_for(lambda: risk.service.checker.accounts["mm"].orders == {}, timeout=5)


async def test_reducing_lets_only_reducing_orders_through(risk: RunningRisk, client_bus: Bus) -> None:
    alice, mm = await client(client_bus, "alice"), await client(client_bus, "mm")
    assert (await mm.new_order("SPY", Side.SELL, "10", price="500.00")).exec_type is ExecType.ACCEPTED
    assert (await alice.new_order("SPY", Side.BUY, "10", price="500.00")).exec_type is ExecType.ACCEPTED
    await wait_for(lambda: risk.service.checker.accounts["alice"].holdings["SPY"].qty == 10, timeout=5)
    async with httpx.AsyncClient(base_url=risk.runner.http_url, timeout=5) as http:
        resp = await http.post("/kill", json={"state": "reducing", "account": "alice", "cancel_open": False})
        assert resp.status_code == 200, resp.text
        assert (await http.get("/state")).json()["accounts"] == {"alice": "reducing"}
    grows = await alice.new_order("SPY", Side.BUY, "1", price="500.00")
    assert grows.reason == Reason.TRADING_REDUCING
    flips = await alice.new_order("SPY", Side.SELL, "11", price="500.00")
    assert flips.reason == Reason.TRADING_REDUCING
    assert (await mm.new_order("SPY", Side.BUY, "4", price="500.00")).exec_type is ExecType.ACCEPTED
    reduces = await alice.new_order("SPY", Side.SELL, "4", price="500.00")
    assert reduces.exec_type is ExecType.ACCEPTED
    await wait_for(lambda: risk.service.checker.accounts["alice"].holdings["SPY"].qty == 6, timeout=5)


async def test_pnl_after_a_scripted_sequence_of_fills_and_marks(risk: RunningRisk, client_bus: Bus) -> None:
    alice, mm = await client(client_bus, "alice"), await client(client_bus, "mm")
    states: list[AccountRisk] = []

    async def on_state(msg: AccountRisk) -> None:
        states.append(msg)

    await client_bus.subscribe(subjects.risk_state("alice"), AccountRisk, on_state)
    script = [  # alice's side, qty, price; mm takes the other side
        (Side.BUY, "10", "500.00"),
        (Side.BUY, "10", "510.00"),  # 20 @ 505
        (Side.SELL, "5", "520.00"),  # +75
        (Side.SELL, "20", "490.00"),  # -225, then 5 short @ 490
        (Side.BUY, "2", "485.00"),  # +10: 3 short @ 490
    ]
    for side, qty, px in script:
        await publish_quote(client_bus, "SPY", f"{D(px) - D('0.01')}", f"{D(px) + D('0.01')}")
        await wait_for(partial(_marked, risk, D(px)), timeout=5)
        maker = await mm.new_order("SPY", side.opposite, qty, price=px)
        assert maker.exec_type is ExecType.ACCEPTED, maker
        taker = await alice.new_order("SPY", side, qty, price=px)
        assert taker.exec_type is ExecType.ACCEPTED, taker
    await publish_quote(client_bus, "SPY", "479.99", "480.01")  # mark 480
    checker = risk.service.checker
    await wait_for(lambda: checker.accounts["alice"].holdings["SPY"].qty == -3, timeout=5)
    await wait_for(lambda: checker.market.marks.get("SPY") == D("480.00"), timeout=5)
    async with httpx.AsyncClient(base_url=risk.runner.http_url, timeout=5) as http:
        body = (await http.get("/accounts/alice")).json()
    by_hand_realised = 75 - 225 + 10
    by_hand_unrealised = (480 - 490) * -3
    assert body["realised_pnl"] == by_hand_realised
    assert body["unrealised_pnl"] == by_hand_unrealised
    assert body["gross_exposure"] == 3 * 480
    assert body["positions"][0]["avg_px"] == "490.00"
    # the mirror image on mm's side
    mm_risk = risk.service.account_risk("mm")
    assert mm_risk.realised_pnl == -by_hand_realised
    # the same figures go out on risk.state.alice
    await wait_for(lambda: bool(states) and states[-1].unrealised_pnl == by_hand_unrealised, timeout=5)
    assert states[-1].realised_pnl == by_hand_realised


def _marked(risk: RunningRisk, price: Decimal) -> bool:
    return risk.service.checker.market.marks.get("SPY") == price


async def test_limit_changes_over_rest_are_audited_and_survive_a_restart(
    risk: RunningRisk, client_bus: Bus, fresh_nats: NatsServer, engine: RunningEngine
) -> None:
    audits: list[RiskAudit] = []

    async def on_audit(msg: RiskAudit) -> None:
        audits.append(msg)

    await client_bus.subscribe(subjects.risk_audit(), RiskAudit, on_audit)
    alice = await client(client_bus, "alice")
    async with httpx.AsyncClient(base_url=risk.runner.http_url, timeout=5) as http:
        resp = await http.put(
            "/limits/accounts/alice",
            json={"symbol": {"SPY": {"max_order_qty": "20"}}},
            headers={"X-Operator": "ops-1"},
        )
        assert resp.status_code == 200, resp.text
        assert resp.json()["changes"] == [["symbol.SPY.max_order_qty", "", "20"]]
        bad = await http.put("/limits/accounts/alice", json={"max_open_orders": -1})
        assert bad.status_code == 422
        assert "max_open_orders" in bad.text
        assert (await http.put("/limits/accounts/alice", content=b"{nope")).status_code == 400
        for odd in ("NaN", "sNaN", "Infinity", "-1", "0"):
            bad = await http.put("/limits/accounts/alice", json={"margin_rate": odd})
            assert bad.status_code == 422, (odd, bad.status_code, bad.text)
            assert "margin_rate" in bad.text
        unknown = await http.put("/limits/accounts/alice", json={"symbol": {"NOPE": {"max_position": "1"}}})
        assert unknown.status_code == 422
        assert "NOPE" in unknown.text
        assert (await http.get("/accounts/nobody")).status_code == 404
        assert (await http.post("/kill", json={"state": "sleeping"})).status_code == 422
        # not a subject token: refused before anything is saved
        for odd, said in (("A" * 4100, "$.account"), ("bad acct", "not a valid subject token")):
            bad = await http.post("/kill", json={"state": "halted", "account": odd})
            assert bad.status_code == 422, (odd[:20], bad.status_code)
            assert said in bad.text
        assert (await http.get("/state")).json()["accounts"] == {}
        assert (await http.get("/readyz")).status_code == 200
        assert (await http.get("/limits/alice")).json()["symbol"]["SPY"]["max_order_qty"] == "20"
    await wait_for(lambda: len(audits) == 1, timeout=5)
    assert (audits[0].scope, audits[0].field, audits[0].new, audits[0].operator) == (
        "alice",
        "symbol.SPY.max_order_qty",
        "20",
        "ops-1",
    )
    assert (await alice.new_order("SPY", Side.BUY, "21", price="500.00")).reason == Reason.MAX_ORDER_QTY
    await client_bus.request(
        subjects.kill_switch(), KillSwitch(state=TradingState.HALTED, account="bob"), KillSwitch, timeout=5
    )
    # a restarted risk service keeps both the change and the halt
    assert await risk.stop() == 0
    # and drops a state saved for a name no subject can hold (an older version saved what /kill got)
    control = await client_bus.js.key_value(CONTROL_BUCKET)
    saved = msgspec.json.decode((await control.get("states")).value or b"{}")
    await control.put("states", msgspec.json.encode({**saved, "K" * 4100: "halted"}))
    again = await start_risk(fresh_nats.url)
    try:
        await publish_quote(client_bus, "SPY", "499.99", "500.01")
        await wait_for(lambda: "SPY" in again.service.checker.market.marks, timeout=5)
        assert (await alice.new_order("SPY", Side.BUY, "21", price="500.00")).reason == Reason.MAX_ORDER_QTY
        assert (await alice.new_order("SPY", Side.BUY, "20", price="500.00")).exec_type is ExecType.ACCEPTED
        bob = await client(client_bus, "bob")
        assert (await bob.new_order("SPY", Side.BUY, "1", price="500.00")).reason == Reason.TRADING_HALTED
        # and it rebuilt alice's open order from the engine's reports
        assert len(again.service.checker.accounts["alice"].orders) == 1
        # an account-wide kill goes over every account it knows: the dropped name is not one of them
        assert "K" * 4100 not in again.service.checker.accounts
        await client_bus.request(
            subjects.kill_switch(),
            KillSwitch(state=TradingState.REDUCING, cancel_open=True),
            KillSwitch,
            timeout=5,
        )
        assert again.service.bus.connected
    finally:
        assert await again.stop() == 0


async def test_bad_input_is_answered_or_counted_and_risk_goes_on(risk: RunningRisk, client_bus: Bus) -> None:
    alice = await client(client_bus, "alice")
    answers: list[ExecReport] = []
    alice.on_report = answers.append
    js = client_bus.js
    # undecodable, but the sender is known from the subject and the client order id from the JSON
    await js.publish(
        subjects.order_entry(subjects.Tier.P1, "alice", "SPY"),
        b'{"type":"new_order","client_order_id":"junk-1","qty":"x"}',
        headers={"Nats-Msg-Id": streams.command_id("alice", "junk-1")},
    )
    await js.publish(subjects.order_entry(subjects.Tier.P1, "alice", "SPY"), b"\xff not json")
    # a command for alice sent on bob's subject
    wrong = messages.encode(order("alice", "wrong-1"))
    await js.publish(subjects.order_entry(subjects.Tier.P1, "bob", "SPY"), wrong)
    await wait_for(lambda: any(r.client_order_id == "junk-1" for r in answers), timeout=5)
    junk = next(r for r in answers if r.client_order_id == "junk-1")
    assert (junk.exec_type, junk.reason) == (ExecType.REJECTED, Reason.DECODE_ERROR)
    await wait_for(lambda: risk.service.counters["decode_errors_total"] == 2, timeout=5)
    await wait_for(lambda: risk.service.counters["route_errors_total"] == 1, timeout=5)
    assert (await alice.new_order("SPY", Side.BUY, "1", price="500.00")).exec_type is ExecType.ACCEPTED
    # numbers Decimal arithmetic cannot take: refused for the field, not as a failed check
    for qty, price in [("NaN", "500.00"), ("Infinity", "500.00"), ("1e999999", "500.00"), ("1", "NaN")]:
        refused = await alice.submit(order("alice", f"odd-{qty}-{price}", qty=qty, price=price))
        assert (refused.exec_type, refused.reason) == (ExecType.REJECTED, Reason.INVALID_FIELD), (qty, price)
    assert risk.service.counters["check_errors_total"] == 0


async def test_cancels_overtake_a_burst_of_new_orders(risk: RunningRisk, client_bus: Bus) -> None:
    flood, alice = await client(client_bus, "flood"), await client(client_bus, "alice")
    resting = await alice.new_order("SPY", Side.BUY, "1", price="499.00")
    answered: list[tuple[str, float]] = []
    flood.on_report = lambda r: answered.append((r.client_order_id, time.monotonic()))
    n = 5000
    burst = [
        await client_bus.js.publish_async(
            subjects.order_entry(subjects.Tier.P1, "flood", "SPY"),
            messages.encode(order("flood", f"f{i}", price="490.00", tif=TimeInForce.GTC)),
            headers={"Nats-Msg-Id": streams.command_id("flood", f"f{i}")},
        )
        for i in range(n)
    ]
    # sent after every new order of the burst (same connection: ORD_IN stores it after them)
    cancel = await alice.cancel("SPY", resting.client_order_id)
    flood_answers_before_the_cancel = len(answered)
    assert cancel.exec_type is ExecType.CANCELLED
    assert len(await asyncio.gather(*burst)) == n
    await wait_for(lambda: len(answered) >= n, timeout=60)
    assert flood_answers_before_the_cancel < n, "the cancel waited behind the burst of new orders"


async def test_market_orders_need_an_opposite_price(risk: RunningRisk, client_bus: Bus) -> None:
    alice, mm = await client(client_bus, "alice"), await client(client_bus, "mm")
    await mm.new_order("SPY", Side.SELL, "5", price="500.00")
    report = await alice.new_order("SPY", Side.BUY, "5", order_type=OrderType.MARKET, tif=TimeInForce.IOC)
    assert report.exec_type is ExecType.ACCEPTED
    await publish_quote(client_bus, "SPY", "499.99", "0")  # no usable ask
    await wait_for(lambda: "SPY" not in risk.service.checker.market.asks, timeout=5)
    refused = await alice.new_order("SPY", Side.BUY, "1", order_type=OrderType.MARKET, tif=TimeInForce.IOC)
    assert refused.reason == Reason.NO_REFERENCE_PRICE


async def test_switching_an_engine_from_direct_entry_to_risk_runs_nothing_twice(
    fresh_nats: NatsServer, client_bus: Bus, tmp_path: Path
) -> None:
    direct = await start_engine(fresh_nats.url, tmp_path / "var")  # reads ORD_IN itself: no risk
    alice = await client(client_bus, "alice")
    first = await alice.new_order("SPY", Side.BUY, "3", price="499.00")
    assert first.exec_type is ExecType.ACCEPTED
    assert await direct.stop() == 0
    risk = await start_risk(fresh_nats.url)
    approved = await start_engine(fresh_nats.url, tmp_path / "var", engine_input="approved")
    try:
        await publish_quote(client_bus, "SPY", "499.99", "500.01")
        await wait_for(lambda: "SPY" in risk.service.checker.market.marks, timeout=5)
        assert risk.service.counters["commands_total"] == 0  # the command the engine took is not re-run
        second = await alice.new_order("SPY", Side.BUY, "2", price="499.00")
        assert second.exec_type is ExecType.ACCEPTED
        assert (await alice.book("SPY")).bids == ((D("499.00"), D(5)),)  # books carried over, once
        assert risk.service.counters["commands_total"] == 1
    finally:
        assert await approved.stop() == 0
        assert await risk.stop() == 0


async def test_the_kill_switch_cancels_an_order_approved_before_it_but_stored_after(
    risk: RunningRisk, client_bus: Bus, engine: RunningEngine
) -> None:
    """An order risk approved just before the kill whose store failed (sent again until stored) must
    not rest after the kill: the kill's cancel-all is stored behind it, so the engine cancels it too."""
    js = client_bus.js
    normal = streams.order_approved_stream()
    # one stored command per subject: risk's second decision for flood/SPY fails to store until lifted
    await js.update_stream(
        dataclasses.replace(
            normal, discard=DiscardPolicy.NEW, discard_new_per_subject=True, max_msgs_per_subject=1
        )
    )
    flood = await client(client_bus, "flood")
    assert (await flood.new_order("SPY", Side.BUY, "1", price="490.00")).exec_type is ExecType.ACCEPTED
    late = asyncio.ensure_future(flood.submit(order("flood", "late", price="491.00")))
    p1 = next(i for i in risk.service.intakes if i.tier is subjects.Tier.P1)
    await wait_for(lambda: p1.publish_failures_total >= 1, timeout=5)  # approved, not stored

    async def lift() -> None:
        await asyncio.sleep(0.5)
        await js.update_stream(normal)

    lifting = asyncio.create_task(lift())
    await client_bus.request(
        subjects.kill_switch(), KillSwitch(state=TradingState.HALTED, account="flood"), KillSwitch, timeout=15
    )
    await lifting
    assert (await late).exec_type is ExecType.ACCEPTED  # approved before the kill: the engine took it
    await wait_for(lambda: engine.service.engine.open_orders("flood") == [], timeout=5)
    await wait_for(lambda: risk.service.checker.accounts["flood"].orders == {}, timeout=5)


async def test_a_misrouted_command_does_not_take_the_id_of_the_account_it_names(
    risk: RunningRisk, client_bus: Bus
) -> None:
    """A command naming alice sent on bob's subject (no Nats-Msg-Id) is answered to bob as INVALID_FIELD;
    its decision must not be stored under alice's id, or alice's own order with that id is never answered."""
    await client_bus.js.publish(
        subjects.order_entry(subjects.Tier.P1, "bob", "SPY"), messages.encode(order("alice", "taken-1"))
    )
    await wait_for(lambda: risk.service.counters["route_errors_total"] == 1, timeout=5)
    alice = await client(client_bus, "alice")
    mine = await alice.submit(order("alice", "taken-1"))
    assert mine.exec_type is ExecType.ACCEPTED


async def test_json_nested_too_deep_is_answered_and_the_intake_goes_on(
    risk: RunningRisk, client_bus: Bus
) -> None:
    """msgspec raises RecursionError, not a DecodeError, on JSON nested a few thousand deep. Such a
    command in the stream must be answered like any undecodable one, not stop every later order."""
    alice = await client(client_bus, "alice")
    answers: list[ExecReport] = []
    alice.on_report = answers.append
    await client_bus.js.publish(subjects.order_entry(subjects.Tier.P1, "alice", "SPY"), b'{"a":' * 3000)
    after = await alice.submit(order("alice", "after-deep"))
    assert after.exec_type is ExecType.ACCEPTED
    await wait_for(lambda: any(r.reason == Reason.DECODE_ERROR for r in answers), timeout=5)
    assert risk.service.counters["decode_errors_total"] == 1


async def test_a_reused_client_order_id_sent_without_a_msg_id_is_answered(
    risk: RunningRisk, client_bus: Bus
) -> None:
    """Straight into the stream, without a Nats-Msg-Id, a second command reusing a client order id is
    stored; risk refuses it (DUPLICATE_ORDER_ID), and that answer must not be taken for the first
    command's decision and dropped."""
    alice = await client(client_bus, "alice")
    answers: list[ExecReport] = []
    alice.on_report = answers.append
    for price in ("500.00", "499.00"):
        await client_bus.js.publish(
            subjects.order_entry(subjects.Tier.P1, "alice", "SPY"),
            messages.encode(order("alice", "reused-1", price=price)),
        )
    await wait_for(lambda: len([r for r in answers if r.client_order_id == "reused-1"]) == 2, timeout=5)
    first, second = (r for r in answers if r.client_order_id == "reused-1")
    assert first.exec_type is ExecType.ACCEPTED
    assert (second.exec_type, second.reason) == (ExecType.REJECTED, Reason.DUPLICATE_ORDER_ID)


async def test_a_command_with_an_empty_symbol_is_answered_and_the_intake_goes_on(
    risk: RunningRisk, client_bus: Bus
) -> None:
    alice = await client(client_bus, "alice")
    answers: list[ExecReport] = []
    alice.on_report = answers.append
    await client_bus.js.publish(
        subjects.order_entry(subjects.Tier.P1, "alice", "SPY"),
        messages.encode(order("alice", "empty-1", symbol="")),
        headers={"Nats-Msg-Id": streams.command_id("alice", "empty-1")},
    )
    after = await alice.submit(order("alice", "after-empty"))
    assert after.exec_type is ExecType.ACCEPTED
    await wait_for(lambda: any(r.client_order_id == "empty-1" for r in answers), timeout=5)
    empty = next(r for r in answers if r.client_order_id == "empty-1")
    assert (empty.exec_type, empty.reason) == (ExecType.REJECTED, Reason.INVALID_FIELD)


async def test_a_decision_made_again_after_a_restart_defers_to_the_stored_one(
    risk: RunningRisk, client_bus: Bus
) -> None:
    # Before a restart, risk refused this order (say, out of rate tokens) and stored the refusal; the new
    # process, with full buckets, approves it. The stream keeps the refusal, the engine answers it, and
    # the order the new process booked must not linger as open.
    alice = await client(client_bus, "alice")
    answers: list[ExecReport] = []
    alice.on_report = answers.append
    cmd = order("alice", "again-1", qty="10")
    msg_id = streams.command_id("alice", "again-1")
    await client_bus.js.publish(
        subjects.order_approved(subjects.Tier.P1, "alice", "SPY"),
        messages.encode(RiskReject(command=cmd, reason=Reason.RATE_LIMIT, text="before the restart")),
        headers={"Nats-Msg-Id": msg_id},
    )
    # the engine answered that refusal and risk read its report, as a restarted risk reads every report
    # before it takes commands
    reports = risk.service.reports
    assert reports is not None
    await wait_for(lambda: reports.reports_total >= 1, timeout=5)
    await client_bus.js.publish(  # the command itself, as the client sent it: risk approves it now
        subjects.order_entry(subjects.Tier.P1, "alice", "SPY"),
        messages.encode(cmd),
        headers={"Nats-Msg-Id": msg_id},
    )
    await wait_for(lambda: risk.service.counters["reconciled_total"] == 1, timeout=5)
    assert risk.service.counters["approved_total"] == 1  # approved now, yet the stored refusal stands
    assert "again-1" not in risk.service.checker.accounts["alice"].orders
    assert risk.service.stats()["intake_p1_duplicates_total"] == 1
    assert [(r.exec_type, r.reason) for r in answers if r.client_order_id == "again-1"] == [
        (ExecType.REJECTED, Reason.RATE_LIMIT)
    ]  # one answer: the engine answered the stored refusal once
