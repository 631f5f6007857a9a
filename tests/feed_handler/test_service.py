"""The feed handler as users run it: `python -m feed_handler` with no configuration publishes the
synthetic `sim` venue (what `make run` shows), replay of the real data through the service, and the
priority rules under backpressure (trades never dropped or conflated, every p1 update accounted for)."""

from __future__ import annotations

import os
import signal
import time
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from nexus import messages as m
from nexus import subjects
from nexus.bus import Bus
from nexus.instruments import load_instruments
from nexus.natsserver import NatsServer
from nexus.testing import ServiceProcess, pause_process, wait_for
from tests.feed_handler.helpers import BINANCE_REC, LOBSTER_MSG, Collector, feed_handler, service

pytestmark = pytest.mark.integration


@pytest.mark.slow
async def test_python_m_feed_handler_publishes_the_sim_venue_for_every_default_instrument(
    tmp_path: Path, nats_url: str, uid: str, bus: Bus
) -> None:
    quotes, trades, beats = Collector(), Collector(), Collector()
    await bus.subscribe(subjects.quote("sim", "*"), m.Quote, quotes)
    await bus.subscribe(subjects.trade("sim", "*"), m.Trade, trades)
    await bus.subscribe(subjects.heartbeat("feed-handler", uid), m.Heartbeat, beats)
    await bus.flush()
    instruments = load_instruments()
    with ServiceProcess(
        "feed_handler", nats_url=nats_url, instance=uid, log_path=tmp_path / "fh.log"
    ) as proc:
        proc.wait_ready()
        await wait_for(lambda: {q.symbol for q in quotes.msgs} == set(instruments), timeout=15)
        await wait_for(lambda: len(trades) > 10 and len(beats) > 1, timeout=10)
        for q in quotes.msgs:
            inst = instruments[q.symbol]
            assert q.venue == "sim"
            assert q.bid_px < q.ask_px
            assert inst.to_ticks(q.bid_px) is not None  # on the instrument's tick
            assert inst.to_ticks(q.ask_px) is not None
            assert abs(q.bid_px / inst.ref_price - 1) < Decimal("0.05")  # near its reference price
            assert q.ts_event <= q.ts_recv <= q.ts_pub
        feeds = beats.msgs[-1].details["feeds"]
        assert feeds["sim"]["state"] == "live"
        assert feeds["sim"]["health"] == 1.0
        stats = beats.msgs[-1].stats
        assert stats["md_published_total"] > 0
        assert stats["outbox_p0_queue_limit"] > 0
        assert "outbox_p1_queue_depth" in stats
        status, body = proc.get("/feeds/sim")
        assert status == 200
        assert body["venue"] == "sim"
        assert proc.terminate() == 0


async def test_replay_of_the_recorded_binance_session_and_lobster_through_the_service(
    tmp_path: Path, nats_url: str, uid: str, bus: Bus
) -> None:
    trades = Collector()
    await bus.subscribe(subjects.trade(f"{uid}b", "*"), m.Trade, trades)
    await bus.subscribe(subjects.trade(f"{uid}l", "*"), m.Trade, trades)
    await bus.flush()
    toml = f"""
[[feed]]
name = "{uid}b"
kind = "replay"
venue = "{uid}b"
path = "{BINANCE_REC}"
speed = 0

[[feed]]
name = "{uid}l"
kind = "replay"
venue = "{uid}l"
path = "{LOBSTER_MSG}"
speed = 0
"""
    async with feed_handler(nats_url, uid, tmp_path, toml) as runner:
        manager = service(runner).manager
        await wait_for(lambda: all(str(f.state) == "stopped" for f in manager.feeds.values()), timeout=30)
        await wait_for(lambda: len(trades) == 1240 + 8974 + 2445, timeout=10)
        binance, lobster = manager.feeds[f"{uid}b"], manager.feeds[f"{uid}l"]
        assert binance.reason == "end of data"
        assert not binance.running  # a finished replay can be started again
        manager.start(f"{uid}l")
        assert lobster.running
        await manager.stop(f"{uid}l")
        assert binance.counters.errors_total == 0
        assert lobster.counters.errors_total == 0
        assert binance.counters.trades_total == 1240
        assert lobster.counters.conflated_total == 0  # a replay waits for the publisher: nothing lost
        now = time.time_ns()
        for t in trades.msgs:  # retimed onto the replay's clock (as fast as possible: the receive time)
            assert abs(t.ts_event - now) < 120 * 1_000_000_000


