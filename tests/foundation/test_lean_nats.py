"""The benchmarks' bare protocol client (bench/lean_nats.py) against a real nats-server: what it receives
is what was published, payloads of any size, with and without headers, in order."""

from __future__ import annotations

import sys
from pathlib import Path

import nats

from nexus.testing import wait_for

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from lean_nats import LeanConnection


async def test_messages_with_and_without_headers_arrive_whole_and_in_order(nats_url: str, uid: str) -> None:
    got: list[tuple[int, bytes]] = []
    conn = await LeanConnection.open(nats_url, lambda sid, data: got.append((sid, data)))
    try:
        conn.subscribe(f"{uid}.lean", 1)
        conn.subscribe(f"{uid}.py", 2)
        await conn.flush()
        sent = [b"%d:" % i + b"x" * (i * 37 % 70_000) for i in range(300)]  # up to 70 KB: split reads
        for i, payload in enumerate(sent):
            conn.hpub(f"{uid}.lean", b"Nats-Msg-Id: m%d" % i, payload, reply=f"{uid}.r")
        nc = await nats.connect(nats_url)
        await nc.publish(f"{uid}.py", b"plain")  # a MSG without headers, from another client
        await nc.flush()
        await nc.close()
        await conn.flush()
        await wait_for(lambda: len(got) == len(sent) + 1, timeout=5)
        assert [data for sid, data in got if sid == 1] == sent  # headers skipped, payloads exact
        assert (2, b"plain") in got
        assert conn.received == len(sent) + 1
        assert conn.errors == []
    finally:
        conn.close()
