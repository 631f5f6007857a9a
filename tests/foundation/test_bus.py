"""The bus over a real nats-server: typed pub/sub, queue groups, tiers, bad bytes, requests, JetStream."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import msgspec
import nats.js.errors
import pytest
from nats.js.api import StreamConfig

from nexus import messages as m
from nexus import subjects
from nexus.bus import Bus
from nexus.errors import BusError, RemoteError
from nexus.natsserver import NatsServer
from nexus.subjects import Tier
from nexus.testing import wait_for

pytestmark = pytest.mark.integration


def trade(venue: str, n: int, symbol: str = "AAA") -> m.Trade:
    return m.Trade(
        venue=venue,
        symbol=symbol,
        venue_symbol=symbol,
        trade_id=str(n),
        price=Decimal("10.5"),
        size=Decimal(n),
    )


def quote(venue: str, symbol: str = "AAA") -> m.Quote:
    return m.Quote(
        venue=venue,
        symbol=symbol,
        venue_symbol=symbol,
        bid_px=Decimal(10),
        bid_sz=Decimal(1),
        ask_px=Decimal(11),
        ask_sz=Decimal(1),
    )


async def connected(url: str, name: str) -> Bus:
    b = Bus([url], name=name)
    await b.connect(give_up_after=5)
    return b


async def test_typed_publish_and_subscribe(bus: Bus, uid: str) -> None:
    got: list[m.Trade] = []

    async def on_trade(t: m.Trade) -> None:
        got.append(t)

    await bus.subscribe(subjects.trade(uid, "*"), m.Trade, on_trade)
    await bus.publish(trade(uid, 1))
    await wait_for(lambda: len(got) == 1)
    assert got[0] == trade(uid, 1)


async def test_two_members_of_a_queue_group_share_messages(nats_url: str, uid: str) -> None:
    a, b, pub = [await connected(nats_url, f"{uid}-{i}") for i in "abp"]
    seen: dict[str, list[str]] = {"a": [], "b": []}
    for name, member in (("a", a), ("b", b)):

        async def on_trade(t: m.Trade, name: str = name) -> None:
            seen[name].append(t.trade_id)

        await member.subscribe(
            subjects.trade(uid, "*"), m.Trade, on_trade, queue=subjects.queue_group("t", Tier.P0)
        )
    await a.flush()
    await b.flush()
    for n in range(200):
        await pub.publish(trade(uid, n))
    await wait_for(lambda: len(seen["a"]) + len(seen["b"]) == 200)
    assert seen["a"], "both members must receive a share"
    assert seen["b"], "both members must receive a share"
    assert sorted(seen["a"] + seen["b"], key=int) == [str(n) for n in range(200)], "each message exactly once"
    for x in (a, b, pub):
        await x.close()


async def test_a_p0_subscriber_never_sees_p1_traffic(bus: Bus, uid: str) -> None:
    p0: list[object] = []
    everything: list[object] = []

    async def on_p0(msg: object) -> None:
        p0.append(msg)

    async def on_any(msg: object) -> None:
        everything.append(msg)

    await bus.subscribe(
        f"{subjects.market_data(Tier.P0)[:-1]}*.{uid}.*", m.MarketDataMsg, on_p0, tier=Tier.P0
    )
    await bus.subscribe(subjects.market_data(), m.MarketDataMsg, on_any)
    for n in range(50):
        await bus.publish(quote(uid))
        await bus.publish(trade(uid, n))
    await wait_for(lambda: len([x for x in everything if getattr(x, "venue", "") == uid]) == 100)
    assert len(p0) == 50
    assert all(isinstance(x, m.Trade) for x in p0)


async def test_garbage_bytes_are_counted_logged_dead_lettered_and_survived(
    bus: Bus, nats_url: str, uid: str
) -> None:
    got: list[m.Trade] = []
    dead: list[bytes] = []

    async def on_trade(t: m.Trade) -> None:
        got.append(t)

    async def on_dead(msg: object) -> None:
        dead.append(msg.data)  # type: ignore[attr-defined]

    sender = await connected(nats_url, f"{uid}-sender")
    try:
        await sender.subscribe_raw(subjects.dead_letter(bus.service), on_dead)
        await bus.subscribe(subjects.trade(uid, "*"), m.Trade, on_trade)
        await sender.flush()
        await bus.flush()  # both subscriptions are in place before anything is sent
        subject = subjects.trade(uid, "AAA")
        await sender.publish_raw(subject, b"\x00\xffnot json")
        await sender.publish_raw(subject, b'{"type":"trade","venue":"x"}')
        await sender.publish(trade(uid, 7))
        await wait_for(lambda: len(got) == 1 and len(dead) == 2)
        assert bus.stats.decode_errors_total == 2
        assert got[0].trade_id == "7", "the subscriber keeps going after bad input"
        assert "not json" in bus.stats.decode_samples[0]
        assert dead[0] == b"\x00\xffnot json"
    finally:
        await sender.close()


async def test_a_failing_handler_is_counted_and_the_subscription_survives(bus: Bus, uid: str) -> None:
    got: list[str] = []

    async def fragile(t: m.Trade) -> None:
        if t.trade_id == "1":
            raise RuntimeError("boom")
        got.append(t.trade_id)

    await bus.subscribe(subjects.trade(uid, "*"), m.Trade, fragile)
    for n in (1, 2):
        await bus.publish(trade(uid, n))
    await wait_for(lambda: got == ["2"])
    assert bus.stats.handler_errors_total == 1


async def test_request_reply_with_typed_errors(bus: Bus, uid: str) -> None:
    async def answer(cmd: m.NewOrder) -> m.Message:
        if cmd.qty <= 0:
            return m.ErrorReply(code="QTY_NOT_POSITIVE", reason="qty must be > 0")
        return m.ExecReport(
            account=cmd.account,
            client_order_id=cmd.client_order_id,
            exec_type=m.ExecType.ACCEPTED,
            symbol=cmd.symbol,
        )

    subject = subjects.order_query(uid)
    await bus.serve(subject, m.NewOrder, answer)
    order = m.NewOrder(account=uid, client_order_id="c1", symbol="AAA", side=m.Side.BUY, qty=Decimal(1))
    report = await bus.request(subject, order, m.ExecReport)
    assert report.exec_type is m.ExecType.ACCEPTED
    with pytest.raises(RemoteError) as info:
        await bus.request(subject, msgspec.structs.replace(order, qty=Decimal(0)), m.ExecReport)
    assert info.value.code == "QTY_NOT_POSITIVE"
    with pytest.raises(RemoteError) as info:
        await bus.request(subject, m.CancelAll(account=uid, client_order_id="x"), m.ExecReport)
    assert info.value.code == "DECODE_ERROR"
    with pytest.raises(BusError, match="no service answers"):
        await bus.request(subjects.order_query(uid + "nobody"), order, m.ExecReport, timeout=0.5)


async def test_jetstream_deduplicates_by_message_id(fresh_nats: NatsServer, uid: str) -> None:
    # A server of its own: the stream captures order-entry subjects that services' streams also claim.
    bus = await connected(fresh_nats.url, uid)
    await bus.ensure_stream(
        StreamConfig(name=f"S{uid}", subjects=[subjects.order_entry(Tier.P1, uid, ">")], duplicate_window=60)
    )
    order = m.NewOrder(
        account=uid, client_order_id="c1", symbol="AAA", side=m.Side.BUY, qty=Decimal(1), price=Decimal(5)
    )
    first = await bus.publish_durable(order, msg_id=f"{uid}:c1")
    again = await bus.publish_durable(order, msg_id=f"{uid}:c1")
    other = await bus.publish_durable(order, msg_id=f"{uid}:c2")
    assert not first.duplicate
    assert again.duplicate
    assert not other.duplicate
    assert again.seq == first.seq
    info = await bus.js.stream_info(f"S{uid}")
    assert info.state.messages == 2
    # ensure_stream on an existing stream updates instead of failing
    await bus.ensure_stream(
        StreamConfig(name=f"S{uid}", subjects=[subjects.order_entry(Tier.P1, uid, ">")], duplicate_window=120)
    )
    await bus.close()


async def test_streams_are_declared_with_the_configured_replicas(nats_url: str, uid: str) -> None:
    one = await connected(nats_url, uid)
    three = Bus([nats_url], name=f"{uid}-r3", stream_replicas=3)
    await three.connect(give_up_after=5)
    try:
        await one.ensure_stream(StreamConfig(name=f"R{uid}", subjects=[f"{uid}.r.>"]))
        assert (await one.js.stream_info(f"R{uid}")).config.num_replicas == 1
        # a single server cannot hold three replicas: the request reaches it and is refused
        with pytest.raises(nats.js.errors.APIError, match="replicas"):
            await three.ensure_stream(StreamConfig(name=f"Q{uid}", subjects=[f"{uid}.q.>"]))
    finally:
        await one.close()
        await three.close()


async def test_the_bus_reconnects_after_the_server_restarts(fresh_nats: NatsServer, uid: str) -> None:
    bus = await connected(fresh_nats.url, uid)
    got: list[str] = []

    async def on_trade(t: m.Trade) -> None:
        got.append(t.trade_id)

    await bus.subscribe(subjects.trade(uid, "*"), m.Trade, on_trade)
    await asyncio.to_thread(fresh_nats.restart)
    await wait_for(lambda: bus.stats.reconnects_total >= 1 and bus.connected, timeout=10)
    await bus.publish(trade(uid, 1))
    await wait_for(lambda: got == ["1"], timeout=5)
    assert bus.stats.disconnects_total >= 1
    await bus.close()


async def test_connect_gives_up_when_asked(uid: str) -> None:
    from nexus.procs import free_port

    bus = Bus([f"nats://127.0.0.1:{free_port()}"], name=uid)
    with pytest.raises(BusError, match="could not connect"):
        await bus.connect(give_up_after=0.5)
