"""Instruments: exact decimal <-> integer tick/lot conversions and clear config errors."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from nexus.errors import SettingsError
from nexus.instruments import load_instruments


def test_packaged_defaults_load_and_convert_exactly() -> None:
    instruments = load_instruments()
    btc = instruments["BTC-USD"]
    assert btc.to_ticks(Decimal("64000.01")) == 6_400_001
    assert btc.to_ticks(Decimal("64000.015")) is None
    assert btc.to_lots(Decimal("0.0125")) == 125
    assert btc.to_lots(Decimal("0.00005")) is None
    assert btc.price(6_400_001) == Decimal("64000.01")
    assert btc.qty(125) == Decimal("0.0125")
    eur = instruments["EUR-USD"]
    assert eur.to_ticks(Decimal("1.08451")) == 108_451
    assert eur.to_lots(Decimal("2500")) is None
    assert all(i.ref_price > 0 and i.to_ticks(i.ref_price) is not None for i in instruments.values())


def test_a_bad_instruments_file_is_refused_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "i.toml"
    path.write_text('[[instrument]]\nsymbol = "X"\ntick = "0"\nlot = "1"\nmax_qty = "5"\n')
    with pytest.raises(SettingsError, match="tick and lot must be > 0"):
        load_instruments(path)
    path.write_text('[[instrument]]\nsymbol = "X/Y"\ntick = "1"\nlot = "1"\nmax_qty = "5"\n')
    with pytest.raises(SettingsError, match="not a valid subject token"):
        load_instruments(path)
    path.write_text(('[[instrument]]\nsymbol = "X"\ntick = "1"\nlot = "1"\nmax_qty = "5"\n') * 2)
    with pytest.raises(SettingsError, match="duplicate symbol X"):
        load_instruments(path)
