"""The order client: a submit that timed out, submitted again, is one order with its original answer."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from nexus import messages as m
from nexus import streams
from nexus.bus import Bus
from nexus.client import OrderClient, SubmitTimeout
from nexus.messages import ExecType, Side
from nexus.natsserver import NatsServer
from tests.order_engine.conftest import start_engine
from tests.order_engine.streamtools import read_stream

pytestmark = pytest.mark.integration


async def test_a_retried_submit_after_a_timeout_is_one_order_with_the_original_answer(
    fresh_nats: NatsServer, tmp_path: Path, client_bus: Bus
) -> None:
    # The stream exists but no engine runs yet: the command is stored, the answer cannot come.
    await client_bus.ensure_stream(streams.order_entry_stream())
    client = OrderClient(client_bus, "alice")
    cmd = m.NewOrder(
        account="alice",
        client_order_id="retry-1",
        symbol="SPY",
        side=Side.BUY,
        qty=Decimal(5),
        price=Decimal("560.00"),
    )
    with pytest.raises(SubmitTimeout) as timed_out:
        await client.submit(cmd, timeout=0.5)
    assert timed_out.value.stored

    engine = await start_engine(fresh_nats.url, tmp_path / "var")
    try:
        first = await client.submit(cmd, timeout=10)  # the retry: a duplicate in the stream
        assert (first.exec_type, first.client_order_id) == (ExecType.ACCEPTED, "retry-1")
        # A different process retrying the same command (no cached answer) gets the same answer.
        other = OrderClient(client_bus, "alice")
        again = await other.submit(cmd, timeout=10)
        assert again == first
        # One order: 5 on the book, one accepted report in the exec stream, one command in the entry stream.
        assert (await other.book("SPY")).bids == ((Decimal("560.00"), Decimal(5)),)
        execs = [
            m.decode(m.ExecReport, d)
            for _, _, d in await read_stream(client_bus.js, streams.engine_exec_stream_name(0))
        ]
        assert [(r.client_order_id, r.exec_type) for r in execs] == [("retry-1", ExecType.ACCEPTED)]
        assert len(await read_stream(client_bus.js, streams.ORDER_ENTRY)) == 1
        # A retried cancel gets the original cancel answer, and the order is cancelled once.
        cancel = m.CancelOrder(
            account="alice", client_order_id="retry-2", symbol="SPY", orig_client_order_id="retry-1"
        )
        answers = [await client.submit(cancel), await other.submit(cancel)]
        assert [a.exec_type for a in answers] == [ExecType.CANCELLED, ExecType.CANCELLED]
        assert answers[0] == answers[1]
    finally:
        assert await engine.stop() == 0


async def test_submit_without_any_order_stream_times_out_unstored(client_bus: Bus) -> None:
    client = OrderClient(client_bus, "nobody-" + client_bus.name)
    with pytest.raises(SubmitTimeout) as timed_out:
        await client.new_order("SPY", Side.BUY, "1", "1.00", timeout=0.4)
    assert not timed_out.value.stored
