"""Snapshots: an engine rebuilt from a snapshot behaves exactly like the one that never stopped."""

from __future__ import annotations

import itertools
from pathlib import Path

import msgspec

from order_engine import snapshot
from order_engine.engine import MatchingEngine
from order_engine.snapshot import Snapshot
from order_engine.store import SnapshotStore
from tests.order_engine.gen import INSTRUMENTS, commands


def _state(engine: MatchingEngine) -> bytes:
    return msgspec.msgpack.encode(snapshot.export(engine))


def _snapshot(engine: MatchingEngine, in_seq: int) -> Snapshot:
    return Snapshot(
        in_stream="ORD_IN",
        in_seq=in_seq,
        partition=0,
        partitions=1,
        engine=snapshot.export(engine),
    )


def test_an_engine_restored_from_a_snapshot_continues_exactly_like_the_original() -> None:
    stream = list(commands(seed=7, n=40_000))
    original = MatchingEngine(INSTRUMENTS, memory=2_000)
    for i, cmd in enumerate(stream[:20_000]):
        original.process(cmd, i)
    data = snapshot.encode(_snapshot(original, 20_000))

    restored = MatchingEngine(INSTRUMENTS, memory=2_000)
    snapshot.restore(restored, snapshot.decode(data).engine)
    # compared encoded: a rejected NaN price is in the state, and NaN != NaN
    assert _state(restored) == _state(original)
    for i, cmd in enumerate(stream[20_000:], 20_000):
        assert msgspec.json.encode(restored.process(cmd, i)) == msgspec.json.encode(
            original.process(cmd, i)
        ), i
    assert _state(restored) == _state(original)
    assert restored.query("acc1", "c39990", latest=True) == original.query("acc1", "c39990", latest=True)


def test_store_keeps_the_previous_snapshot_and_skips_a_torn_file(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path, "ORD_IN-0of1")
    assert store.load() == (None, [])
    engine = MatchingEngine(INSTRUMENTS)
    for i, cmd in enumerate(itertools.islice(commands(seed=3, n=500), 500)):
        engine.process(cmd, i)
    store.save(snapshot.encode(_snapshot(engine, 400)))
    store.save(snapshot.encode(_snapshot(engine, 500)))
    loaded, problems = store.load()
    assert loaded is not None
    assert (loaded.in_seq, problems) == (500, [])

    store.path.write_bytes(store.path.read_bytes()[:100])  # a torn write of the latest
    loaded, problems = store.load()
    assert loaded is not None
    assert loaded.in_seq == 400
    assert len(problems) == 1
