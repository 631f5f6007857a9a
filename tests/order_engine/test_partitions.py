"""Scale-out: two engine instances split the symbols by the server's partition of the symbol token; each
serves its share, and an account-wide cancel-all reaches both."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from nexus import messages as m
from nexus import streams, subjects
from nexus.bus import Bus
from nexus.client import OrderClient
from nexus.errors import RemoteError
from nexus.instruments import load_instruments
from nexus.messages import ExecType, Side
from nexus.natsserver import NatsServer
from nexus.testing import wait_for
from tests.order_engine.conftest import start_engine

pytestmark = pytest.mark.integration


async def test_two_instances_each_take_their_share_and_cancel_all_reaches_both(
    fresh_nats: NatsServer, tmp_path: Path, client_bus: Bus
) -> None:
    symbols = sorted(load_instruments())
    engines = [
        await start_engine(
            fresh_nats.url, tmp_path / "var", instance=f"p{k}", engine_partitions=2, engine_partition=k
        )
        for k in range(2)
    ]
    try:
        shares = [set(e.service.engine.syms) for e in engines]
        assert shares[0] | shares[1] == set(symbols)
        assert not shares[0] & shares[1]
        assert all(shares)
        for k, share in enumerate(shares):
            assert all(streams.partition_of(s, 2) == k for s in share)

        reports: list[m.ExecReport] = []
        alice = OrderClient(client_bus, "alice", on_report=reports.append, timeout=10)
        insts = load_instruments()
        placed = []
        for symbol in symbols:
            price = insts[symbol].ref_price - 10 * insts[symbol].tick
            r = await alice.new_order(symbol, Side.BUY, insts[symbol].min_qty, price)
            assert r.exec_type is ExecType.ACCEPTED, r
            placed.append(r.client_order_id)
            book = await alice.book(symbol)  # answered by the owner, wherever it runs
            assert book.bids == ((price, insts[symbol].min_qty),)
            assert (await alice.query(r.client_order_id, symbol)).exec_type is ExecType.ACCEPTED
        counts = [e.service.engine.commands_total for e in engines]
        assert counts == [len(shares[0]), len(shares[1])]

        ack = await alice.cancel_all()
        assert (ack.exec_type, ack.symbol) == (ExecType.ACCEPTED, subjects.ALL_SYMBOLS)
        await wait_for(
            lambda: (
                {r.orig_client_order_id for r in reports if r.exec_type is ExecType.CANCELLED} == set(placed)
            ),
            timeout=10,
        )
        await asyncio.sleep(0.2)
        assert (
            sum(
                r.client_order_id == ack.client_order_id and r.exec_type is ExecType.ACCEPTED for r in reports
            )
            == 1
        )
        for symbol in symbols:
            assert (await alice.book(symbol)).bids == ()
        with pytest.raises(RemoteError, match="UNKNOWN_SYMBOL"):
            await alice.book("NOPE")
    finally:
        for e in engines:
            assert await e.stop() == 0
