"""DirectPublish against a real nats-server: what arrives is what nats-py's own publish would deliver,
in order, and it follows nats-py's rules when it cannot append (too large, closed, reconnecting). The
tests of behaviour run with and without coalescing (`COALESCE`)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator
from typing import Any

import nats
import nats.errors
import pytest

from nexus.fastpub import COALESCE_TURNS, DirectPublish
from nexus.natsserver import NatsServer
from nexus.testing import pause_process, wait_for

COALESCE = pytest.mark.parametrize("coalesce", [0, 65_536], ids=["at-once", "coalescing"])


@pytest.fixture
async def conns() -> AsyncIterator[list[nats.NATS]]:
    """The test's connections, closed at its end whatever happened (a failed test leaks none)."""
    opened: list[nats.NATS] = []
    yield opened
    for nc in opened:
        if not nc.is_closed:
            await nc.close()


async def connect(conns: list[nats.NATS], url: str, **options: Any) -> nats.NATS:
    nc = await nats.connect(url, **options)
    conns.append(nc)
    return nc


async def collect(
    conns: list[nats.NATS], url: str, subject: str
) -> tuple[nats.NATS, list[tuple[str, bytes]]]:
    sub = await connect(conns, url)
    got: list[tuple[str, bytes]] = []

    async def on_msg(msg: nats.aio.msg.Msg) -> None:
        got.append((msg.subject, msg.data))

    await sub.subscribe(subject, cb=on_msg)
    await sub.flush()
    return sub, got


@COALESCE
async def test_direct_and_nats_py_publishes_arrive_in_order_with_their_payloads(
    nats_url: str, uid: str, conns: list[nats.NATS], coalesce: int
) -> None:
    sub, got = await collect(conns, nats_url, f"{uid}.>")
    nc = await connect(conns, nats_url)
    publish = DirectPublish(nc, coalesce)
    sent = []
    for i in range(5000):
        subject = f"{uid}.s{i % 7}"
        payload = b"x" * (i % 300) + str(i).encode()  # from a few bytes to a few hundred, some empty-ish
        sent.append((subject, payload))
        if i % 10 == 9:
            await nc.publish(subject, payload)  # the library's own publish, between direct ones
        else:
            assert publish(subject, payload) is None
        if i % 500 == 0:
            await asyncio.sleep(0)
    await wait_for(lambda: len(got) >= len(sent), timeout=10)
    assert got == sent
    assert nc.stats["out_msgs"] == len(sent)
    assert nc.stats["out_bytes"] == sum(len(p) for _, p in sent)
    await nc.close()
    await sub.close()


@COALESCE
async def test_a_batch_is_one_append_and_keeps_its_order_among_single_publishes(
    nats_url: str, uid: str, conns: list[nats.NATS], coalesce: int
) -> None:
    sub, got = await collect(conns, nats_url, f"{uid}.>")
    nc = await connect(conns, nats_url)
    publish = DirectPublish(nc, coalesce)
    sent: list[tuple[str, bytes]] = []
    for round_ in range(50):
        batch = [(f"{uid}.b{i % 5}", f"{round_}:{i}".encode()) for i in range(64)]
        assert publish.many(batch) is None
        single = (f"{uid}.one", f"{round_}".encode())
        assert publish(*single) is None
        sent += [*batch, single]
        await asyncio.sleep(0)
    await wait_for(lambda: len(got) >= len(sent), timeout=10)
    assert got == sent
    assert nc.stats["out_msgs"] == len(sent)
    too_large = publish.many([(f"{uid}.b0", b"fine"), (f"{uid}.b0", b"x" * (nc.max_payload + 1))])
    assert too_large is not None
    with pytest.raises(nats.errors.MaxPayloadError):
        await too_large  # nats-py's publish of each: the first went out, the second was refused
    await wait_for(lambda: len(got) == len(sent) + 1, timeout=5)
    assert got[-1] == (f"{uid}.b0", b"fine")
    await nc.close()
    await sub.close()


async def test_what_cannot_be_appended_gets_nats_py_errors(
    nats_url: str, uid: str, conns: list[nats.NATS]
) -> None:
    nc = await connect(conns, nats_url)
    publish = DirectPublish(nc)
    too_large = publish(f"{uid}.big", b"x" * (nc.max_payload + 1))
    assert too_large is not None
    with pytest.raises(nats.errors.MaxPayloadError):
        await too_large
    await nc.close()
    closed = publish(f"{uid}.late", b"1")
    assert closed is not None
    with pytest.raises(nats.errors.ConnectionClosedError):
        await closed


