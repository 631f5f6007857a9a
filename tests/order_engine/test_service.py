"""The engine as a service over a real nats-server: order entry (client, request/reply, REST), outputs on
their subjects, queries, book requests, and bad input answered with reasons, never a crash."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from nats.js.api import StreamConfig

from nexus import messages as m
from nexus import subjects
from nexus.bus import MSG_ID, Bus
from nexus.client import OrderClient
from nexus.errors import RemoteError
from nexus.messages import ExecType, Reason, Side
from nexus.natsserver import NatsServer
from nexus.runtime import Runner
from nexus.settings import load_settings
from nexus.streams import command_id
from nexus.subjects import Tier
from nexus.testing import wait_for
from order_engine.outputs import EXPECTED_LAST_SEQ
from order_engine.service import OrderEngine, OrderEngineSettings
from tests.order_engine.conftest import RunningEngine, start_engine

pytestmark = pytest.mark.integration
D = Decimal


async def collect(bus: Bus, subject: str, kind: object) -> list[object]:
    got: list[object] = []

    async def on_msg(msg: object) -> None:
        got.append(msg)

    await bus.subscribe(subject, kind, on_msg)
    await bus.flush()
    return got


async def test_orders_trade_and_every_output_reaches_its_subject(
    engine: RunningEngine, client_bus: Bus, alice: OrderClient, bob: OrderClient
) -> None:
    trades = await collect(client_bus, subjects.trade("nexus", "AAPL"), m.Trade)
    book = await collect(client_bus, subjects.book("nexus", "AAPL"), m.MarketDataMsg)
    quotes = await collect(client_bus, subjects.quote("nexus", "AAPL"), m.Quote)
    bobs: list[m.ExecReport] = []
    bob.on_report = bobs.append

    ask = await alice.new_order("AAPL", Side.SELL, "10", "228.50")
    assert ask.exec_type is ExecType.ACCEPTED
    assert ask.ts_cmd > 0
    assert ask.ts_event >= ask.ts_cmd
    bid = await bob.new_order("AAPL", Side.BUY, "4", "228.50")
    assert bid.exec_type is ExecType.ACCEPTED

    await wait_for(lambda: len(trades) == 1 and any(r.exec_type is ExecType.FILLED for r in bobs), timeout=5)
    trade = trades[0]
    assert isinstance(trade, m.Trade)
    assert (trade.price, trade.size, trade.aggressor, trade.venue) == (D("228.50"), 4, Side.BUY, "nexus")
    fill = next(r for r in bobs if r.exec_type is ExecType.FILLED)
    assert (fill.last_qty, fill.cum_qty, fill.leaves_qty, fill.avg_px) == (4, 4, 0, D("228.50"))
    assert fill.trade_id == trade.trade_id
    await wait_for(lambda: any(isinstance(b, m.BookDelta) and b.seq >= trade.seq for b in book), timeout=5)
    await wait_for(lambda: any(q.ask_sz == 6 for q in quotes), timeout=5)  # type: ignore[attr-defined]

    snap = await alice.book("AAPL", depth=5)
    assert (snap.bids, snap.asks) == ((), ((D("228.50"), D(6)),))
    latest = await alice.query(ask.client_order_id, "AAPL", latest=True)
    assert (latest.exec_type, latest.cum_qty, latest.leaves_qty) == (ExecType.PARTIALLY_FILLED, 4, 6)

    cancelled = await alice.cancel("AAPL", ask.client_order_id)
    assert (cancelled.exec_type, cancelled.orig_client_order_id) == (ExecType.CANCELLED, ask.client_order_id)
    assert (await alice.book("AAPL")).asks == ()
    stats = engine.runner.all_stats()
    assert stats["trades_total"] == 1
    assert stats["commands_total"] == 3
    assert stats["input_queue_depth"] == 0


async def test_request_reply_and_rest_order_entry(engine: RunningEngine, client_bus: Bus) -> None:
    order = m.NewOrder(
        account="carol", client_order_id="rr-1", symbol="MSFT", side=Side.BUY, qty=D(3), price=D(400)
    )
    report = await client_bus.request(subjects.order_request("carol"), order, m.ExecReport, timeout=10)
    assert (report.exec_type, report.client_order_id) == (ExecType.ACCEPTED, "rr-1")
    with pytest.raises(RemoteError) as err:
        await client_bus.request(subjects.order_request("mallory"), order, m.ExecReport, timeout=10)
    assert err.value.code == "INVALID_FIELD"
    no_symbol = msgspec.structs.replace(order, client_order_id="rr-2", symbol="")
    with pytest.raises(RemoteError) as err:  # no subject to send it on
        await client_bus.request(subjects.order_request("carol"), no_symbol, m.ExecReport, timeout=10)
    assert err.value.code == "INVALID_FIELD"
    for raw in (b'{"a":' * 3000, b"\xff"):  # nested deeper than msgspec follows; not JSON
        reply = await client_bus.nc.request(subjects.order_request("carol"), raw, timeout=10)
        assert msgspec.json.decode(reply.data)["code"] == "DECODE_ERROR"

    async with httpx.AsyncClient(base_url=engine.runner.http_url, timeout=10) as http:
        body = m.encode(
            m.NewOrder(
                account="dave",
                client_order_id="rest-1",
                symbol="MSFT",
                side=Side.SELL,
                qty=D(1),
                price=D("399.99"),
            )
        )
        r = await http.post("/orders", content=body)
        assert r.status_code == 200, r.text
        assert r.json()["exec_type"] == "accepted"
        r = await http.get("/book/MSFT", params={"depth": 3})
        assert r.json()["bids"] == [["400.00", "2"]]
        r = await http.get("/orders/dave/rest-1", params={"symbol": "MSFT", "latest": "true"})
        assert r.json()["exec_type"] == "filled"
        r = await http.get("/orders/carol")
        assert [o["client_order_id"] for o in r.json()] == ["rr-1"]
        cancel_all = m.encode(m.CancelAll(account="carol", client_order_id="ca-1"))
        r = await http.post("/orders/cancel-all", content=cancel_all)
        assert (r.json()["exec_type"], r.json()["symbol"]) == ("accepted", "_all")
        r = await http.post("/orders", content=b'{"type":"new_order","account":"carol"}')
        assert r.status_code == 422
        # names that cannot be subject tokens, and ids too long for a header: 422, nothing sent
        good = {"type": "new_order", "account": "dave", "client_order_id": "x", "symbol": "MSFT"}
        good |= {"side": "buy", "qty": "1", "price": "1"}
        for field, odd, said in [
            ("symbol", "A" * 5000, "$.symbol"),  # over nats-server's protocol line: the connection closes
            ("account", "A" * 4100, "$.account"),
            ("account", "bad acct", "not a valid subject token"),
            ("account", "", "not a valid subject token"),
            ("client_order_id", "c" * 70_000, "$.client_order_id"),
            ("client_order_id", "two\r\nlines", "visible ASCII"),  # it goes into a header
        ]:
            r = await http.post("/orders", json={**good, field: odd})
            assert r.status_code == 422, (field, odd[:20], r.status_code)
            assert said in r.text
        for path in (
            "/orders/bad%20acct/x",
            "/orders/" + "A" * 4100 + "/x",
            "/orders/bad%20acct",
            "/book/" + "A" * 100,
            "/book/MSFT?depth=-1",
        ):
            r = await http.get(path)
            assert r.status_code == 422, (path[:30], r.status_code)
        assert (await http.get("/readyz")).status_code == 200
        r = await http.get("/orders/carol/nope", params={"symbol": "MSFT"})
        assert r.status_code == 404
        r = await http.get("/book/NOPE")
        assert r.status_code == 404


async def test_bad_input_is_rejected_with_a_reason_and_counted(
    engine: RunningEngine, client_bus: Bus, alice: OrderClient
) -> None:
    reports: list[m.ExecReport] = []
    alice.on_report = reports.append
    cases = [
        ("NOPE", "1", "1", Reason.UNKNOWN_SYMBOL),
        ("AAPL", "1", "228.505", Reason.PRICE_OFF_TICK),
        ("AAPL", "1.5", "228.50", Reason.QTY_NOT_LOT_MULTIPLE),
        ("AAPL", "0", "228.50", Reason.QTY_NOT_POSITIVE),
        ("AAPL", "-2", "228.50", Reason.QTY_NOT_POSITIVE),
    ]
    for symbol, qty, price, reason in cases:
        r = await alice.new_order(symbol, Side.BUY, qty, price)
        assert (r.exec_type, r.reason) == (ExecType.REJECTED, reason)
    r = await alice.cancel("AAPL", "no-such-order")
    assert (r.exec_type, r.reason) == (ExecType.REJECTED, Reason.UNKNOWN_ORDER)

    # bytes that are not a command, sent straight into the order-entry stream
    dead: list[bytes] = []

    async def on_dead(msg: object) -> None:
        dead.append(msg.data)  # type: ignore[attr-defined]

    await client_bus.subscribe_raw(subjects.dead_letter("order-engine"), on_dead)
    for i, raw in enumerate(
        [b"{not json", b'{"type":"new_order","client_order_id":"x1"}', b'{"type":"bogus"}']
    ):
        await client_bus.js.publish(
            subjects.order_entry(Tier.P1, "alice", "AAPL"), raw, headers={"Nats-Msg-Id": f"alice:raw{i}"}
        )
    # a command on someone else's subject
    await client_bus.publish_durable(
        m.NewOrder(account="bob", client_order_id="imp", symbol="AAPL", side=Side.BUY, qty=D(1), price=D(1)),
        "alice:imp",
        subjects.order_entry(Tier.P1, "alice", "AAPL"),
    )
    await wait_for(lambda: sum(r.reason == Reason.DECODE_ERROR for r in reports) == 3, timeout=5)
    await wait_for(lambda: any(r.client_order_id == "imp" for r in reports), timeout=5)
    assert next(r for r in reports if r.client_order_id == "imp").reason == Reason.INVALID_FIELD
    assert any(r.client_order_id == "x1" for r in reports)  # the id is recovered for the reject when present
    await wait_for(lambda: len(dead) == 3, timeout=5)
    stats = engine.runner.all_stats()
    assert stats["decode_errors_total"] == 3
    assert stats["rejects_decode_error_total"] == 3
    assert stats["rejects_price_off_tick_total"] == 1
    assert stats["rejects_unknown_order_total"] == 1
    assert engine.runner.readiness() == (True, "")
    # and it still trades
    assert (await alice.new_order("AAPL", Side.BUY, "1", "228.50")).exec_type is ExecType.ACCEPTED


async def test_an_engine_that_cannot_create_its_streams_waits_not_ready_and_says_why(
    fresh_nats: NatsServer, tmp_path: Path, client_bus: Bus
) -> None:
    # Another stream already captures part of ord.in.>: ORD_IN cannot be created.
    blocker = StreamConfig(name="BLOCKER", subjects=[subjects.order_entry(Tier.P1, "someone", ">")])
    await client_bus.ensure_stream(blocker)
    settings = load_settings(
        OrderEngineSettings, {}, nats_url=[fresh_nats.url], instance="blocked", data_dir=str(tmp_path)
    )
    runner = Runner(OrderEngine, settings)
    task = asyncio.create_task(runner.run(install_signals=False))
    try:
        await wait_for(lambda: "cannot set up the order streams" in runner.readiness()[1], timeout=10)
        assert runner.state == "ready"  # up, heartbeating, answering /readyz with the reason
        await client_bus.js.delete_stream("BLOCKER")
        await wait_for(lambda: runner.readiness()[0], timeout=20)
        client = OrderClient(client_bus, "alice", timeout=10)
        assert (await client.new_order("AAPL", Side.BUY, "1", "1.00")).exec_type is ExecType.ACCEPTED
    finally:
        runner.request_stop()
        assert await asyncio.wait_for(task, 30) == 0


async def test_a_batch_is_on_the_socket_before_the_next_batch_is_applied(
    fresh_nats: NatsServer, tmp_path: Path, client_bus: Bus
) -> None:
    """The engine applies batch k+1 while the server stores batch k's outputs. So when batch k+1's first
    command is applied, batch k's outputs must have been written to the socket, not left in nats-py's
    buffer for the store task's first turn (which would come only when the engine's loop next waits).
    And batch k+1's outputs go out without waiting for batch k's to be confirmed."""
    running = await start_engine(fresh_nats.url, tmp_path / "var", engine_batch=20)
    try:
        service = running.service
        transport: Any = service.bus.nc._transport
        writelines = transport.writelines
        written = produced = 0
        behind: list[int] = []
        """Outputs produced but not yet written, at the first command of each batch."""
        queued: list[int] = []
        """Commands waiting behind each batch when it began."""
        in_flight: list[int] = []
        """Earlier batches whose outputs were not yet confirmed stored, when each batch began."""

        def counting_writelines(chunks: list[bytes]) -> None:
            nonlocal written
            written += sum(chunk.count(EXPECTED_LAST_SEQ.encode()) for chunk in chunks)
            writelines(chunks)

        engine = service.engine
        process = engine.process
        batch_seen = -1

        def counting_process(cmd: Any, ts: int, **options: Any) -> list[Any]:
            nonlocal produced, batch_seen
            if service.counters["batches_total"] != batch_seen:
                batch_seen = service.counters["batches_total"]
                behind.append(produced - written)
                queued.append(len(service.intake.queue))
                in_flight.append(sum(1 for store in service._stores if not store.done()))
            out = process(cmd, ts, **options)
            produced += len(out)
            return out

        transport.writelines = counting_writelines
        engine.process = counting_process  # type: ignore[method-assign]
        nc = client_bus.nc
        n = 200
        for i in range(n):
            cmd = m.NewOrder(
                account="erin",
                client_order_id=f"b-{i}",
                symbol="AAPL",
                side=Side.BUY if i % 2 else Side.SELL,
                qty=D(1),
                price=D("228.50"),
            )
            await nc.publish(
                subjects.subject_for(cmd),
                m.encode(cmd),
                headers={MSG_ID: command_id("erin", cmd.client_order_id)},
            )
        await nc.flush()
        time.sleep(0.5)  # hold the loop the engine shares: the deliveries pile up, batches go back to back
        await wait_for(lambda: engine.commands_total == n, timeout=20)
        assert len(behind) >= n // 20
        assert sum(1 for q in queued if q > 0) >= 3  # batches did go back to back
        assert behind == [0] * len(behind)
        assert max(in_flight) >= 2  # a batch's outputs went out before the one before was confirmed
        await wait_for(lambda: service.publisher.published_total == produced, timeout=20)
    finally:
        assert await running.stop() == 0
