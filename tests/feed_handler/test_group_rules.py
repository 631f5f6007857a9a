"""The failover rule (pure): when to fail over, to whom, and failback with hysteresis; and what a switch
publishes."""

from __future__ import annotations

from feed_handler.config import GroupConfig, SyntheticFeed
from feed_handler.feed import Feed
from feed_handler.group import FailoverGroup, MemberView, choose
from feed_handler.manager import make_adapter
from feed_handler.normalised import Trade
from feed_handler.outbox import Outbox

CFG = GroupConfig(
    name="g", members=["a", "b", "c"], failover_health=0.3, failback_health=0.8, failback_after=3.0
)


def live(name: str, health: float = 1.0, since: float | None = None) -> MemberView:
    return MemberView(name, "live", True, health, since)


def down(name: str, state: str = "disconnected") -> MemberView:
    return MemberView(name, state, False, 0.0, None)


def test_a_disconnected_primary_fails_over_to_the_best_ranked_usable_backup() -> None:
    assert choose([down("a"), live("b"), live("c")], "a", 10.0, CFG) == (
        "b",
        "failover: primary a disconnected",
    )
    assert choose([down("a"), live("b", 0.1), live("c")], "a", 10.0, CFG) == (
        "c",
        "failover: primary a disconnected",
    )


def test_low_health_fails_over_but_only_to_a_usable_member() -> None:
    decision = choose([live("a", 0.2), live("b", 0.9)], "a", 10.0, CFG)
    assert decision == ("b", "failover: primary a health 0.20 < 0.30")
    assert choose([live("a", 0.2), live("b", 0.25)], "a", 10.0, CFG) is None  # nobody better: stay


def test_when_no_member_is_usable_a_flowing_one_beats_a_dead_active() -> None:
    assert choose([down("a"), live("b", 0.1), down("c", "backoff")], "a", 1.0, CFG) == (
        "b",
        "failover: primary a disconnected",
    )
    assert choose([down("a"), down("b")], "a", 1.0, CFG) is None


def test_failback_waits_until_the_primary_has_been_healthy_long_enough() -> None:
    members = [live("a", 0.9, since=10.0), live("b")]
    assert choose(members, "b", 12.9, CFG) is None  # healthy for 2.9 s < 3 s
    assert choose(members, "b", 13.0, CFG) == ("a", "failback: a healthy for 3.0s")
    # a primary between the two thresholds is never failed back to (hysteresis)
    assert choose([live("a", 0.7, since=None), live("b")], "b", 100.0, CFG) is None


def test_a_healthy_active_primary_stays() -> None:
    assert choose([live("a"), live("b", since=0.0)], "a", 100.0, CFG) is None


def test_a_primary_still_making_its_first_connection_is_given_its_startup_grace() -> None:
    starting = MemberView("a", "connecting", False, 0.0, None, starting=True)
    assert choose([starting, live("b")], "a", 1.0, CFG) is None
    late = MemberView("a", "connecting", False, 0.0, None, starting=False)  # the grace is over
    assert choose([late, live("b")], "a", 5.0, CFG) == ("b", "failover: primary a connecting")


# -- what a switch publishes (pure: real feeds and outbox, a hand-driven clock, nothing started) ------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def trade(symbol: str, trade_id: int) -> Trade:
    return Trade(
        venue="v",
        symbol=symbol,
        venue_symbol=symbol,
        seq=trade_id,
        trade_id=str(trade_id),
        price="1",
        size="1",
    )


def published_trades(outbox: Outbox) -> list[tuple[str, str]]:
    return [(t.symbol, t.trade_id) for _, t, _ in outbox.p0]


def test_a_promoted_backup_publishes_what_the_old_active_missed_not_trades_from_before_the_stream() -> None:
    clock, outbox = Clock(), Outbox()
    a, b = (Feed(SyntheticFeed(name=n, venue="v"), outbox, make_adapter, clock=clock) for n in ("a", "b"))
    group = FailoverGroup(GroupConfig(name="g", members=["a", "b"], venue="v"), [a, b], outbox, clock=clock)
    b.emit(trade("BTC", 29))  # the backup connected a moment before the primary: 29 precedes the stream
    clock.now += 0.01
    for n in (30, 31):
        a.emit(trade("BTC", n))
        b.emit(trade("BTC", n))
    clock.now += 0.01
    b.emit(trade("BTC", 32))  # the primary died before it sent 32
    b.emit(trade("ETH", 7))  # a symbol the group has published nothing of yet
    b.emit(trade("ETH", 8))
    assert published_trades(outbox) == [("BTC", "30"), ("BTC", "31")]

    clock.now += 0.01
    group.switch(b, "failover: primary a disconnected")
    assert published_trades(outbox) == [
        ("BTC", "30"),
        ("BTC", "31"),
        ("BTC", "32"),  # missed by the old active: published at the switch
        ("ETH", "7"),
        ("ETH", "8"),
    ]  # 29 never: it came before the group's first BTC trade; 30 and 31 not twice
    assert group.counters.failovers_total == 1
