"""Feed and failover-group definitions: the TOML file read at start and the bodies of the REST API.

One Struct per adapter kind, a tagged union on `kind`; unknown fields are refused so a typo is an error,
not a silently ignored option. `check()` validates what types alone cannot (names are subject tokens,
URLs, ranges). The same classes decode the TOML `[[feed]]`/`[[group]]` tables and the JSON of
`POST /feeds` and `POST /groups`.

    [[feed]]
    name = "binance-a"
    kind = "binance"
    url = "ws://127.0.0.1:9001/stream"
    symbols = ["BTCUSDT", "ETHUSDT"]

    [[group]]
    name = "binance"
    members = ["binance-a", "binance-b"]     # primary first
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated, ClassVar, Literal, TypeAlias
from urllib.parse import urlsplit

import msgspec

from feed_handler.errors import ConfigError
from nexus.errors import SettingsError, SubjectError, clip
from nexus.settings import load_toml
from nexus.subjects import safe_symbol, token

DEFAULT_FEEDS = "default_feeds.toml"

Seconds = Annotated[float, msgspec.Meta(gt=0, description="seconds")]
Ratio = Annotated[float, msgspec.Meta(ge=0, le=1)]


class FeedBase(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, tag_field="kind"):
    """Fields every feed has: its name, the venue token its data is published under, reconnection
    policy (full-jitter backoff, circuit breaker) and the idle watchdog."""

    name: str
    venue: str = ""
    """Venue token of the subjects (md.p0.trade.<venue>.<symbol>); a per-kind default when empty."""
    symbols: list[str] = msgspec.field(default_factory=list)
    """Venue symbols (BTCUSDT, BTC-USD, ...); subjects use the subject-safe form."""
    autostart: bool = True
    stale_after: Seconds = 3.0
    """Silence after which the feed is `stale` and its health starts to fall."""
    idle_timeout: Seconds = 10.0
    """Silence after which the watchdog declares the feed dead and reconnects."""
    backoff_base: Seconds = 0.2
    backoff_cap: Seconds = 5.0
    breaker_failures: Annotated[int, msgspec.Meta(ge=1)] = 5
    """Consecutive failed connection attempts that open the circuit breaker."""
    breaker_reset: Seconds = 10.0
    """Cool-down after which an open breaker lets one trial connection through (half-open)."""

    default_venue: ClassVar[str] = ""

    def check(self) -> None:
        """Raise ConfigError naming the first invalid value."""
        _token(self.name, "name", self.name)
        if not self.venue:
            self.venue = self.default_venue or self.name
        _token(self.name, "venue", self.venue)
        if self.backoff_cap < self.backoff_base:
            raise ConfigError(self.name, "backoff_cap must be >= backoff_base")
        if self.idle_timeout <= self.stale_after:
            raise ConfigError(self.name, "idle_timeout must be greater than stale_after")
        seen: dict[str, str] = {}
        for sym in self.symbols:
            try:
                safe = safe_symbol(sym)
            except SubjectError as exc:
                raise ConfigError(self.name, f"symbol {sym!r}: {exc.reason}") from None
            if safe in seen:
                raise ConfigError(self.name, f"symbols {seen[safe]!r} and {sym!r} map to the same {safe!r}")
            seen[safe] = sym

    @property
    def kind(self) -> str:
        info = msgspec.inspect.type_info(type(self))
        assert isinstance(info, msgspec.inspect.StructType)
        return str(info.tag)


class SyntheticFeed(FeedBase, kw_only=True, forbid_unknown_fields=True, tag="synthetic"):
    """GBM mid prices per instrument (from ref_price at the instrument's vol), spreads and sizes on the
    instrument's tick and lot, trades at the touch, an L2 ladder of `book_levels` per side."""

    default_venue: ClassVar[str] = "sim"
    rate: Annotated[float, msgspec.Meta(ge=0)] = 200.0
    """Market events per second over all symbols; 0 = as fast as possible (benchmarks)."""
    trade_ratio: Ratio = 0.2
    """Fraction of events that are trades (the rest move the quote and the book)."""
    book_levels: Annotated[int, msgspec.Meta(ge=0, le=50)] = 5
    spread_ticks: Annotated[int, msgspec.Meta(ge=1)] = 2
    """Median spread in ticks (it varies between 1 and 3x this)."""
    vol_scale: Annotated[float, msgspec.Meta(gt=0)] = 1.0
    """Multiplies every instrument's vol (a livelier demo with > 1)."""
    seed: int | None = None
    instruments_file: str = ""
    """Instruments TOML; empty = the shared defaults (libs/nexus/data/instruments.toml)."""


class ReplayFeed(FeedBase, kw_only=True, forbid_unknown_fields=True, tag="replay"):
    """Replays a file: a recorded websocket session (crypto_ws format), NDJSON of Nexus market data, or
    a LOBSTER message CSV (its orderbook CSV beside it)."""

    path: str
    format: Literal["auto", "crypto_ws", "ndjson", "lobster"] = "auto"
    speed: Annotated[float, msgspec.Meta(ge=0)] = 1.0
    """1 = real time, 10 = ten times faster, 0 = as fast as possible."""
    loop: bool = False
    retime: bool = True
    """Shift event times so the file starts now (latency figures stay meaningful)."""
    lobster_symbol: str = ""
    """LOBSTER symbol; taken from the file name (AMZN_2012-06-21_...) when empty."""

    def check(self) -> None:
        if not Path(self.path).is_file():
            raise ConfigError(self.name, f"path {self.path!r} is not a file")
        if not self.venue:
            from feed_handler.protocols import lobster, recording

            self.venue = "lobster" if lobster.is_lobster(self.path) else recording.sniff(self.path)
        super().check()


class BinanceFeed(FeedBase, kw_only=True, forbid_unknown_fields=True, tag="binance"):
    """Binance spot combined streams: SUBSCRIBE on connect, aggTrade/trade, bookTicker and depth diffs
    synced to a REST snapshot with U/u update-id gap detection (a gap resyncs the symbol)."""

    default_venue: ClassVar[str] = "binance"
    url: str
    """Combined-stream endpoint, e.g. ws://127.0.0.1:9001/stream."""
    rest_url: str = ""
    """REST base for depth snapshots; defaults to the websocket's host and port over http."""
    channels: list[Literal["aggTrade", "trade", "bookTicker", "depth"]] = msgspec.field(
        default_factory=lambda: ["aggTrade", "bookTicker", "depth"]
    )
    depth_interval: Literal["100ms", "1000ms"] = "100ms"
    snapshot_limit: Annotated[int, msgspec.Meta(ge=1, le=5000)] = 1000
    snapshot_timeout: Seconds = 5.0

    def check(self) -> None:
        super().check()
        _url(self.name, "url", self.url, ("ws", "wss"))
        if not self.rest_url:
            parts = urlsplit(self.url)
            self.rest_url = f"{'https' if parts.scheme == 'wss' else 'http'}://{parts.netloc}"
        _url(self.name, "rest_url", self.rest_url, ("http", "https"))
        if not self.symbols:
            raise ConfigError(self.name, "symbols must not be empty")
        if not self.channels:
            raise ConfigError(self.name, "channels must not be empty")


class CoinbaseFeed(FeedBase, kw_only=True, forbid_unknown_fields=True, tag="coinbase"):
    """Coinbase Exchange websocket feed: subscribe to level2 (snapshot + l2update), matches and ticker."""

    default_venue: ClassVar[str] = "coinbase"
    url: str
    channels: list[Literal["level2", "matches", "ticker", "heartbeat"]] = msgspec.field(
        default_factory=lambda: ["level2", "matches", "ticker"]
    )

    def check(self) -> None:
        super().check()
        _url(self.name, "url", self.url, ("ws", "wss"))
        if not self.symbols:
            raise ConfigError(self.name, "symbols (product ids) must not be empty")
        if not self.channels:
            raise ConfigError(self.name, "channels must not be empty")


FeedConfig: TypeAlias = SyntheticFeed | ReplayFeed | BinanceFeed | CoinbaseFeed


class GroupConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A logical feed over several member feeds with the same symbols (primary first). One member is
    published at a time; the group fails over when the active member disconnects or its health falls
    below `failover_health`, and fails back to a better-ranked member once it has been healthy
    (>= `failback_health`) for `failback_after` seconds."""

    name: str
    members: list[str]
    venue: str = ""
    """Venue token the group publishes under; defaults to the primary's venue."""
    failover_health: Ratio = 0.3
    failback_health: Ratio = 0.8
    failback_after: Seconds = 3.0
    startup_grace: Seconds = 3.0
    """At start, how long the primary may take to connect before a live backup is published instead."""
    autostart: bool = True

    def check(self) -> None:
        _token(self.name, "name", self.name)
        if self.venue:
            _token(self.name, "venue", self.venue)
        if len(self.members) < 2:
            raise ConfigError(self.name, "a group needs at least two members (primary first)")
        if len(set(self.members)) != len(self.members):
            raise ConfigError(self.name, "members must be distinct")
        if self.failback_health <= self.failover_health:
            raise ConfigError(self.name, "failback_health must be greater than failover_health (hysteresis)")


class FeedsFile(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    feed: list[FeedConfig] = msgspec.field(default_factory=list)
    group: list[GroupConfig] = msgspec.field(default_factory=list)


def check_all(feeds: list[FeedConfig], groups: list[GroupConfig]) -> None:
    """Every feed and group on its own, then together: unique names, members exist, one group each."""
    names: set[str] = set()
    for cfg in feeds:
        cfg.check()
        if cfg.name in names:
            raise ConfigError(cfg.name, "duplicate feed name")
        names.add(cfg.name)
    by_name = {cfg.name: cfg for cfg in feeds}
    grouped: dict[str, str] = {}
    for group in groups:
        group.check()
        if group.name in names:
            raise ConfigError(group.name, "a group cannot have the name of a feed or another group")
        names.add(group.name)
        for member in group.members:
            if member not in by_name:
                raise ConfigError(group.name, f"member {member!r} is not a declared feed")
            if member in grouped:
                raise ConfigError(group.name, f"member {member!r} is already in group {grouped[member]!r}")
            grouped[member] = group.name
        if not group.venue:
            group.venue = by_name[group.members[0]].venue


def load_feeds(path: str | Path | None) -> FeedsFile:
    """The feeds TOML (NEXUS_CONFIG_FILE), or the packaged default (the synthetic `sim` feed)."""
    if path:
        parsed: FeedsFile = load_toml(path, FeedsFile)
    else:
        text = resources.files("feed_handler").joinpath(DEFAULT_FEEDS).read_text()
        parsed = msgspec.toml.decode(text, type=FeedsFile)
    try:
        check_all(parsed.feed, parsed.group)
    except ConfigError as exc:
        raise SettingsError("NEXUS_CONFIG_FILE", str(path or DEFAULT_FEEDS), str(exc)) from None
    return parsed


def _token(name: str, field: str, value: str) -> None:
    try:
        token(value)
    except SubjectError as exc:
        raise ConfigError(name, f"{field} {clip(value)!r}: {exc.reason}") from None


def _url(name: str, field: str, value: str, schemes: tuple[str, ...]) -> None:
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.hostname:
        raise ConfigError(name, f"{field} {value!r}: expected {'/'.join(schemes)}://host:port/...")
