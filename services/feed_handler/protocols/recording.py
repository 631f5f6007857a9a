"""The recorded websocket sessions of ../shared/data/crypto_ws (cryptofeed's raw-data format).

One record per line:
    configuration: {...}                              the recorder's settings
    wss://URL <-> <unix_ts>                           connection opened
    wss://URL <- <unix_ts>: <json>                    a message the client sent (subscribe)
    <unix_ts>: <json>                                 a message received, with its receive time
    https://URL -> <unix_ts>: <json>                  a REST response (an order book snapshot)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs, urlsplit

import msgspec

Kind = Literal["config", "open", "sent", "recv", "rest"]


@dataclass(frozen=True, slots=True)
class Record:
    kind: Kind
    ts: float
    """Local time of the record (seconds since the epoch); 0 for the configuration line."""
    payload: bytes = b""
    url: str = ""

    @property
    def rest_symbol(self) -> str:
        """The `symbol=` of a REST request URL (a Binance depth snapshot)."""
        return parse_qs(urlsplit(self.url).query).get("symbol", [""])[0]


class RecordingError(ValueError):
    def __init__(self, line: int, reason: str) -> None:
        self.line = line
        self.reason = reason
        super().__init__(f"line {line}: {reason}")


def parse_line(line: bytes, lineno: int = 0) -> Record | None:
    """One line as a Record (None for a blank line). Raises RecordingError for a line of no known shape."""
    line = line.rstrip(b"\r\n")
    if not line.strip():
        return None
    try:
        if line[:1].isdigit():
            ts, sep, payload = line.partition(b": ")
            if sep:
                return Record("recv", float(ts), payload)
        elif line.startswith(b"configuration: "):
            return Record("config", 0.0, line[len(b"configuration: ") :])
        elif line.startswith((b"wss://", b"ws://", b"https://", b"http://")):
            url, _, rest = line.partition(b" ")
            if rest.startswith(b"<-> "):
                return Record("open", float(rest[4:]), b"", url.decode())
            if rest.startswith((b"<- ", b"-> ")):
                ts, sep, payload = rest[3:].partition(b": ")
                if sep:
                    kind: Kind = "sent" if rest.startswith(b"<- ") else "rest"
                    return Record(kind, float(ts), payload, url.decode())
    except ValueError:
        pass
    raise RecordingError(lineno, f"not a record: {line[:80]!r}")


def records(path: str | Path) -> Iterator[Record]:
    with open(path, "rb") as f:
        for n, line in enumerate(f, 1):
            rec = parse_line(line, n)
            if rec is not None:
                yield rec


def sniff(path: str | Path, lines: int = 20) -> str:
    """The venue of a recording from the URLs of its first records: "binance", "coinbase", or "" when
    the file is not a recording (or not of a known venue)."""
    with open(path, "rb") as f:
        head = [f.readline() for _ in range(lines)]
    urls = []
    for n, line in enumerate(head, 1):
        if not line.strip():
            continue
        try:
            rec = parse_line(line, n)
        except RecordingError:
            return ""
        if rec is not None and rec.url:
            urls.append(rec.url.lower())
    for venue in ("binance", "coinbase"):
        if any(venue in url for url in urls):
            return venue
    return ""


def symbols(path: str | Path, venue: str) -> list[str]:
    """The symbols a recording subscribed to: Binance from the stream names in the connect URL,
    Coinbase from the product ids of the subscribe messages."""
    found: dict[str, None] = {}
    for rec in records(path):
        if venue == "binance" and rec.kind == "open":
            streams = parse_qs(urlsplit(rec.url).query).get("streams", [""])[0]
            for stream in streams.split("/"):
                if stream:
                    found[stream.split("@")[0].upper()] = None
        elif venue == "coinbase" and rec.kind == "sent":
            msg = msgspec.json.decode(rec.payload)
            for product in msg.get("product_ids", []):
                found[product] = None
        elif rec.kind == "recv":
            break
    return list(found)
