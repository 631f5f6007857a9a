"""Exactly-once across crashes, over a real nats-server and real engine processes: kill -9 the engine
while commands pour in, restart it, and compare everything it ever stored with a replay from scratch."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from pathlib import Path

import nats
import pytest
from nats.aio.msg import Msg

from nexus import messages as m
from nexus import streams, subjects
from nexus.bus import MSG_ID
from nexus.messages import ExecType
from nexus.natsserver import NatsServer
from nexus.testing import ServiceProcess, wait_for
from tests.order_engine.gen import INSTRUMENTS, commands
from tests.order_engine.streamtools import instruments_toml, read_stream, replay, timeless

pytestmark = [pytest.mark.integration, pytest.mark.slow]

N_COMMANDS = 9_000
KILL_AT = (2_500, 5_500)  # commands published when a kill -9 lands (the second one is followed by another)
TERMINAL = {ExecType.FILLED, ExecType.CANCELLED, ExecType.REJECTED}


def _engine(url: str, tmp_path: Path, n: int) -> ServiceProcess:
    return ServiceProcess(
        "order_engine",
        nats_url=url,
        instance=f"rec{n}",
        env={
            "NEXUS_DATA_DIR": str(tmp_path / "var"),
            "NEXUS_INSTRUMENTS_FILE": str(tmp_path / "instruments.toml"),
            "NEXUS_ENGINE_SNAPSHOT_INTERVAL": "0.3",
            "NEXUS_ENGINE_SNAPSHOT_EVERY": "700",
            "NEXUS_ENGINE_BATCH": "100",
        },
        log_path=tmp_path / f"engine{n}.log",
    )


async def test_kill_9_under_load_loses_nothing_and_duplicates_nothing(
    fresh_nats: NatsServer, tmp_path: Path
) -> None:
    instruments_toml(tmp_path / "instruments.toml", INSTRUMENTS)
    nc = await nats.connect(fresh_nats.url)
    js = nc.jetstream(publish_async_max_pending=500)
    delivered: list[tuple[str, str]] = []  # what subscribers of ord.exec / md.p0.trade received

    async def on_output(msg: Msg) -> None:
        delivered.append((msg.subject, (msg.headers or {}).get(MSG_ID, "")))

    await nc.subscribe(subjects.exec_report("*", "*"), cb=on_output)
    await nc.subscribe(subjects.trade("nexus", "*"), cb=on_output)
    procs: list[ServiceProcess] = []
    try:
        procs.append(_engine(fresh_nats.url, tmp_path, 0).start())
        await asyncio.to_thread(procs[-1].wait_ready)
        sent = list(commands(seed=99, n=N_COMMANDS))
        unique = len({streams.command_id(c.account, c.client_order_id) for c in sent})  # the stream dedupes
        for i, cmd in enumerate(sent):
            subject = subjects.subject_for(cmd)
            await js.publish_async(
                subject, m.encode(cmd), headers={MSG_ID: streams.command_id(cmd.account, cmd.client_order_id)}
            )
            if i in KILL_AT:
                await js.publish_async_completed()
                procs[-1].kill()  # SIGKILL: no snapshot, no drain, outputs in flight
                procs.append(_engine(fresh_nats.url, tmp_path, len(procs)).start())
                if i == KILL_AT[-1]:  # and once more while it starts up and replays
                    await asyncio.sleep(1.2)
                    procs[-1].kill()
                    procs.append(_engine(fresh_nats.url, tmp_path, len(procs)).start())
                await asyncio.to_thread(procs[-1].wait_ready, 60)
            if i % 200 == 0:
                await asyncio.sleep(0.02)  # a steady stream rather than one burst
        await js.publish_async_completed()
        last = procs[-1]
        await asyncio.to_thread(last.wait_ready, 60)
        stored_commands = await read_stream(js, streams.ORDER_ENTRY)
        assert len(stored_commands) == unique

        async def caught_up() -> bool:
            status, body = await asyncio.to_thread(last.get, "/stats")
            return status == 200 and body["stats"]["input_acked_seq"] == unique

        await wait_for(caught_up, timeout=60, interval=0.2)
        _, stats = await asyncio.to_thread(last.get, "/stats")
        stats = stats["stats"]
        # the crash really happened mid-stream: the restart replayed commands and found outputs stored
        assert stats["replayed_total"] > 0
        assert stats["outputs_suppressed_total"] > 0, stats

        execs = await read_stream(js, streams.engine_exec_stream_name(0))
        trades = await read_stream(js, streams.engine_trades_stream_name(0))
        engine, expected = replay(INSTRUMENTS, [(s, d) for s, _, d in stored_commands])
        stored = {msg_id: data for _, msg_id, data in execs + trades}
        assert len(stored) == len(execs) + len(trades), "an output was stored twice"
        assert stored.keys() == expected.keys(), "outputs lost or invented"
        for msg_id, data in stored.items():
            got = m.decode(m.AnyMessage, data)
            # compared encoded: a rejected NaN price is not equal to itself
            assert m.encode(timeless(got)) == m.encode(timeless(expected[msg_id])), msg_id

        # subscribers got every output exactly once (republished only when first stored)
        await wait_for(lambda: len(delivered) >= len(stored), timeout=10)
        await asyncio.sleep(0.3)
        assert Counter(i for _, i in delivered) == Counter(stored.keys())

        # every accepted order has exactly one terminal state, or is still on the book
        reports = [m.decode(m.ExecReport, d) for _, _, d in execs]
        accepted = {
            (r.account, r.client_order_id) for r in reports if r.exec_type is ExecType.ACCEPTED and r.order_id
        }
        terminal = Counter(
            (r.account, r.orig_client_order_id or r.client_order_id)
            for r in reports
            if r.order_id and r.exec_type in TERMINAL
        )
        resting = {(o.account, o.coid) for o in engine.open_orders()}
        for key in accepted:
            assert terminal[key] + (key in resting) == 1, key
        trade_ids = Counter((t.symbol, t.trade_id) for t in (m.decode(m.Trade, d) for _, _, d in trades))
        assert all(n == 1 for n in trade_ids.values())
        assert len(trade_ids) == engine.trades_total

        # the live books equal the replay from scratch
        for symbol in ("AAA", "BBB"):
            reply = await nc.request(
                subjects.book_request(symbol), m.encode(m.BookRequest(symbol=symbol, depth=0)), timeout=5
            )
            live = m.decode(m.BookSnapshot, reply.data)
            want = engine.snapshot(symbol, None)
            assert (live.bids, live.asks, live.seq) == (want.bids, want.asks, want.seq), symbol
        assert last.terminate() == 0
    finally:
        for proc in procs:
            proc.kill()
        with contextlib.suppress(Exception):
            await nc.close()


async def test_a_nats_server_restart_mid_stream_loses_and_duplicates_nothing(
    fresh_nats: NatsServer, tmp_path: Path
) -> None:
    from tests.order_engine.conftest import start_engine

    instruments_toml(tmp_path / "instruments.toml", INSTRUMENTS)
    engine = await start_engine(
        fresh_nats.url,
        tmp_path / "var",
        instruments_file=str(tmp_path / "instruments.toml"),
        engine_snapshot_interval=0.3,
        engine_ack_timeout=0.5,
    )
    sent = list(commands(seed=5, n=3_000))
    unique = len({streams.command_id(c.account, c.client_order_id) for c in sent})
    nc = await nats.connect(fresh_nats.url, max_reconnect_attempts=-1, reconnect_time_wait=0.1)
    js = nc.jetstream()
    try:
        # a burst the engine is still working through when the server goes down
        acks = [
            await js.publish_async(
                subjects.subject_for(cmd),
                m.encode(cmd),
                headers={MSG_ID: streams.command_id(cmd.account, cmd.client_order_id)},
            )
            for cmd in sent
        ]
        await wait_for(lambda: engine.service.in_seq > 50, timeout=10, interval=0.001)
        await asyncio.to_thread(fresh_nats.kill)
        await asyncio.to_thread(fresh_nats.start)
        await asyncio.wait(acks, timeout=5)  # an ack lost with the server never comes
        for cmd, ack in zip(sent, acks, strict=True):
            result = ack.exception() if ack.done() else TimeoutError()
            while result is not None:  # a client's retry: same command, same id
                try:
                    await js.publish(
                        subjects.subject_for(cmd),
                        m.encode(cmd),
                        headers={MSG_ID: streams.command_id(cmd.account, cmd.client_order_id)},
                        timeout=1,
                    )
                    result = None
                except (nats.errors.Error, TimeoutError) as exc:
                    result = exc
                    await asyncio.sleep(0.1)
        await wait_for(lambda: engine.service.acked_seq == unique, timeout=60, interval=0.1)
        assert engine.runner.bus.stats.reconnects_total >= 1

        stored_commands = await read_stream(js, streams.ORDER_ENTRY)
        assert len(stored_commands) == unique
        replayed, expected = replay(INSTRUMENTS, [(s, d) for s, _, d in stored_commands])
        outputs = await read_stream(js, streams.engine_exec_stream_name(0)) + await read_stream(
            js, streams.engine_trades_stream_name(0)
        )
        stored = {msg_id: data for _, msg_id, data in outputs}
        assert len(stored) == len(outputs), "an output was stored twice"
        assert stored.keys() == expected.keys(), "outputs lost or invented"
        for msg_id, data in stored.items():
            got = m.encode(timeless(m.decode(m.AnyMessage, data)))
            assert got == m.encode(timeless(expected[msg_id])), msg_id
        for symbol in ("AAA", "BBB"):
            assert engine.service.engine.snapshot(symbol, None) == replayed.snapshot(symbol, None)
    finally:
        await nc.close()
        assert await engine.stop() == 0
