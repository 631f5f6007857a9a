"""The floor under the order engine's end-to-end figures: the same durable chain with no engine in it.

    python bench/durable_relay.py NATS_URL

A process written with nats-py alone (it takes only the streams' dedupe windows from nexus.streams) that
does what the engine's transport does and nothing else.
Commands arrive from a JetStream stream (RELAY_IN, file storage, dedupe by Nats-Msg-Id) through a push
consumer, acked in batches (AckAll). For each, the same number of outputs as the engine stores for the
bench's workload (a resting sell: its accepted report; a buy IOC that fills it: accepted, the taker's and
the maker's filled reports and a trade) is stored in two streams (RELAY_EXEC, RELAY_TRADES: file storage,
each message chained with Nats-Expected-Last-Sequence, one PubAck per batch and stream), which republish
them once stored; the input is acked once the batch's outputs are stored. The reports carry only the
fields the client times (client_order_id, exec_type, ts_cmd, liquidity). No matching, no state, no
snapshots: what the bench measures through this process is what the box gives the engine's design before
the engine's own work. bench_engine_e2e.py runs it beside the engine, at the same rate, from the same
client.
"""

from __future__ import annotations

import asyncio
import sys

import msgspec
import nats
import uvloop
from nats.aio.msg import Msg
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    RePublish,
    StorageType,
    StreamConfig,
)

from nexus.streams import DEDUPE_WINDOW, OUTPUT_DEDUPE_WINDOW

IN_STREAM = "RELAY_IN"
IN_SUBJECTS = "relay.in.>"
OUTPUTS = {
    "RELAY_EXEC": ("relay.out.exec.>", "relay.exec.>"),
    "RELAY_TRADES": ("relay.out.trade.>", "relay.md.>"),
}
"""Output stream -> (subjects it stores, where it republishes them)."""
REPORTS = "relay.exec.>"
"""Where the client reads the reports (the engine's client reads every report of its symbol too)."""


class _Command(msgspec.Struct):
    client_order_id: str
    side: str
    ts: int = 0


class _Report(msgspec.Struct):
    client_order_id: str
    ts_cmd: int
    exec_type: str = "accepted"
    liquidity: str = ""


_encode = msgspec.json.Encoder().encode


class _Ack(msgspec.Struct):
    seq: int = 0
    error: dict[str, object] | None = None


def command_subject(account: str) -> str:
    """Where the client sends a command for the relay (stored in RELAY_IN)."""
    return f"relay.in.{account}"


def stream_configs() -> list[StreamConfig]:
    return [
        StreamConfig(
            name=IN_STREAM, subjects=[IN_SUBJECTS], storage=StorageType.FILE, duplicate_window=DEDUPE_WINDOW
        ),
        *(
            StreamConfig(
                name=name,
                subjects=[source],
                storage=StorageType.FILE,
                duplicate_window=OUTPUT_DEDUPE_WINDOW,
                republish=RePublish(src=source, dest=dest),
            )
            for name, (source, dest) in OUTPUTS.items()
        ),
    ]


def outputs(cmd: _Command) -> list[tuple[str, str, bytes]]:
    """(stream, subject, payload) of what the engine stores for this command of the bench's workload."""
    cid, ts = cmd.client_order_id, cmd.ts
    accepted = ("RELAY_EXEC", "relay.out.exec.accepted", _encode(_Report(cid, ts)))
    if cmd.side != "buy":
        return [accepted]
    return [
        accepted,
        ("RELAY_EXEC", "relay.out.exec.filled", _encode(_Report(cid, ts, "filled", "taker"))),
        ("RELAY_EXEC", "relay.out.exec.filled", _encode(_Report("maker-" + cid, ts, "filled", "maker"))),
        ("RELAY_TRADES", "relay.out.trade.x", _encode(_Report(cid, ts, "trade"))),
    ]


async def relay(url: str) -> None:
    nc = await nats.connect(url, pending_size=64 * 1024 * 1024)
    js = nc.jetstream()
    for config in stream_configs():
        await js.add_stream(config)
    decode = msgspec.json.Decoder(_Command).decode
    ack_decode = msgspec.json.Decoder(_Ack).decode
    arrived: list[Msg] = []
    wake = asyncio.Event()

    async def on_msg(msg: Msg) -> None:
        arrived.append(msg)
        wake.set()

    inbox = nc.new_inbox()
    await nc.subscribe(inbox, cb=on_msg, pending_msgs_limit=-1, pending_bytes_limit=-1)
    await js.add_consumer(
        IN_STREAM,
        ConsumerConfig(
            durable_name="relay",
            deliver_subject=inbox,
            deliver_policy=DeliverPolicy.NEW,
            ack_policy=AckPolicy.ALL,
            max_ack_pending=20_000,
        ),
    )
    fence_inbox = nc.new_inbox()
    fences: dict[str, asyncio.Future[bytes]] = {}

    async def on_fence(msg: Msg) -> None:
        fut = fences.pop(msg.subject, None)
        if fut is not None and not fut.done():
            fut.set_result(msg.data)

    await nc.subscribe(fence_inbox + ".*", cb=on_fence)
    last_seq = {name: (await js.stream_info(name)).state.last_seq for name in OUTPUTS}
    n = 0
    print("ready", flush=True)
    while True:
        if not arrived:
            wake.clear()
            await wake.wait()
        batch = arrived[:]
        del arrived[:]
        by_stream: dict[str, list[tuple[str, str, bytes]]] = {name: [] for name in OUTPUTS}
        for msg in batch:
            cmd = decode(msg.data)
            for i, out in enumerate(outputs(cmd)):
                by_stream[out[0]].append((f"out:{cmd.client_order_id}:{i}", out[1], out[2]))
        waits = []
        for stream, items in by_stream.items():
            if not items:
                continue
            n += 1
            reply = f"{fence_inbox}.{n}"
            fence: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
            fences[reply] = fence
            waits.append(fence)
            last = len(items) - 1
            for i, (msg_id, subject, payload) in enumerate(items):
                last_seq[stream] += 1
                await nc.publish(
                    subject,
                    payload,
                    reply=reply if i == last else "",
                    headers={"Nats-Msg-Id": msg_id, "Nats-Expected-Last-Sequence": str(last_seq[stream] - 1)},
                )
        for fence in waits:
            ack = ack_decode(await asyncio.wait_for(fence, 10))
            if ack.error is not None:
                raise SystemExit(f"relay: an output was not stored: {ack.error}")
        await batch[-1].ack()


if __name__ == "__main__":
    uvloop.run(relay(sys.argv[1]))
