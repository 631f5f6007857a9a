"""The order-flow streams on a real nats-server: the server partitions commands the way
`nexus.streams.partition_of` says, and the output streams republish a message once, when stored."""

from __future__ import annotations

import asyncio

import nats
import nats.js.errors
import pytest

from nexus import streams, subjects
from nexus.bus import Bus
from nexus.natsserver import NatsServer
from nexus.subjects import ALL_SYMBOLS, Tier

pytestmark = pytest.mark.integration

SYMBOLS = ["BTC-USD", "ETH-USD", "SOL-USD", "AAPL", "MSFT", "NVDA", "SPY", "EUR-USD", ALL_SYMBOLS, "X_1"]


async def test_the_server_partitions_commands_as_partition_of_predicts(fresh_nats: NatsServer) -> None:
    bus = Bus([fresh_nats.url], name="streams-test")
    await bus.connect(give_up_after=5)
    try:
        for n in (1, 2, 3, 5):
            await bus.ensure_stream(streams.order_entry_stream(partitions=n))
            for symbol in SYMBOLS:
                subject = subjects.order_entry(Tier.P1, "acct", symbol)
                ack = await bus.js.publish(subject, b"{}", headers={"Nats-Msg-Id": f"{n}:{symbol}"})
                stored = await bus.js.get_msg(streams.ORDER_ENTRY, seq=ack.seq)
                expected = subjects.order_entry_stored(
                    streams.partition_of(symbol, n), Tier.P1, "acct", symbol
                )
                assert stored.subject == expected
    finally:
        await bus.close()


async def test_output_streams_republish_each_stored_message_once(fresh_nats: NatsServer) -> None:
    nc = await nats.connect(fresh_nats.url)
    js = nc.jetstream()
    for k in (0, 1):
        await js.add_stream(streams.engine_exec_stream(k))
        await js.add_stream(streams.engine_trades_stream(k))
    got: list[str] = []

    async def on_msg(msg: nats.aio.msg.Msg) -> None:
        got.append(msg.subject)

    await nc.subscribe(subjects.exec_report("*", "*"), cb=on_msg)
    await nc.subscribe(subjects.trade("*", "*"), cb=on_msg)
    await nc.flush()
    for _ in range(3):  # a retried publish (same Nats-Msg-Id) is stored and delivered once
        await js.publish(subjects.engine_exec(0, "acct", "AAPL"), b"{}", headers={"Nats-Msg-Id": "x:1"})
        await js.publish(subjects.engine_trade(1, "nexus", "AAPL"), b"{}", headers={"Nats-Msg-Id": "x:2"})
    await asyncio.sleep(0.3)
    assert sorted(got) == [subjects.trade("nexus", "AAPL"), subjects.exec_report("acct", "AAPL")]
    # a message that does not follow the stream's last sequence is refused, and not republished
    with pytest.raises(nats.js.errors.APIError, match="wrong last sequence"):
        await js.publish(
            subjects.engine_exec(0, "acct", "AAPL"),
            b"{}",
            headers={"Nats-Msg-Id": "x:3", "Nats-Expected-Last-Sequence": "7"},
        )
    await asyncio.sleep(0.2)
    assert len(got) == 2
    await nc.close()


def test_filters_give_every_partition_its_own_commands_and_every_cancel_all() -> None:
    n = 4
    owner_all = streams.partition_of(ALL_SYMBOLS, n)
    for k in range(n):
        filters = streams.engine_filter_subjects("direct", k, n)
        assert filters[0] == subjects.order_entry_stored(k, "*", "*", "*").rsplit(".", 3)[0] + ".>"
        if k != owner_all:
            assert filters[1] == subjects.order_entry_stored(owner_all, "*", "*", ALL_SYMBOLS)
