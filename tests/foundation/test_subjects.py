"""The subject scheme: valid tokens, the tiers, one subject per message, and no subject strings elsewhere."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest

from nexus import messages as m
from nexus import subjects
from nexus.errors import SubjectError
from nexus.subjects import Tier
from tests.foundation.samples import SAMPLES

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("venue_symbol", "safe"), [("BTC/USDT", "BTC-USDT"), ("BRK.B", "BRK_B"), ("ETH-USD", "ETH-USD")]
)
def test_symbols_map_to_subject_safe_tokens(venue_symbol: str, safe: str) -> None:
    assert subjects.safe_symbol(venue_symbol) == safe


@pytest.mark.parametrize("bad", ["", "a.b", "a b", "a*", ">", "é"])
def test_bad_tokens_are_refused(bad: str) -> None:
    with pytest.raises(SubjectError):
        subjects.token(bad)
    if bad not in ("*", ">"):
        with pytest.raises(SubjectError):
            subjects.trade("venue", bad)


def test_tiers_are_distinct_subject_prefixes() -> None:
    assert subjects.trade("v", "S").startswith("md.p0.")
    assert subjects.quote("v", "S").startswith("md.p1.")
    assert subjects.book("v", "S").startswith("md.p1.")
    assert subjects.feed_status("f").startswith("md.p2.")
    assert subjects.market_data(Tier.P0) == "md.p0.>"
    assert subjects.queue_group("risk", Tier.P0) == "risk.p0"


def test_wildcards_are_allowed_in_patterns() -> None:
    assert subjects.trade("*", "*") == "md.p0.trade.*.*"
    assert subjects.heartbeat("*", "*") == "sys.hb.*.*"


def test_cancels_travel_on_p0_and_new_orders_on_p1() -> None:
    new = m.NewOrder(account="a", client_order_id="1", symbol="X/Y", side=m.Side.BUY, qty=Decimal(1))
    cancel = m.CancelOrder(account="a", client_order_id="2", symbol="X/Y", orig_client_order_id="1")
    every = m.CancelAll(account="a", client_order_id="3")
    assert subjects.subject_for(new) == "ord.in.p1.a.X-Y"
    assert subjects.subject_for(cancel) == "ord.in.p0.a.X-Y"
    assert subjects.subject_for(every) == f"ord.in.p0.a.{subjects.ALL_SYMBOLS}"


def test_every_published_message_type_has_a_subject() -> None:
    for msg in SAMPLES:
        if isinstance(msg, m.ErrorReply):
            with pytest.raises(SubjectError):
                subjects.subject_for(msg)
        else:
            assert subjects.subject_for(msg)


# A string literal that starts like one of our subjects: md.p0..., ord.in..., sys.hb..., risk., pf.
_SUBJECT_LITERAL = re.compile(
    r"""["'](md|ord|sys|risk|pf)\.(p[0-2]|in|ok|exec|query|book|hb|alert|dlq|state|audit|target|solve)\b"""
)


def test_subjects_are_built_only_by_the_subjects_module() -> None:
    offenders = []
    for folder in ("libs", "services", "bench"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.name == "subjects.py" and path.parent.name == "nexus":
                continue
            for n, line in enumerate(path.read_text().splitlines(), 1):
                if _SUBJECT_LITERAL.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not offenders, "subject strings outside nexus/subjects.py:\n" + "\n".join(offenders)