@COALESCE
async def test_a_full_outgoing_buffer_makes_the_caller_wait(
    nats_url: str, uid: str, conns: list[nats.NATS], coalesce: int
) -> None:
    sub, got = await collect(conns, nats_url, f"{uid}.>")
    nc = await connect(conns, nats_url, pending_size=64 * 1024)
    publish = DirectPublish(nc, coalesce)
    waits = 0
    for i in range(2000):
        pending = publish(f"{uid}.x", i.to_bytes(4, "big") + b"y" * 200)
        if pending is not None:
            waits += 1
            await pending
    assert waits > 0  # 2000 x ~220 B > 64 KiB without yielding: the buffer filled and was flushed
    await wait_for(lambda: len(got) == 2000, timeout=10)
    assert [int.from_bytes(data[:4], "big") for _, data in got] == list(range(2000))
    await nc.close()
    await sub.close()


@COALESCE
async def test_a_stream_across_a_server_restart_is_delivered_as_nats_py_delivers_it(
    fresh_nats: NatsServer, uid: str, conns: list[nats.NATS], coalesce: int
) -> None:
    """While reconnecting, publishes go through nats-py (which buffers them); once reconnected the
    direct path appends again. Every message published after the reconnect arrives, in order."""
    reconnected = asyncio.Event()

    async def on_reconnected() -> None:  # nats-py calls it once the reconnection is complete
        reconnected.set()

    nc = await connect(
        conns,
        fresh_nats.url,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.1,
        reconnected_cb=on_reconnected,
    )
    publish = DirectPublish(nc, coalesce)
    for i in range(100):
        assert publish(f"{uid}.before", str(i).encode()) is None
    await nc.flush()
    await asyncio.to_thread(fresh_nats.stop)
    handed_over = 0
    for _ in range(1000):  # until nats-py has seen the outage (10 s at most): then its rules apply
        pending = publish(f"{uid}.during", b"-")
        if pending is not None:
            handed_over += 1
            with contextlib.suppress(nats.errors.Error):
                await pending
            break
        await asyncio.sleep(0.01)
    await asyncio.to_thread(fresh_nats.start)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(reconnected.wait(), 10)
    assert reconnected.is_set()
    assert nc.stats["reconnects"] >= 1
    assert handed_over > 0  # the outage was seen, and those publishes went to nats-py
    sub, got = await collect(conns, fresh_nats.url, f"{uid}.after")

    # Right after a restart, the server can take a moment before a new subscription sees another new
    # connection's messages: under load, nats-py's own publish lost the first messages too (1 run in
    # 40). So first nats-py's publish, until a message gets through; then the direct path's 300.
    probes = [0]

    async def through() -> bool:  # the probe just sent arrived: nothing else is on its way
        probes[0] += 1
        await nc.publish(f"{uid}.after", b"probe %d" % probes[0])
        await nc.flush()
        await asyncio.sleep(0.05)
        return bool(got) and got[-1][1] == b"probe %d" % probes[0]

    await wait_for(through, timeout=10, interval=0.05)
    got.clear()
    for i in range(300):
        assert publish(f"{uid}.after", str(i).encode()) is None
    await wait_for(lambda: len(got) == 300, timeout=10)
    assert [int(data) for _, data in got] == list(range(300))
    await nc.close()
    await sub.close()


@COALESCE
async def test_now_appends_only_when_nothing_would_have_to_wait(
    nats_url: str, uid: str, conns: list[nats.NATS], coalesce: int
) -> None:
    _, got = await collect(conns, nats_url, f"{uid}.>")
    nc = await connect(conns, nats_url, pending_size=4096)
    publish = DirectPublish(nc, coalesce)
    assert publish.now(f"{uid}.a", b"1")
    assert publish.now(f"{uid}.a", b"2")
    assert not publish.now(f"{uid}.a", b"x" * 5000)  # would overflow the 4 KiB buffer: not taken
    assert not publish.now(f"{uid}.a", b"x" * (nc.max_payload + 1))
    await nc.publish(f"{uid}.a", b"3")  # the library's own publish keeps the order
    await wait_for(lambda: len(got) == 3, timeout=5)
    assert [data for _, data in got] == [b"1", b"2", b"3"]
    await nc.close()
    assert not publish.now(f"{uid}.a", b"4")  # closed: nothing done


def count_writes(nc: nats.NATS) -> list[int]:
    """Count the chunks written to the connection's socket (by nats-py's flusher or DirectPublish):
    its transport's `writelines`, wrapped to count and pass every chunk on."""
    transport: Any = nc._transport
    write, count = transport.writelines, [0]

    def counted(chunks: list[bytes]) -> None:
        count[0] += 1
        write(chunks)

    transport.writelines = counted
    return count


