"""NDJSON of Nexus market data: one Trade/Quote/BookSnapshot/BookDelta JSON object per line (the wire
format, e.g. saved from `nats sub`); replayed in the order of the file, paced by `ts_event`.

Each line is decoded as the nexus message, which checks every field (decimals included, as strings or
as JSON numbers), and then turned into the handler's twin of it (feed_handler.normalised), whose
decimals are the Decimals' text."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import msgspec

from feed_handler.normalised import MarketDataMsg
from feed_handler.protocols.base import Output, classify
from nexus import messages

_decoder = messages.decoder(messages.MarketDataMsg)


def read(path: str | Path, out: Output) -> Iterator[tuple[int, MarketDataMsg]]:
    """(event time ns, message) per line; undecodable lines are reported to `out` and skipped."""
    with open(path, "rb") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                checked = _decoder.decode(line)
                msg = msgspec.convert(msgspec.to_builtins(checked), MarketDataMsg)
            except messages.DECODE_ERRORS as exc:
                out.bad_input(classify(exc), line)
                continue
            yield msg.ts_event or msg.ts_recv, msg
