"""The failover rule (pure): when to fail over, to whom, and failback with hysteresis."""

from __future__ import annotations

from feed_handler.config import GroupConfig
from feed_handler.group import MemberView, choose

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
