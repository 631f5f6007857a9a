"""NDJSON of Nexus market data: one Trade/Quote/BookSnapshot/BookDelta JSON object per line (the wire
format, e.g. saved from `nats sub`); replayed in the order of the file, paced by `ts_event`.

Each line is decoded as the nexus message (which checks every field, decimals included) and then as the
handler's own twin of it (feed_handler.normalised), whose decimals are the line's strings."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import msgspec

from feed_handler.normalised import MarketDataMsg
from feed_handler.protocols.base import Output, classify
from nexus import messages

_check = messages.decoder(messages.MarketDataMsg)
_decoder = msgspec.json.Decoder(MarketDataMsg)


def read(path: str | Path, out: Output) -> Iterator[tuple[int, MarketDataMsg]]:
    """(event time ns, message) per line; undecodable lines are reported to `out` and skipped."""
    with open(path, "rb") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                _check.decode(line)
                msg = _decoder.decode(line)
            except msgspec.DecodeError as exc:
                out.bad_input(classify(exc), line)
                continue
            yield msg.ts_event or msg.ts_recv, msg
