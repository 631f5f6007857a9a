"""Reconnection against a real simulator process that dies and comes back: full-jitter backoff within
its bounds, the circuit breaker opening after N failures and half-opening after its cool-down, the
subscription renewed on reconnect, every state change published as FeedStatus; and the idle watchdog
declaring a silent feed dead."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nexus import messages as m
from nexus import subjects
from nexus.bus import Bus
from nexus.procs import free_port
from nexus.testing import wait_for
from tests.feed_handler.helpers import Collector, SimulatorProcess, feed_handler, service

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SIM = ("--venue", "binance", "--rate", "100", "--symbols", "BTC-USD")


def binance_feed(uid: str, url: str, **extra: object) -> str:
    options = "\n".join(f"{k} = {v}" for k, v in extra.items())
    return f"""
[[feed]]
name = "{uid}"
kind = "binance"
venue = "{uid}"
url = "{url}/stream"
symbols = ["BTCUSD"]
{options}
"""


BACKOFF_REASON = re.compile(r"retry in (\d+\.\d+)s \(ceiling (\d+\.\d+)s\)$")


def observed_backoffs(statuses: list[m.FeedStatus]) -> list[tuple[float, float, float]]:
    """(delay, ceiling, seconds until the next `connecting` status) of every published backoff. The
    periodic status repeats the current state and reason: only changes count."""
    key = [(s.state, s.reason) for s in statuses]
    changes = [s for i, s in enumerate(statuses) if i == 0 or key[i - 1] != key[i]]
    out = []
    for i, s in enumerate(changes):
        if s.state != "backoff":
            continue
        match = BACKOFF_REASON.search(s.reason)
        assert match, s.reason
        following = next(n for n in changes[i + 1 :] if n.state == "connecting")
        out.append((float(match[1]), float(match[2]), (following.ts - s.ts) / 1e9))
    return out


async def test_backoff_within_jitter_bounds_breaker_opens_half_opens_and_the_feed_comes_back(
    tmp_path: Path, nats_url: str, uid: str, bus: Bus
) -> None:
    port = free_port()
    statuses = Collector()
    await bus.subscribe(subjects.feed_status(uid), m.FeedStatus, statuses)
    await bus.flush()
    sim = SimulatorProcess(tmp_path, *SIM, port=port, name="sim1").start()
    sim2: SimulatorProcess | None = None
    try:
        toml = binance_feed(
            uid, sim.ws_url, backoff_base=0.05, backoff_cap=0.3, breaker_failures=4, breaker_reset=1.5
        )
        async with feed_handler(nats_url, uid, tmp_path, toml) as runner:
            feed = service(runner).manager.feeds[uid]
            await wait_for(lambda: str(feed.state) == "live", timeout=10)
            await wait_for(lambda: feed.backoff.attempt == 0 and feed.stable, timeout=5)
            sim.kill()

            await wait_for(lambda: str(feed.state) == "circuit_open", timeout=10)
            c = feed.counters
            assert c.reconnects_total == 1  # the live session that ended
            assert c.connect_failures_total == 4  # the breaker opened after N=4 failed attempts
            history = list(feed.backoff_history)
            assert [a for a, _, _ in history] == [0, 1, 2, 3]
            for attempt, delay, ceiling in history:
                assert ceiling == pytest.approx(min(0.3, 0.05 * 2**attempt))
                assert 0.0 <= delay <= ceiling  # full jitter: uniform in [0, ceiling]
            assert len({delay for _, delay, _ in history}) > 1  # drawn, not a fixed schedule

            # what an outside observer sees: each published backoff names its delay and ceiling, and
            # the next attempt is published that long after it (the feed really waited the drawn delay)
            await wait_for(lambda: any(s.state == "circuit_open" for s in statuses.msgs), timeout=5)
            waits = observed_backoffs(statuses.msgs)
            assert [(round(d, 3), round(cl, 3)) for d, cl, _ in waits] == [
                (round(d, 3), round(cl, 3)) for _, d, cl in history
            ]
            for delay, _ceiling, waited in waits:
                assert delay - 0.02 <= waited <= delay + 0.25, (delay, waited)  # loop-clock slack

            # after the cool-down one trial goes through (half-open); it fails, the breaker re-opens
            await wait_for(
                lambda: any(s.state == "connecting" and s.reason == "half-open trial" for s in statuses.msgs),
                timeout=5,
            )
            opened = next(s.ts for s in statuses.msgs if s.state == "circuit_open")
            trial = next(s.ts for s in statuses.msgs if s.reason == "half-open trial")
            assert (trial - opened) / 1e9 >= 1.5 - 0.01  # not before breaker_reset has elapsed
            await wait_for(
                lambda: str(feed.state) == "circuit_open" and c.connect_failures_total == 5, timeout=5
            )

            sim2 = SimulatorProcess(tmp_path, *SIM, port=port, name="sim2").start()
            await wait_for(lambda: str(feed.state) == "live", timeout=10)
            stats = sim2.stats()
            assert stats["subscribe_requests_total"] == 1  # subscribed again on the new connection
            assert "btcusd@aggTrade" in stats["subscriptions"]
            await wait_for(lambda: str(feed.breaker.state) == "closed", timeout=5)  # stable: closed again
            published = c.published_total
            await wait_for(lambda: c.published_total > published + 10, timeout=5)

            states = [s.state for s in statuses.msgs]
            for state in ("live", "disconnected", "backoff", "connecting", "circuit_open"):
                assert state in states
            assert states[-1] == "live"
            assert all(s.feed == uid and s.venue == uid for s in statuses.msgs)
    finally:
        sim.kill()
        if sim2 is not None:
            sim2.kill()


async def test_a_silent_feed_goes_stale_then_is_declared_dead_and_reconnects(
    tmp_path: Path, nats_url: str, uid: str, bus: Bus
) -> None:
    statuses = Collector()
    await bus.subscribe(subjects.feed_status(uid), m.FeedStatus, statuses)
    await bus.flush()
    with SimulatorProcess(tmp_path, *SIM) as sim:
        toml = binance_feed(uid, sim.ws_url, stale_after=0.4, idle_timeout=1.0, backoff_base=0.05)
        async with feed_handler(nats_url, uid, tmp_path, toml) as runner:
            feed = service(runner).manager.feeds[uid]
            await wait_for(lambda: str(feed.state) == "live" and feed.stable, timeout=10)
            sim.fault("silence", seconds=1.6)
            await wait_for(lambda: feed.counters.reconnects_total >= 1, timeout=5)
            # the statuses travel over NATS: the one announcing the dead session may still be on its way
            await wait_for(
                lambda: any(
                    "no data for" in s.reason for s in statuses.msgs if s.state in ("disconnected", "backoff")
                ),
                timeout=5,
            )
            assert any(s.state == "stale" and s.health < 1.0 for s in statuses.msgs)
            published = feed.counters.published_total
            await wait_for(lambda: feed.counters.published_total > published + 10, timeout=10)
            assert str(feed.state) == "live"
            assert sim.stats()["connections_total"] >= 2
