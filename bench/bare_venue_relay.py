"""A floor for the feed handler with venue parsing: the Binance session turned into Nexus messages and
published with nothing else in between.

    python bench/bare_venue_relay.py NATS_URL VENUE RECORDING

Every received frame of the recording, in a loop as fast as possible: the envelope and the payload
decoded by msgspec with prices and sizes kept as the venue's strings (no Decimal), one Nexus message
built from them (Trade, Quote or BookDelta, on the same subjects as the service), encoded and published
with nats-py's publish(); a yield to the loop every 64 frames. Nothing a correct handler cannot skip is
done here: no validation, no depth book (so no gap or crossing checks and no BookSnapshot at a resync),
no trade-id continuity, no priority queues, no conflation, no stats. The strings go into the messages'
Decimal fields as they are: msgspec encodes both to the same JSON string, so the bytes on the wire are
what the service sends. bench_feed.py counts what this process publishes with the same subscriber as the
service's figures: the most any Python handler of this design could publish of this session on this box.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import msgspec
import nats
import uvloop

from feed_handler.protocols import recording
from nexus import messages as m
from nexus import subjects

MS = 1_000_000


class _Envelope(msgspec.Struct):
    stream: str = ""
    data: msgspec.Raw = msgspec.Raw(b"")


class _BookTicker(msgspec.Struct):
    u: int
    s: str
    b: str
    B: str
    a: str
    A: str


class _AggTrade(msgspec.Struct):
    E: int
    s: str
    a: int
    p: str
    q: str
    T: int
    m: bool


class _Depth(msgspec.Struct):
    E: int
    s: str
    U: int
    u: int
    b: list[tuple[str, str]]
    a: list[tuple[str, str]]


async def relay(url: str, venue: str, path: str) -> None:
    nc = await nats.connect(url, pending_size=64 * 1024 * 1024)
    frames = [r.payload for r in recording.records(path) if r.kind == "recv"]
    envelope = msgspec.json.Decoder(_Envelope).decode
    book_ticker = msgspec.json.Decoder(_BookTicker).decode
    agg_trade = msgspec.json.Decoder(_AggTrade).decode
    depth = msgspec.json.Decoder(_Depth).decode
    encode, publish = m.encode, nc.publish
    safe = {vs: subjects.safe_symbol(vs) for vs in recording.symbols(path, "binance")}
    print("ready", flush=True)
    n = 0
    while True:
        for frame in frames:
            now = time.time_ns()
            env = envelope(frame)
            kind = env.stream.partition("@")[2]
            msg: Any
            if kind == "bookTicker":
                q = book_ticker(env.data)
                sym = safe[q.s]
                msg = m.Quote(
                    venue=venue,
                    symbol=sym,
                    venue_symbol=q.s,
                    seq=q.u,
                    ts_event=now,
                    ts_recv=now,
                    ts_pub=now,
                    bid_px=q.b,
                    bid_sz=q.B,
                    ask_px=q.a,
                    ask_sz=q.A,
                )
                await publish(subjects.quote(venue, sym), encode(msg))
            elif kind == "aggTrade":
                t = agg_trade(env.data)
                sym = safe[t.s]
                msg = m.Trade(
                    venue=venue,
                    symbol=sym,
                    venue_symbol=t.s,
                    seq=t.a,
                    ts_event=t.T * MS,
                    ts_recv=now,
                    ts_pub=now,
                    trade_id=str(t.a),
                    price=t.p,
                    size=t.q,
                    aggressor=m.Side.SELL if t.m else m.Side.BUY,
                )
                await publish(subjects.trade(venue, sym), encode(msg))
            elif kind.startswith("depth"):
                d = depth(env.data)
                sym = safe[d.s]
                msg = m.BookDelta(
                    venue=venue,
                    symbol=sym,
                    venue_symbol=d.s,
                    seq=d.u,
                    first_seq=d.U,
                    ts_event=d.E * MS,
                    ts_recv=now,
                    ts_pub=now,
                    bids=tuple(d.b),
                    asks=tuple(d.a),
                )
                await publish(subjects.book(venue, sym), encode(msg))
            n += 1
            if n % 64 == 0:
                await asyncio.sleep(0)


if __name__ == "__main__":
    uvloop.run(relay(sys.argv[1], sys.argv[2], sys.argv[3]))
