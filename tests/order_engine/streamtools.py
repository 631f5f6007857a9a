"""Reading the order-flow streams back in tests, and replaying them through a fresh engine."""

from __future__ import annotations

import contextlib
from decimal import Decimal
from pathlib import Path

import msgspec
import nats.errors
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from nexus import messages as m
from nexus.bus import MSG_ID
from nexus.instruments import Instrument
from order_engine.engine import MatchingEngine, Output
from order_engine.recovery import output_id


async def read_stream(js: JetStreamContext, stream: str, subject: str = ">") -> list[tuple[str, str, bytes]]:
    """Every message of a stream as (subject, Nats-Msg-Id, data), in stream order."""
    config = ConsumerConfig(
        deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE, inactive_threshold=30.0
    )
    psub = await js.pull_subscribe(subject, durable=None, stream=stream, config=config)
    out: list[tuple[str, str, bytes]] = []
    try:
        left = (await psub.consumer_info()).num_pending or 0
        while left > 0:
            for msg in await psub.fetch(min(1000, left), timeout=5):
                out.append((msg.subject, (msg.headers or {}).get(MSG_ID, ""), msg.data))
                left = msg.metadata.num_pending
    finally:
        with contextlib.suppress(nats.errors.Error):
            await psub.unsubscribe()
    return out


def replay(
    instruments: dict[str, Instrument], commands: list[tuple[str, bytes]], in_stream: str = "ORD_IN"
) -> tuple[MatchingEngine, dict[str, Output]]:
    """Run the stored commands (stream order) through a fresh engine: its outputs by output id."""
    engine = MatchingEngine(instruments, memory=20_000)
    decoder = m.decoder(m.OrderCommandMsg)
    outputs: dict[str, Output] = {}
    for seq, (subject, data) in enumerate(commands, 1):
        account = subject.split(".")[-2]
        try:
            cmd = decoder.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            continue
        assert cmd.account == account
        for i, out in enumerate(engine.process(cmd, 0)):
            outputs[output_id(in_stream, 0, 1, seq, i)] = out
    return engine, outputs


def timeless(out: Output) -> Output:
    """An output without its wall-clock timestamps (a replay runs at another time)."""
    if isinstance(out, m.Trade):
        return msgspec.structs.replace(out, ts_event=0, ts_recv=0, ts_pub=0)
    return msgspec.structs.replace(out, ts_event=0)


def instruments_toml(path: Path, instruments: dict[str, Instrument]) -> Path:
    lines = []
    for inst in instruments.values():
        lines += [
            "[[instrument]]",
            f'symbol = "{inst.symbol}"',
            *(
                f'{name} = "{getattr(inst, name)}"'
                for name in ("tick", "lot", "min_qty", "max_qty", "ref_price")
                if isinstance(getattr(inst, name), Decimal)
            ),
            f"tradable = {'true' if inst.tradable else 'false'}",
            "",
        ]
    path.write_text("\n".join(lines))
    return path