async def test_coalescing_writes_a_busy_stream_in_fewer_chunks(
    nats_url: str, uid: str, conns: list[nats.NATS]
) -> None:
    """40 turns of the loop, 4 KB published in each: written every turn at once, but only every
    COALESCE_TURNS turns (or 64 KiB) when coalescing. Everything arrives, in order, either way."""
    _, got = await collect(conns, nats_url, f"{uid}.>")
    counts = {}
    for coalesce in (0, 65_536):
        nc = await connect(conns, nats_url)
        publish = DirectPublish(nc, coalesce)
        await nc.flush()
        got.clear()
        written = count_writes(nc)
        for turn in range(40):
            for i in range(20):
                assert publish.now(f"{uid}.c", b"%d:%d:" % (turn, i) + b"z" * 190)
            await asyncio.sleep(0)
        for _ in range(COALESCE_TURNS + 1):
            await asyncio.sleep(0)
        assert nc._pending_data_size == 0  # all written within the turns allowed
        counts[coalesce] = written[0]
        await wait_for(lambda: len(got) == 800, timeout=10)
        assert [data.split(b":")[:2] for _, data in got] == [
            [b"%d" % t, b"%d" % i] for t in range(40) for i in range(20)
        ]
        await nc.close()
    assert counts[0] >= 40
    assert counts[65_536] <= counts[0] // 2


async def test_coalescing_sends_a_lone_message_on_the_next_turn(
    nats_url: str, uid: str, conns: list[nats.NATS]
) -> None:
    _, got = await collect(conns, nats_url, f"{uid}.>")
    nc = await connect(conns, nats_url)
    publish = DirectPublish(nc, 65_536)
    for n in range(1, 4):
        assert publish.now(f"{uid}.lone", b"%d" % n)
        assert nc._pending_data_size > 0
        await asyncio.sleep(0)  # the check: the buffer did not grow, so it is written now
        assert nc._pending_data_size == 0
        await wait_for(lambda n=n: len(got) == n, timeout=5)
    await nc.close()


async def test_coalescing_behind_a_stalled_server_leaves_the_buffer_to_nats_py(
    fresh_nats: NatsServer, uid: str, conns: list[nats.NATS]
) -> None:
    """With the server stopped (SIGSTOP) the socket backs up. A coalescing publisher must then not
    write past the backlog (the transport would take everything, unbounded) but leave its buffer to
    nats-py's flusher, which waits for the socket: the buffer fills and `now` refuses, which is the
    outbox's cue to hold and conflate. When the server resumes, everything arrives in order."""
    _, got = await collect(conns, fresh_nats.url, f"{uid}.>")
    nc = await connect(conns, fresh_nats.url, pending_size=1 << 20)
    publish = DirectPublish(nc, 65_536)
    transport: Any = nc._transport
    sent, refused = 0, False
    pid = fresh_nats.pid
    assert pid is not None
    await pause_process(pid)
    try:
        for _ in range(1500):  # bounded: ~38 MB at most, far more than the socket's buffers hold
            for _ in range(50):
                if not publish.now(f"{uid}.s", b"%d " % sent + b"q" * 500):
                    refused = True
                    break
                sent += 1
            if refused:
                break
            await asyncio.sleep(0)
        assert refused  # nats-py's buffer filled: the caller is told to wait
        assert transport._io_writer.transport.get_write_buffer_size() <= 2 << 20
    finally:
        os.kill(pid, signal.SIGCONT)
    await wait_for(lambda: len(got) == sent, timeout=30)
    assert [int(data.split()[0]) for _, data in got] == list(range(sent))
    await nc.close()


async def test_flush_hands_over_what_is_still_being_coalesced_before_its_ping(
    nats_url: str, uid: str, conns: list[nats.NATS]
) -> None:
    """nats-py's own flush writes its PING straight to the socket, ahead of its buffer, so the PONG can
    come back before the server has seen the messages still gathered there. `DirectPublish.flush`
    writes the buffer first: on the wire, every message comes before the PING."""
    _, got = await collect(conns, nats_url, f"{uid}.>")
    nc = await connect(conns, nats_url)
    publish = DirectPublish(nc, 65_536)
    transport: Any = nc._transport
    wire: list[bytes] = []
    write, writelines = transport.write, transport.writelines

    def logged_write(data: bytes) -> None:
        wire.append(bytes(data))
        write(data)

    def logged_writelines(chunks: list[bytes]) -> None:
        wire.append(b"".join(chunks))
        writelines(chunks)

    transport.write, transport.writelines = logged_write, logged_writelines
    for turn in range(3):
        for i in range(20):
            assert publish.now(f"{uid}.f", b"%d" % (20 * turn + i))
        await asyncio.sleep(0)
    assert nc._pending_data_size > 0  # still growing turn to turn: held
    await publish.flush()
    stream = b"".join(wire)
    assert stream.count(b"PUB ") == 60
    assert stream.endswith(b"PING\r\n")  # after every message
    await wait_for(lambda: len(got) == 60, timeout=5)
    assert [data for _, data in got] == [b"%d" % n for n in range(60)]
    await nc.close()