async def test_replay_paces_at_its_speed_and_loops_with_fresh_trade_ids(
    tmp_path: Path, nats_url: str, uid: str, bus: Bus
) -> None:
    path = tmp_path / "trades.ndjson"
    t0 = 1_700_000_000_000_000_000
    lines = [
        m.encode(
            m.Trade(
                venue="x",
                symbol="ABC",
                venue_symbol="ABC",
                trade_id=str(i),
                ts_event=t0 + i * 100_000_000,
                price=Decimal(1),
                size=Decimal(1),
            )
        )
        for i in range(11)  # one second of trades
    ]
    path.write_bytes(b"\n".join(lines) + b"\n{broken\n")
    trades = Collector()
    await bus.subscribe(subjects.trade(f"{uid}-x1", "*"), m.Trade, trades)
    await bus.subscribe(subjects.trade(f"{uid}-x10", "*"), m.Trade, trades)
    await bus.subscribe(subjects.trade(f"{uid}-loop", "*"), m.Trade, trades)
    await bus.flush()
    toml = ""
    for name, speed, loop in (("x1", 1, "false"), ("x10", 10, "false"), ("loop", 0, "true")):
        toml += f"""
[[feed]]
name = "{uid}-{name}"
kind = "replay"
path = "{path}"
speed = {speed}
loop = {loop}
"""
    async with feed_handler(nats_url, uid, tmp_path, toml) as runner:
        manager = service(runner).manager
        looped = manager.feeds[f"{uid}-loop"]
        await wait_for(lambda: looped.counters.trades_total >= 44, timeout=10)
        await manager.stop(f"{uid}-loop")
        await wait_for(lambda: sum(t.venue == f"{uid}-x1" for t in trades.msgs) == 11, timeout=10)
        await wait_for(lambda: sum(t.venue == f"{uid}-x10" for t in trades.msgs) == 11, timeout=10)
        by_venue: dict[str, list[tuple[int, m.Trade]]] = defaultdict(list)
        for received, t in trades.items:
            by_venue[t.venue].append((received, t))
        span_1x = by_venue[f"{uid}-x1"][-1][0] - by_venue[f"{uid}-x1"][0][0]
        span_10x = by_venue[f"{uid}-x10"][-1][0] - by_venue[f"{uid}-x10"][0][0]
        assert span_1x >= 0.9e9  # 1 s of data at 1x takes a second
        assert 0.09e9 <= span_10x < 0.9e9  # and a tenth of it at 10x
        ids = [t.trade_id for _, t in by_venue[f"{uid}-loop"]]
        assert ids[:12] == [str(i) for i in range(11)] + ["0~1"]
        assert len(ids) == len(set(ids))  # every pass has its own trade ids
        assert manager.feeds[f"{uid}-x1"].counters.errors_by_reason == {"invalid_json": 1}  # the broken line


async def test_under_backpressure_trades_are_never_lost_and_every_p1_update_is_accounted_for(
    tmp_path: Path, uid: str, fresh_nats: NatsServer, client_bus: Bus
) -> None:
    """Real backpressure: the test's own server is stopped (SIGSTOP), so it reads nothing. The
    connections' buffers fill, then the outbox's queue of quotes, which conflates."""
    trades, quotes = Collector(), Collector()
    await client_bus.subscribe(subjects.trade(uid, "*"), m.Trade, trades)
    await client_bus.subscribe(subjects.quote(uid, "*"), m.Quote, quotes)
    await client_bus.flush()
    toml = f"""
[[feed]]
name = "{uid}"
kind = "synthetic"
venue = "{uid}"
rate = 50000
trade_ratio = 0.3
book_levels = 0
seed = 3
"""
    # a small conflation threshold: a burst of the source while the publisher is stuck conflates
    async with feed_handler(fresh_nats.url, uid, tmp_path, toml, conflate_at=8, p1_queue_limit=64) as runner:
        svc = service(runner)
        feed = svc.manager.feeds[uid]
        await wait_for(lambda: feed.counters.trades_total > 1000, timeout=20)
        assert fresh_nats.pid is not None
        await pause_process(fresh_nats.pid)
        try:
            await wait_for(lambda: feed.counters.conflated_total > 0, timeout=20)
        finally:
            os.kill(fresh_nats.pid, signal.SIGCONT)
        await wait_for(lambda: feed.counters.trades_total > 3000, timeout=20)
        await svc.manager.stop(uid)
        await wait_for(lambda: len(svc.outbox) == 0, timeout=10)
        c = feed.counters
        await wait_for(lambda: len(trades) == c.trades_total, timeout=10)
        assert c.conflated_total > 0  # quotes were conflated...
        p1_made = c.msgs_total - c.trades_total
        assert c.published_total == c.trades_total + p1_made - c.conflated_total - c.dropped_total
        await wait_for(lambda: len(quotes) == p1_made - c.conflated_total - c.dropped_total, timeout=10)
        ids: dict[str, list[int]] = defaultdict(list)
        for t in trades.msgs:
            ids[t.symbol].append(int(t.trade_id))
        for seq in ids.values():
            assert seq == list(range(1, len(seq) + 1))  # ...trades never: all of them, in order
        stats = svc.stats()
        assert stats["md_conflated_total"] == c.conflated_total
        assert stats["md_published_total"] >= c.published_total
        assert msgspec.json.encode(svc.details())  # the heartbeat's details stay encodable
