"""Feed definitions: the TOML file, the default `sim` feed, and errors that name the problem."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from feed_handler.config import (
    BinanceFeed,
    FeedConfig,
    FeedsFile,
    GroupConfig,
    ReplayFeed,
    SyntheticFeed,
    check_all,
    load_feeds,
)
from feed_handler.errors import ConfigError
from feed_handler.service import FeedHandlerSettings
from nexus.errors import SettingsError
from nexus.settings import load_settings
from tests.feed_handler.helpers import BINANCE_REC, LOBSTER_MSG


def test_the_default_feeds_are_the_synthetic_sim_venue() -> None:
    feeds = load_feeds(None)
    assert [(f.name, f.kind, f.venue) for f in feeds.feed] == [("sim", "synthetic", "sim")]
    assert feeds.group == []


def test_a_feeds_file_with_every_kind_and_a_group(tmp_path: Path) -> None:
    path = tmp_path / "feeds.toml"
    path.write_text(
        f"""
[[feed]]
name = "bin-a"
kind = "binance"
url = "ws://127.0.0.1:9001/stream"
symbols = ["BTCUSDT"]

[[feed]]
name = "bin-b"
kind = "binance"
url = "ws://127.0.0.1:9002/stream"
symbols = ["BTCUSDT"]

[[feed]]
name = "cb"
kind = "coinbase"
url = "ws://127.0.0.1:9003"
symbols = ["BTC-USD"]

[[feed]]
name = "rec"
kind = "replay"
path = "{BINANCE_REC}"
speed = 10

[[feed]]
name = "amzn"
kind = "replay"
path = "{LOBSTER_MSG}"
speed = 0

[[group]]
name = "binance"
members = ["bin-a", "bin-b"]
"""
    )
    feeds = load_feeds(path)
    by_name = {f.name: f for f in feeds.feed}
    assert isinstance(by_name["bin-a"], BinanceFeed)
    assert by_name["bin-a"].rest_url == "http://127.0.0.1:9001"
    assert by_name["bin-a"].venue == "binance"
    assert by_name["cb"].venue == "coinbase"
    assert by_name["rec"].venue == "binance"
    assert by_name["amzn"].venue == "lobster"
    assert feeds.group[0].venue == "binance"


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"name": "x", "kind": "telepathy"}, "Invalid value 'telepathy'"),
        ({"name": "x", "kind": "synthetic", "rate": -1}, "rate"),
        ({"name": "x", "kind": "synthetic", "colour": "red"}, "unknown field `colour`"),
        ({"name": "x", "kind": "binance", "symbols": ["A"]}, "missing required field `url`"),
    ],
)
def test_definitions_of_the_wrong_shape_are_refused_with_the_reason(
    body: dict[str, object], needle: str
) -> None:
    with pytest.raises(msgspec.ValidationError, match=needle):
        msgspec.convert(body, FeedConfig)


@pytest.mark.parametrize(
    ("feed", "needle"),
    [
        (SyntheticFeed(name="bad name"), "name 'bad name'"),
        (BinanceFeed(name="b", url="http://x", symbols=["A"]), "url 'http://x'"),
        (BinanceFeed(name="b", url="ws://127.0.0.1:1/stream", symbols=[]), "symbols must not be empty"),
        (SyntheticFeed(name="s", symbols=["BTC/USD", "BTC-USD"]), "map to the same"),
        (SyntheticFeed(name="s", stale_after=5, idle_timeout=2), "idle_timeout"),
        (ReplayFeed(name="r", path="/nonexistent/file"), "is not a file"),
    ],
)
def test_definitions_with_bad_values_are_refused_naming_them(feed: FeedConfig, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        feed.check()


def test_groups_need_declared_distinct_members_each_in_one_group() -> None:
    a, b = SyntheticFeed(name="a"), SyntheticFeed(name="b")
    with pytest.raises(ConfigError, match="member 'c' is not a declared feed"):
        check_all([a, b], [GroupConfig(name="g", members=["a", "c"])])
    with pytest.raises(ConfigError, match="already in group"):
        check_all(
            [a, b], [GroupConfig(name="g", members=["a", "b"]), GroupConfig(name="h", members=["b", "a"])]
        )
    with pytest.raises(ConfigError, match="hysteresis"):
        check_all(
            [a, b], [GroupConfig(name="g", members=["a", "b"], failover_health=0.9, failback_health=0.5)]
        )
    with pytest.raises(ConfigError, match="name of a feed"):
        check_all([a, b], [GroupConfig(name="a", members=["a", "b"])])


def test_a_bad_feeds_file_stops_the_service_at_start_naming_the_variable(tmp_path: Path) -> None:
    path = tmp_path / "feeds.toml"
    path.write_text('[[feed]]\nname = "x"\nkind = "synthetic"\nrate = "fast"\n')
    with pytest.raises(SettingsError, match="NEXUS_CONFIG_FILE"):
        load_settings(FeedHandlerSettings, {"NEXUS_CONFIG_FILE": str(path)})
    path.write_text("not toml at all [")
    with pytest.raises(SettingsError, match="invalid TOML"):
        load_settings(FeedHandlerSettings, {"NEXUS_CONFIG_FILE": str(path)})
    assert isinstance(load_feeds(None), FeedsFile)
