"""Instruments: tick and lot sizes, quantity limits, and exact conversions to integer ticks and lots.

The matching engine works in integer ticks and lots (no float arithmetic); the wire carries decimals.
The conversions here are the one place where a decimal price becomes ticks, and they refuse values that
are not whole multiples (a price off the tick, a quantity that is not a multiple of the lot).

    instruments = load_instruments()                 # the packaged defaults, or NEXUS_INSTRUMENTS_FILE
    btc = instruments["BTC-USD"]
    btc.to_ticks(Decimal("64000.01"))  -> 6400001
    btc.to_ticks(Decimal("64000.015")) -> None       (off tick)
"""

from __future__ import annotations

from decimal import Decimal
from importlib import resources
from pathlib import Path

import msgspec

from nexus.errors import SettingsError
from nexus.settings import load_toml
from nexus.subjects import token

DEFAULT_FILE = "instruments.toml"


class Instrument(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    symbol: str
    tick: Decimal
    lot: Decimal
    max_qty: Decimal
    min_qty: Decimal = Decimal(0)
    ref_price: Decimal = Decimal(0)
    vol: float = 0.3
    tradable: bool = True

    def __post_init__(self) -> None:
        token(self.symbol)
        if self.tick <= 0 or self.lot <= 0:
            raise ValueError(f"{self.symbol}: tick and lot must be > 0")
        if self.max_qty < self.min_qty:
            raise ValueError(f"{self.symbol}: max_qty < min_qty")

    def to_ticks(self, price: Decimal) -> int | None:
        """Price as integer ticks, or None when it is not a whole number of ticks."""
        q, r = divmod(price, self.tick)
        return int(q) if r == 0 else None

    def to_lots(self, qty: Decimal) -> int | None:
        """Quantity as integer lots, or None when it is not a whole number of lots."""
        q, r = divmod(qty, self.lot)
        return int(q) if r == 0 else None

    def price(self, ticks: int) -> Decimal:
        return ticks * self.tick

    def qty(self, lots: int) -> Decimal:
        return lots * self.lot


class InstrumentsFile(msgspec.Struct, forbid_unknown_fields=True):
    instrument: list[Instrument]


def load_instruments(path: str | Path | None = None) -> dict[str, Instrument]:
    """Instruments by symbol from a TOML file (`[[instrument]]` tables); the packaged defaults if no path."""
    if path:
        parsed: InstrumentsFile = load_toml(path, InstrumentsFile, "NEXUS_INSTRUMENTS_FILE")
    else:
        default = resources.files("nexus.data").joinpath(DEFAULT_FILE)
        parsed = msgspec.toml.decode(default.read_bytes(), type=InstrumentsFile)
    out: dict[str, Instrument] = {}
    for inst in parsed.instrument:
        if inst.symbol in out:
            raise SettingsError("NEXUS_INSTRUMENTS_FILE", str(path), f"duplicate symbol {inst.symbol}")
        out[inst.symbol] = inst
    return out
