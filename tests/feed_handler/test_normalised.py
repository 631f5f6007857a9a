"""The handler's messages (feed_handler.normalised) are the nexus market-data messages on the wire: the
same tags, fields and order, byte for byte the same JSON, read back by the nexus decoders."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest

from feed_handler import normalised as hm
from nexus import messages as m
from nexus.messages import Side

PAIRS = [
    (hm.Trade, m.Trade),
    (hm.Quote, m.Quote),
    (hm.BookSnapshot, m.BookSnapshot),
    (hm.BookDelta, m.BookDelta),
]


@pytest.mark.parametrize(("twin", "public"), PAIRS)
def test_a_twin_has_the_tag_fields_and_order_of_its_nexus_type(twin: type, public: type) -> None:
    assert twin.__struct_config__.tag == public.__struct_config__.tag
    assert twin.__struct_config__.tag_field == public.__struct_config__.tag_field == "type"
    assert twin.__struct_fields__ == public.__struct_fields__
    assert twin.__struct_defaults__ == public.__struct_defaults__


def samples() -> list[hm.MarketDataMsg]:
    base = {"venue": "binance", "symbol": "BTC-USDT", "venue_symbol": "BTCUSDT", "seq": 42, "ts_event": 1}
    return [
        hm.Trade(
            **base,
            ts_recv=2,
            ts_pub=3,
            trade_id="7",
            price="43123.45000000",
            size="0.001",
            aggressor=Side.SELL,
        ),
        hm.Trade(**base, trade_id="8", price="1E+2", size="5"),
        hm.Quote(**base, bid_px="0.21437000", bid_sz="2800.00000000", ask_px=None, ask_sz="0"),
        hm.BookSnapshot(**base, bids=(("100.10", "1"), ("100.0", "2.50")), asks=(("100.2", "0.1"),)),
        hm.BookDelta(**base, bids=(("99", "0"),), asks=(), first_seq=40),
    ]


@pytest.mark.parametrize("msg", samples(), ids=lambda msg: type(msg).__name__)
def test_a_twin_encodes_as_the_nexus_message_with_the_same_decimals(msg: hm.MarketDataMsg) -> None:
    wire = m.encode(msg)  # type: ignore[arg-type]
    public = m.decode(m.MarketDataMsg, wire)
    assert type(public).__name__ == type(msg).__name__
    assert m.encode(public) == wire  # a Decimal keeps the venue's spelling ("100.0", "1E+2")
    for name in msg.__struct_fields__:
        mine, theirs = getattr(msg, name), getattr(public, name)
        if name in ("price", "size", "bid_px", "bid_sz", "ask_px", "ask_sz"):
            assert theirs == (None if mine is None else Decimal(mine))
        elif name in ("bids", "asks"):
            assert theirs == tuple((Decimal(p), Decimal(s)) for p, s in mine)
        else:
            assert theirs == mine
    assert msgspec.json.decode(wire, type=hm.MarketDataMsg) == msg


def test_the_handler_sets_publish_time_in_place() -> None:
    quote = samples()[2]
    quote.ts_pub = 99
    assert m.decode(m.Quote, m.encode(quote)).ts_pub == 99  # type: ignore[arg-type]
