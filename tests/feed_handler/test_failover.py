"""Failover groups over two real simulator processes serving the same stream (same seed and anchor):
kill the primary mid-stream -> the backup's trades are published within 250 ms, under the group's venue,
with no trade id published twice and none missing; the primary comes back -> failback after it has been
healthy for `failback_after`, again without duplicates."""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path

import pytest

from nexus import messages as m
from nexus import subjects
from nexus.bus import Bus
from nexus.procs import free_port
from nexus.testing import wait_for
from tests.feed_handler.helpers import Collector, SimulatorProcess, feed_handler, service

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def trade_ids_by_symbol(trades: list[m.Trade]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = defaultdict(list)
    for t in trades:
        out[t.symbol].append(int(t.trade_id))
    return out


async def test_killing_the_primary_publishes_the_backup_within_250ms_without_duplicates_then_fails_back(
    tmp_path: Path, nats_url: str, uid: str, bus: Bus
) -> None:
    anchor = time.time()
    args = ("--venue", "binance", "--rate", "400", "--symbols", "BTC-USD,ETH-USD", "--seed", "11")
    args += ("--anchor", str(anchor))
    port_a = free_port()
    sim_a = SimulatorProcess(tmp_path, *args, port=port_a, name="primary").start()
    sim_b = SimulatorProcess(tmp_path, *args, name="backup").start()
    sim_a2: SimulatorProcess | None = None
    trades, statuses = Collector(), Collector()
    await bus.subscribe(subjects.trade(uid, "*"), m.Trade, trades)
    await bus.subscribe(subjects.feed_status(uid), m.FeedStatus, statuses)
    await bus.flush()
    toml = ""
    for name, sim in ((f"{uid}-a", sim_a), (f"{uid}-b", sim_b)):
        toml += f"""
[[feed]]
name = "{name}"
kind = "binance"
url = "{sim.ws_url}/stream"
symbols = ["BTCUSD", "ETHUSD"]
backoff_base = 0.05
backoff_cap = 0.3
breaker_failures = 100
"""
    toml += f"""
[[group]]
name = "{uid}"
venue = "{uid}"
members = ["{uid}-a", "{uid}-b"]
failback_after = 1.0
"""
    try:
        async with feed_handler(nats_url, uid, tmp_path, toml) as runner:
            manager = service(runner).manager
            group = manager.groups[uid]
            primary, backup = manager.feeds[f"{uid}-a"], manager.feeds[f"{uid}-b"]
            await wait_for(lambda: primary.stable and backup.stable and len(trades) > 50, timeout=15)
            assert group.active is primary

            t_kill = time.time_ns()
            sim_a.kill()
            await wait_for(lambda: any(s.active == backup.name for s in statuses.msgs), timeout=5)
            switch = next(s for s in statuses.msgs if s.active == backup.name)
            assert switch.reason == f"failover: primary {primary.name} disconnected"
            assert (switch.ts - t_kill) / 1e6 < 250
            await wait_for(lambda: any(t.ts_pub > switch.ts for t in trades.msgs), timeout=2)
            first_backup_trade = min(t.ts_pub for t in trades.msgs if t.ts_pub > switch.ts)
            assert (first_backup_trade - t_kill) / 1e6 < 250  # the backup's data within 250 ms

            # the primary comes back (same stream); once healthy for 1 s the group fails back to it
            sim_a2 = SimulatorProcess(tmp_path, *args, port=port_a, name="primary2").start()
            await wait_for(
                lambda: any(
                    s.active == primary.name and s.reason.startswith("failback") for s in statuses.msgs
                ),
                timeout=15,
            )
            assert group.active is primary
            count = len(trades)
            await wait_for(lambda: len(trades) > count + 30, timeout=5)

            ids = trade_ids_by_symbol(trades.msgs)
            for symbol, seq in ids.items():
                assert len(seq) == len(set(seq)), f"{symbol}: a trade id was published twice"
                assert seq == list(range(seq[0], seq[0] + len(seq))), f"{symbol}: trade ids missing"
            assert {t.venue for t in trades.msgs} == {uid}
            assert group.counters.failovers_total == 2
            details = service(runner).details()["feeds"][uid]
            assert details["active"] == primary.name
            assert details["failovers_total"] == 2
            assert service(runner).stats()["feed_failovers_total"] == 2
    finally:
        for sim in (sim_a, sim_b, sim_a2):
            if sim is not None:
                sim.kill()
