"""Every message type round-trips through the decoder of its stream, and the wire rules hold."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest

from nexus import messages as m
from nexus import schema
from tests.foundation.samples import SAMPLES

ROOT = Path(__file__).resolve().parents[2]


def test_every_public_message_has_a_sample() -> None:
    assert {type(s) for s in SAMPLES} == set(m.PUBLIC_MESSAGES)


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda s: type(s).__name__)
def test_round_trip_through_the_any_decoder(msg: m.Message) -> None:
    data = m.encode(msg)
    assert m.decode(m.AnyMessage, data) == msg
    assert m.decode(type(msg), data) == msg


@pytest.mark.parametrize(
    ("union", "kinds"),
    [
        (m.MarketDataMsg, (m.Trade, m.Quote, m.BookSnapshot, m.BookDelta)),
        (m.OrderCommandMsg, (m.NewOrder, m.CancelOrder, m.ReplaceOrder, m.CancelAll)),
    ],
)
def test_stream_unions_decode_each_member_to_its_type(union: Any, kinds: tuple[type, ...]) -> None:
    for msg in (s for s in SAMPLES if isinstance(s, kinds)):
        assert type(m.decode(union, m.encode(msg))) is type(msg)


def test_one_decoder_is_reused_per_union() -> None:
    assert m.decoder(m.MarketDataMsg) is m.decoder(m.MarketDataMsg)


def test_prices_are_decimal_strings_and_tags_are_present() -> None:
    raw = msgspec.json.decode(m.encode(SAMPLES[0]))
    assert raw["type"] == "trade"
    assert raw["v"] == 1
    assert raw["price"] == "43123.45"
    assert raw["aggressor"] == "buy"


def test_unknown_fields_from_a_newer_producer_are_ignored() -> None:
    raw = msgspec.json.decode(m.encode(SAMPLES[0]))
    raw["added_in_v2"] = {"anything": [1, 2]}
    assert m.decode(m.MarketDataMsg, msgspec.json.encode(raw)) == SAMPLES[0]


def test_messages_are_immutable() -> None:
    with pytest.raises(AttributeError):
        SAMPLES[0].price = Decimal(1)  # type: ignore[attr-defined, misc]


@pytest.mark.parametrize(
    "bad",
    [
        b"not json",
        b'{"type":"trade","venue":"x"}',  # missing fields
        b'{"type":"nope"}',  # unknown tag
        b'{"type":"trade","venue":"x","symbol":"A","venue_symbol":"A","trade_id":"1","price":"abc","size":"1"}',
        b'{"type":"trade","venue":"x","symbol":"A","venue_symbol":"A","trade_id":"1","price":"1","size":"1","ts_recv":-5}',
    ],
)
def test_bad_input_raises_a_decode_error(bad: bytes) -> None:
    with pytest.raises((msgspec.DecodeError, msgspec.ValidationError)):
        m.decode(m.MarketDataMsg, bad)


def test_committed_json_schemas_match_the_code(tmp_path: Path) -> None:
    """docs/schema is what external clients read: it must be regenerated when a message changes."""
    schema.write(tmp_path)
    committed = ROOT / "docs" / "schema"
    for path in sorted(tmp_path.iterdir()):
        assert (committed / path.name).read_text() == path.read_text(), (
            f"run `make schema`: {path.name} is stale"
        )
    assert {p.name for p in committed.iterdir()} == {p.name for p in tmp_path.iterdir()}


def test_schema_describes_decimals_as_strings() -> None:
    trade = schema.schemas()["trade"]
    props = trade["$defs"]["Trade"]["properties"]
    assert props["price"]["type"] == "string"
    assert props["price"]["format"] == "decimal"
