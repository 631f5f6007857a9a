"""Risk limits: what the TOML file says, what REST changes at runtime, and the resolved view a check reads.

    limits = load_limits("limits.toml")             # or the packaged defaults (limits.toml beside this file)
    view = limits.account("alice")                  # resolved, cached until the next change
    view.max_open_orders, view.symbol("BTC-USD").max_order_qty

The file:

    unknown_accounts = "defaults"        # an account not listed trades on [defaults]; "reject" refuses it

    [defaults]                           # every account
    max_notional = "1000000"             # per order, in the quote currency
    orders_per_sec = 100                 # new orders (token bucket; burst = order_burst)
    ...
    [defaults.symbol.BTC-USD]            # one symbol, every account
    max_order_qty = "10"
    max_position = "50"

    [account.alice]                      # one account: only what differs from [defaults]
    max_open_orders = 2000
    [account.alice.symbol.BTC-USD]
    max_position = "20"

A field left out falls back, most specific first: account+symbol, defaults+symbol, account, defaults, the
built-in value below. Money and quantities are decimals (strings in TOML, like on the wire); `None`
(left out) means "no limit" for the limits that have no built-in value.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_FLOOR, Context, Decimal
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from nexus.errors import SettingsError
from nexus.instruments import Instrument
from nexus.settings import load_toml, var_name
from nexus.subjects import token

NonNegative = Decimal
"""Checked in __post_init__ (msgspec constraints do not apply to Decimal)."""
Rate = Annotated[float, msgspec.Meta(gt=0)]
Count = Annotated[int, msgspec.Meta(ge=0)]
Percent = Annotated[float, msgspec.Meta(gt=0, le=100)]

DEFAULT_FILE = "limits.toml"


UNLIMITED = Decimal("Infinity")
ROUND_DOWN = Context(rounding=ROUND_FLOOR)
"""Divisions of limits by prices or rates, rounded toward the safe side."""


class SymbolLimits(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """Per-symbol limits (and per-symbol overrides of the price collar)."""

    tradable: bool | None = None
    max_order_qty: NonNegative | None = None
    """Largest quantity of one order (also capped by the instrument's max_qty)."""
    max_position: NonNegative | None = None
    """Largest absolute position, counting every open order on the side that grows it."""
    collar_pct: Percent | None = None
    collar_ticks: Count | None = None

    def __post_init__(self) -> None:
        _non_negative(self, ("max_order_qty", "max_position"))


class AccountLimits(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """Account-wide limits; `symbol` holds per-symbol ones. Every field is optional (falls back)."""

    max_notional: NonNegative | None = None
    """Largest notional (price x quantity) of one order."""
    max_gross_exposure: NonNegative | None = None
    """Sum over symbols of |position| at the mark, each side's open orders counted as if filled."""
    max_net_exposure: NonNegative | None = None
    """|Sum of signed positions at the mark|, with every open buy (or every open sell) filled."""
    credit_limit: NonNegative | None = None
    """Buying power: worst-case gross exposure x margin_rate must stay within credit + today's P&L."""
    margin_rate: Decimal | None = None
    """A finite number > 0."""
    orders_per_sec: Rate | None = None
    order_burst: Count | None = None
    modifies_per_sec: Rate | None = None
    modify_burst: Count | None = None
    max_open_orders: Count | None = None
    daily_loss_limit: NonNegative | None = None
    """New orders that do not reduce a position are refused once today's realised + unrealised P&L is
    at or below minus this."""
    collar_pct: Percent | None = None
    """Limit prices must be within this percentage of the reference price (or within collar_ticks)."""
    collar_ticks: Count | None = None
    require_reference: bool | None = None
    """Refuse orders on a symbol without a reference price (NO_REFERENCE_PRICE); else skip the collar."""
    symbol: dict[str, SymbolLimits] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        _non_negative(
            self,
            ("max_notional", "max_gross_exposure", "max_net_exposure", "credit_limit", "daily_loss_limit"),
        )
        rate = self.margin_rate
        if rate is not None and (not rate.is_finite() or rate <= 0):  # NaN would raise on compare
            raise ValueError(f"margin_rate must be a number > 0, got {rate}")


def _non_negative(limits: msgspec.Struct, fields: tuple[str, ...]) -> None:
    for field in fields:
        value = getattr(limits, field)
        if value is not None and (not value.is_finite() or value < 0):
            raise ValueError(f"{field} must be a number >= 0, got {value}")


BUILT_IN = AccountLimits(
    margin_rate=Decimal(1),
    orders_per_sec=50.0,
    order_burst=100,
    modifies_per_sec=50.0,
    modify_burst=100,
    max_open_orders=200,
    collar_pct=10.0,
    collar_ticks=0,
    require_reference=True,
)
"""The values used when neither the account nor [defaults] sets them (the rest default to no limit)."""


class LimitsFile(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    unknown_accounts: Literal["defaults", "reject"] = "defaults"
    defaults: AccountLimits = msgspec.field(default_factory=AccountLimits)
    account: dict[str, AccountLimits] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, acct in {"defaults": self.defaults, **self.account}.items():
            token(name)
            for symbol in acct.symbol:
                token(symbol)


class SymbolView:
    """One account's resolved limits on one symbol, with what the checks need of the instrument."""

    __slots__ = (
        "collar_at",
        "collar_band",
        "collar_high",
        "collar_low",
        "collar_pct",
        "collar_ticks",
        "inst",
        "least_qty",
        "lot",
        "max_notional",
        "max_order_qty",
        "max_position",
        "min_position",
        "min_qty",
        "notional_qty",
        "tick",
        "tradable",
    )

    def __init__(self, inst: Instrument, layers: list[SymbolLimits], account: AccountView) -> None:
        def pick(field: str) -> Any:
            for layer in layers:
                value = getattr(layer, field)
                if value is not None:
                    return value
            return None

        self.inst = inst
        self.tick = inst.tick
        self.lot = inst.lot
        self.min_qty = inst.min_qty
        self.least_qty = max(inst.min_qty, inst.lot)
        """The smallest quantity an order may have: a positive multiple of the lot, at least min_qty."""
        self.tradable: bool = inst.tradable and pick("tradable") is not False
        cap = pick("max_order_qty")
        self.max_order_qty: Decimal = inst.max_qty if cap is None else min(cap, inst.max_qty)
        self.max_position: Decimal | None = pick("max_position")
        self.min_position = Decimal(0) if self.max_position is None else -self.max_position
        """The cap on the short side: -max_position (unused without one)."""
        pct = pick("collar_pct")
        ticks = pick("collar_ticks")
        self.collar_pct = Decimal(str(account.collar_pct if pct is None else pct)) / 100
        self.collar_ticks: int = account.collar_ticks if ticks is None else ticks
        self.collar_band: Decimal = self.collar_ticks * inst.tick
        """collar_ticks as a price distance."""
        self.max_notional = account.max_notional
        self.collar_at: Decimal | None = None
        """The mark `collar_low`..`collar_high` and `notional_qty` were worked out for (`set_collar`)."""
        self.collar_low = self.collar_high = Decimal(0)
        self.notional_qty = Decimal(0)
        """The largest quantity whose notional at any price in the band is within max_notional (rounded
        down)."""

    def set_collar(self, mark: Decimal) -> None:
        """The prices a limit order may have around `mark`: within collar_pct of it, or collar_ticks
        ticks when that is wider."""
        band = mark * self.collar_pct
        if self.collar_band > band:
            band = self.collar_band
        self.collar_at, self.collar_low, self.collar_high = mark, mark - band, mark + band
        cap = self.max_notional
        self.notional_qty = UNLIMITED if cap is None else ROUND_DOWN.divide(cap, self.collar_high)


class AccountView:
    """An account's resolved account-wide limits; `symbol(s)` resolves (and caches) per-symbol ones."""

    __slots__ = (
        "_instruments",
        "_layers",
        "collar_pct",
        "collar_ticks",
        "credit_limit",
        "daily_loss_limit",
        "margin_rate",
        "max_gross_exposure",
        "max_net_exposure",
        "max_notional",
        "max_open_orders",
        "modifies_per_sec",
        "modify_burst",
        "name",
        "order_burst",
        "orders_per_sec",
        "require_reference",
        "symbols",
    )

    def __init__(self, name: str, layers: list[AccountLimits], instruments: Mapping[str, Instrument]) -> None:
        self.name = name
        self._layers = layers
        self._instruments = instruments
        self.symbols: dict[str, SymbolView | None] = {}
        """Resolved per-symbol limits, filled by `symbol()` (read directly on the hot path)."""

        def pick(field: str) -> Any:
            return next((v for v in (getattr(layer, field) for layer in layers) if v is not None), None)

        # the built-in layer gives a value to each field typed without None here
        self.max_notional: Decimal | None = pick("max_notional")
        self.max_gross_exposure: Decimal | None = pick("max_gross_exposure")
        self.max_net_exposure: Decimal | None = pick("max_net_exposure")
        self.credit_limit: Decimal | None = pick("credit_limit")
        self.margin_rate: Decimal = pick("margin_rate")
        self.orders_per_sec: float = pick("orders_per_sec")
        self.order_burst: int = pick("order_burst")
        self.modifies_per_sec: float = pick("modifies_per_sec")
        self.modify_burst: int = pick("modify_burst")
        self.max_open_orders: int = pick("max_open_orders")
        self.daily_loss_limit: Decimal | None = pick("daily_loss_limit")
        self.collar_pct: float = pick("collar_pct")
        self.collar_ticks: int = pick("collar_ticks")
        self.require_reference: bool = pick("require_reference")

    def symbol(self, symbol: str) -> SymbolView | None:
        """Resolved limits on `symbol`; None when it is not a known instrument."""
        try:
            return self.symbols[symbol]
        except KeyError:
            pass
        inst = self._instruments.get(symbol)
        view = None
        if inst is not None:
            per_symbol = [layer.symbol[symbol] for layer in self._layers if symbol in layer.symbol]
            view = SymbolView(inst, per_symbol, self)
        self.symbols[symbol] = view
        return view


class Limits:
    """The limits in force: the file as loaded plus runtime changes, resolved per account on demand."""

    def __init__(self, config: LimitsFile, instruments: Mapping[str, Instrument]) -> None:
        self.config = config
        self.instruments = instruments
        self._views: dict[str, AccountView | None] = {}
        self.version = 0
        """Bumped by every change; checks compare it to drop what they cached."""

    def account(self, name: str) -> AccountView | None:
        """The account's resolved limits; None when unknown accounts are refused and it is not listed."""
        try:
            return self._views[name]
        except KeyError:
            pass
        own = self.config.account.get(name)
        if own is None and self.config.unknown_accounts == "reject":
            view = None
        else:
            layers = [own, self.config.defaults, BUILT_IN] if own else [self.config.defaults, BUILT_IN]
            view = AccountView(name, layers, self.instruments)
        self._views[name] = view
        return view

    def update(self, scope: str, change: AccountLimits) -> list[tuple[str, str, str]]:
        """Apply `change` to `scope` ("defaults" or an account name): the fields it sets replace the
        current ones (per-symbol fields merge per symbol). Returns (field, old, new) for each change."""
        token(scope)
        current = self.config.defaults if scope == "defaults" else self.config.account.get(scope)
        before = msgspec.to_builtins(current) if current is not None else {}
        after = dict(before)
        incoming = msgspec.to_builtins(change)
        symbols = dict(after.get("symbol", {}))
        for sym, fields in incoming.pop("symbol", {}).items():
            token(sym)
            symbols[sym] = {**symbols.get(sym, {}), **fields}
        after.update(incoming)
        if symbols:
            after["symbol"] = symbols
        merged = msgspec.convert(after, AccountLimits, strict=False)
        if scope == "defaults":
            self.config.defaults = merged
        else:
            self.config.account[scope] = merged
        self._views.clear()
        self.version += 1
        return diff(before, msgspec.to_builtins(merged))

    def as_data(self) -> dict[str, Any]:
        """The whole configuration in force as plain data."""
        data: dict[str, Any] = msgspec.to_builtins(self.config)
        return data


def diff(before: Mapping[str, Any], after: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str, str]]:
    """(field, old, new) for every field that differs, nested per-symbol fields as `symbol.BTC-USD.x`."""
    out: list[tuple[str, str, str]] = []
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if isinstance(old, Mapping) or isinstance(new, Mapping):
            out += diff(old or {}, new or {}, f"{prefix}{key}.")
        elif old != new:
            out.append((f"{prefix}{key}", "" if old is None else str(old), "" if new is None else str(new)))
    return out


def load_limits(path: str | Path | None, instruments: Mapping[str, Instrument]) -> Limits:
    """The limits file at `path` (NEXUS_CONFIG_FILE), or the packaged defaults when empty."""
    variable = var_name("config_file")
    if path:
        config: LimitsFile = load_toml(path, LimitsFile, variable)
    else:
        data = resources.files("risk").joinpath(DEFAULT_FILE).read_bytes()
        config = msgspec.toml.decode(data, type=LimitsFile, strict=False)
    for name, acct in {"defaults": config.defaults, **config.account}.items():
        unknown = sorted(set(acct.symbol) - set(instruments))
        if unknown:
            raise SettingsError(variable, str(path or DEFAULT_FILE), f"{name}: unknown symbols {unknown}")
    return Limits(config, instruments)