async def test_a_burst_in_one_idle_turn_is_written_one_turn_later(
    nats_url: str, uid: str, conns: list[nats.NATS]
) -> None:
    nc = await connect(conns, nats_url)
    publish = DirectPublish(nc, 65_536)
    assert publish.now(f"{uid}.b", b"1")
    assert publish.now(f"{uid}.b", b"2")
    await asyncio.sleep(0)  # the check sees growth since the first append: one more turn
    assert nc._pending_data_size > 0
    await asyncio.sleep(0)
    assert nc._pending_data_size == 0
    await nc.close()


async def test_closing_with_a_check_pending_delivers_everything(
    nats_url: str, uid: str, conns: list[nats.NATS]
) -> None:
    _, got = await collect(conns, nats_url, f"{uid}.>")
    nc = await connect(conns, nats_url)
    publish = DirectPublish(nc, 65_536)
    for turn in range(5):
        for i in range(30):
            assert publish.now(f"{uid}.c", b"%d" % (30 * turn + i))
        await asyncio.sleep(0)
    assert nc._pending_data_size > 0
    await nc.close()  # nats-py writes its buffer before closing the socket
    await wait_for(lambda: len(got) == 150, timeout=10)
    assert [int(data) for _, data in got] == list(range(150))


async def test_push_writes_the_buffer_without_waiting_for_a_turn(
    nats_url: str, uid: str, conns: list[nats.NATS]
) -> None:
    _, got = await collect(conns, nats_url, f"{uid}.>")
    nc = await connect(conns, nats_url)
    publish = DirectPublish(nc)
    assert publish.many([(f"{uid}.p", b"%d" % i) for i in range(10)]) is None
    assert nc._pending_data_size > 0  # the flusher is woken, but runs only on a later turn
    publish.push()
    assert nc._pending_data_size == 0  # written now
    publish.push()  # nothing to write: nothing happens
    await wait_for(lambda: len(got) == 10, timeout=5)
    assert [data for _, data in got] == [b"%d" % i for i in range(10)]
    await nc.close()


async def test_push_behind_a_stalled_server_leaves_the_buffer_to_nats_py(
    fresh_nats: NatsServer, uid: str, conns: list[nats.NATS]
) -> None:
    """Once the socket has a backlog, `push` must not write past it (the transport would take
    everything, unbounded) but wake the flusher, which waits for the socket."""
    _, got = await collect(conns, fresh_nats.url, f"{uid}.>")
    nc = await connect(conns, fresh_nats.url, pending_size=64 << 20)
    publish = DirectPublish(nc)
    transport: Any = nc._transport
    chunk = [(f"{uid}.s", b"q" * 1000)] * 100
    sent = 0
    pid = fresh_nats.pid
    assert pid is not None
    await pause_process(pid)
    try:
        for _ in range(300):  # bounded: 30 MB at most, far more than the socket's buffers hold
            assert publish.many(chunk) is None
            sent += len(chunk)
            publish.push()
            if transport._io_writer.transport.get_write_buffer_size():
                break
        backlog = transport._io_writer.transport.get_write_buffer_size()
        assert backlog > 0
        assert publish.many(chunk) is None
        sent += len(chunk)
        publish.push()
        assert nc._pending_data_size > 0  # left in nats-py's buffer
        assert transport._io_writer.transport.get_write_buffer_size() == backlog
    finally:
        os.kill(pid, signal.SIGCONT)
    await wait_for(lambda: len(got) == sent, timeout=30)
    await nc.close()


async def test_push_on_a_closed_connection_does_nothing(
    nats_url: str, uid: str, conns: list[nats.NATS]
) -> None:
    nc = await connect(conns, nats_url)
    publish = DirectPublish(nc)
    await nc.close()
    publish.push()  # no error, nothing written
    assert nc.is_closed
