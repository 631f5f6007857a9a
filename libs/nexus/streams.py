"""JetStream streams and consumers of the order flow, in one place so every service declares them alike.

    clients ──ord.in.<tier>.<account>.<symbol>──► ORD_IN   (Nats-Msg-Id = <account>:<client order id>)
    risk    ──ord.ok.<tier>.<account>.<symbol>──► ORD_OK   (the same id, so a re-forward is one message)
    engine  ── consumes ORD_IN ("direct" input) or ORD_OK ("approved" input), partition k of n
    engine k ─ord.eng.exec.<k>.<account>.<symbol>─► ENGINE_EXEC_<k>   ─republish─► ord.exec.<account>.<sym>
    engine k ─ord.eng.trade.<k>.<venue>.<symbol>──► ENGINE_TRADES_<k> ─republish─► md.p0.trade.<venue>.<sym>

ORD_IN and ORD_OK rewrite each command's subject so that a partition token comes first: nats-server's
`partition(n, symbol)` (FNV-1a of the symbol token, mod n, computed by the server, reproduced here by
`partition_of`). Engine partition k consumes `ord.inp.<k>.>` (plus account-wide cancel-alls, whose symbol
token `_all` hashes to one partition but concern every partition).

Each engine partition writes its outputs into streams of its own, which republish a message only once it
is stored (a rejected or duplicate message is neither stored nor republished). The partition is their only
writer and chains its messages with Nats-Expected-Last-Sequence, so each stream holds a gap-free prefix of
the partition's outputs in the engine's order: one acknowledgement per batch confirms the whole batch, and
after a crash the last stored message says exactly where publishing stopped.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RePublish,
    RetentionPolicy,
    StorageType,
    StreamConfig,
    SubjectTransform,
)

from nexus import subjects
from nexus.subjects import ALL_SYMBOLS, ANY

ORDER_ENTRY: Final = "ORD_IN"
"""Client order entry (ord.in.>)."""
ORDER_APPROVED: Final = "ORD_OK"
"""Commands risk approved (ord.ok.>)."""
ENGINE_EXEC: Final = "ENGINE_EXEC"
"""Exec reports of engine partition k go to ENGINE_EXEC_<k> (republished on ord.exec.<account>.<symbol>)."""
ENGINE_TRADES: Final = "ENGINE_TRADES"
"""Trades of engine partition k go to ENGINE_TRADES_<k> (republished on md.p0.trade.<venue>.<symbol>)."""

DEDUPE_WINDOW: Final = 120.0
"""Seconds within which a command with the same Nats-Msg-Id is stored once (a client's retry)."""
OUTPUT_DEDUPE_WINDOW: Final = 10.0
"""The same for an engine output. What keeps an output from being stored twice is its position: it carries
the expected last sequence of its stream, so the server stores it only right after its predecessor, once.
The ids are a second line for the seconds a resend takes. The server keeps every id of the window in
memory (~2.5 outputs per order): at 120 s, after six saturated runs, that was a third of its memory, and
it cost CPU and tail latency (BENCHMARKS.md, order engine)."""
MAX_AGE: Final = 7 * 24 * 3600.0
"""Commands are kept a week: the engine replays from its last snapshot, which is seconds old."""
MAX_BYTES: Final = 4 << 30

EngineInput = Literal["direct", "approved"]


def command_id(account: str, client_order_id: str) -> str:
    """The Nats-Msg-Id of an order command: a retried submit within the window is the same message."""
    return f"{account}:{client_order_id}"


def partition_of(symbol_token: str, partitions: int) -> int:
    """The partition nats-server's `{{partition(n, ...)}}` assigns to a symbol token (FNV-1a 32, mod n)."""
    h = 0x811C9DC5
    for byte in symbol_token.encode():
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h % partitions


def _durable(
    name: str, description: str, subject_list: list[str], dedupe_window: float, **extra: Any
) -> StreamConfig:
    """What every order-flow stream shares: file storage, a week kept, dedupe by Nats-Msg-Id, direct get."""
    return StreamConfig(
        name=name,
        description=description,
        subjects=subject_list,
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        max_age=MAX_AGE,
        max_bytes=MAX_BYTES,
        duplicate_window=dedupe_window,
        allow_direct=True,
        **extra,
    )


def _command_stream(name: str, approved: bool, partitions: int, dedupe_window: float) -> StreamConfig:
    source, dest = subjects.partition_transform(partitions, approved=approved)
    return _durable(
        name,
        f"order commands ({'approved by risk' if approved else 'client entry'}), "
        f"partitioned {partitions} way(s) by symbol",
        [source.rsplit(".", 3)[0] + ".>"],
        dedupe_window,
        subject_transform=SubjectTransform(src=source, dest=dest),
    )


def order_entry_stream(partitions: int = 1, dedupe_window: float = DEDUPE_WINDOW) -> StreamConfig:
    """ORD_IN: what clients send. Partitioned for the engine when it consumes client entry directly."""
    return _command_stream(ORDER_ENTRY, False, partitions, dedupe_window)


def order_approved_stream(partitions: int = 1, dedupe_window: float = DEDUPE_WINDOW) -> StreamConfig:
    """ORD_OK: what risk approved; the engine's input once risk sits in front of it."""
    return _command_stream(ORDER_APPROVED, True, partitions, dedupe_window)


def _output_stream(name: str, republish: tuple[str, str], what: str, dedupe_window: float) -> StreamConfig:
    source, dest = republish
    return _durable(
        name,
        f"{what}, republished once stored; one writer, chained by expected last sequence",
        [source],
        dedupe_window,
        republish=RePublish(src=source, dest=dest),
    )


def engine_exec_stream_name(partition: int) -> str:
    return f"{ENGINE_EXEC}_{partition}"


def engine_trades_stream_name(partition: int) -> str:
    return f"{ENGINE_TRADES}_{partition}"


def engine_exec_stream(partition: int, dedupe_window: float = OUTPUT_DEDUPE_WINDOW) -> StreamConfig:
    """ENGINE_EXEC_<k>: the exec reports of engine partition k."""
    return _output_stream(
        engine_exec_stream_name(partition),
        subjects.engine_exec_republish(partition),
        f"exec reports of order-engine partition {partition}",
        dedupe_window,
    )


def engine_trades_stream(partition: int, dedupe_window: float = OUTPUT_DEDUPE_WINDOW) -> StreamConfig:
    """ENGINE_TRADES_<k>: the trades of engine partition k."""
    return _output_stream(
        engine_trades_stream_name(partition),
        subjects.engine_trade_republish(partition),
        f"trades of order-engine partition {partition}",
        dedupe_window,
    )


def engine_input_stream(mode: EngineInput, partitions: int) -> StreamConfig:
    """The stream an engine with this input mode consumes."""
    return order_approved_stream(partitions) if mode == "approved" else order_entry_stream(partitions)


def engine_filter_subjects(mode: EngineInput, partition: int, partitions: int) -> list[str]:
    """What engine partition `partition` of `partitions` consumes from its input stream."""
    stored = subjects.order_approved_stored if mode == "approved" else subjects.order_entry_stored
    mine = stored(partition, ANY, ANY, ANY).rsplit(".", 3)[0] + ".>"
    everywhere = partition_of(ALL_SYMBOLS, partitions)
    if everywhere == partition:
        return [mine]
    return [mine, stored(everywhere, ANY, ANY, ALL_SYMBOLS)]


def engine_consumer_name(mode: EngineInput, partition: int, partitions: int) -> str:
    return f"order-engine-{mode}-{partition}of{partitions}"


def engine_consumer(
    mode: EngineInput,
    partition: int,
    partitions: int,
    *,
    start_seq: int,
    deliver_subject: str,
    max_ack_pending: int = 20_000,
    ack_wait: float = 30.0,
) -> ConsumerConfig:
    """The engine's push consumer: in stream order from `start_seq`, explicit acks (acking one message
    acks everything before it), at most `max_ack_pending` unacknowledged."""
    return ConsumerConfig(
        durable_name=engine_consumer_name(mode, partition, partitions),
        description="order engine input (recreated at start from the snapshot's sequence)",
        deliver_subject=deliver_subject,
        deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
        opt_start_seq=max(1, start_seq),
        ack_policy=AckPolicy.ALL,
        ack_wait=ack_wait,
        max_ack_pending=max_ack_pending,
        filter_subjects=engine_filter_subjects(mode, partition, partitions),
    )
