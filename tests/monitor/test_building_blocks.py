"""The monitor's pure building blocks against simple references: ring series, latches, the least-squares
forecast, HDR percentiles and Prometheus buckets, health formulas and availability."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from scipy.stats import linregress
from scipy.stats import t as t_dist

from monitor.forecast import Forecaster, fit, t995
from monitor.health import (
    Availability,
    FeedInputs,
    ServiceInputs,
    feed_health,
    latency_penalty,
    service_health,
    system_health,
)
from monitor.hysteresis import EventLatch, Threshold
from monitor.latency import LatencyBook, Percentiles, RollingHistogram, cumulative_buckets
from monitor.series import Series, SeriesStore

# -- series ------------------------------------------------------------------------------------------


def test_series_keeps_the_newest_points_in_order_and_never_grows_past_capacity() -> None:
    series = Series(capacity=50, step=1.0)
    for i in range(173):
        series.append(float(i), float(i * 2))
    assert len(series) == 50
    points = series.points()
    assert [t for t, _ in points] == [float(i) for i in range(123, 173)]
    assert all(v == 2 * t for t, v in points)
    assert series.points(since=170.0) == [(170.0, 340.0), (171.0, 342.0), (172.0, 344.0)]


def test_series_points_closer_than_a_step_replace_the_last_one() -> None:
    series = Series(capacity=10, step=1.0)
    series.append(0.0, 1.0)
    series.append(0.4, 2.0)
    series.append(0.9, 3.0)
    series.append(1.95, 4.0)
    assert series.points() == [(0.9, 3.0), (1.95, 4.0)]


def test_series_store_bounds_memory_by_window_and_step_and_serves_only_the_window() -> None:
    store = SeriesStore(window=60, step=1.0)
    for i in range(300):
        store.record("x", float(i), float(i))
    store.record("x", 300.0, math.nan)  # not recorded
    points = store.points("x", now=299.0)
    assert len(points) == 60
    assert points[0] == (240.0, 240.0)
    assert points[-1] == (299.0, 299.0)
    store.record("service.a.1.health", 1.0, 1.0)
    store.drop_prefix("service.a.1.")
    assert store.names() == ["x"]


# -- hysteresis ----------------------------------------------------------------------------------------


def test_threshold_does_not_flap_when_a_value_hovers_around_the_raise_level() -> None:
    latch = Threshold(0.5, 0.7, raise_for=5, clear_for=5, above=False)  # low health is bad
    transitions = []
    t = 0.0
    # 0.45 / 0.55 alternating every second: bad never holds for 5 s, so nothing is raised.
    for i in range(60):
        transitions.append(latch.update(t, 0.45 if i % 2 else 0.55))
        t += 1
    assert [x for x in transitions if x] == []
    # Bad for 5 s raises once; hovering inside the band (0.5..0.7) then keeps it raised.
    for _ in range(6):
        transitions.append(latch.update(t, 0.3))
        t += 1
    for i in range(30):
        transitions.append(latch.update(t, 0.6 if i % 2 else 0.45))
        t += 1
    assert [x for x in transitions if x] == ["raised"]
    # Good for 5 s clears once.
    for _ in range(6):
        transitions.append(latch.update(t, 0.9))
        t += 1
    assert [x for x in transitions if x] == ["raised", "cleared"]


def test_threshold_good_readings_interrupted_by_band_values_restart_the_clear_hold() -> None:
    latch = Threshold(10, 8, clear_for=3)  # high is bad
    assert latch.update(0, 11) == "raised"
    assert latch.update(1, 7) is None
    assert latch.update(2, 9) is None  # in the band: the clear hold restarts
    assert latch.update(3, 7) is None
    assert latch.update(5, 7) is None
    assert latch.update(6, 7) == "cleared"
    with pytest.raises(ValueError, match="clear_at"):
        Threshold(10, 12)


def test_event_latch_raises_once_per_burst_and_clears_after_the_hold() -> None:
    latch = EventLatch(hold=30)
    assert latch.trigger(0) == "raised"
    assert latch.trigger(10, 3) is None
    assert latch.count == 4
    assert latch.update(35) is None  # 25 s after the last event
    assert latch.update(40) == "cleared"
    assert latch.trigger(41) == "raised"
    assert latch.count == 1


# -- forecast ------------------------------------------------------------------------------------------


def test_least_squares_fit_matches_scipy_linregress_on_random_noisy_lines() -> None:
    rng = random.Random(7)
    for _ in range(200):
        n = rng.randint(3, 40)
        times = sorted(rng.uniform(0, 100) for _ in range(n))
        if max(times) - min(times) < 1e-3:
            continue
        slope, intercept = rng.uniform(-50, 50), rng.uniform(-1000, 1000)
        values = [intercept + slope * t + rng.gauss(0, 20) for t in times]
        trend = fit(times, values)
        assert trend is not None
        ref = linregress(times, values)
        assert trend.slope == pytest.approx(ref.slope, rel=1e-6, abs=1e-6)
        assert trend.level == pytest.approx(ref.intercept + ref.slope * times[-1], rel=1e-6, abs=1e-6)
        assert trend.se == pytest.approx(ref.stderr, rel=1e-6, abs=1e-9)
        assert trend.slope_low == pytest.approx(
            ref.slope - t_dist.ppf(0.995, n - 2) * ref.stderr, rel=0.1, abs=1e-6
        )


def test_t_quantiles_are_never_below_the_exact_ones() -> None:
    for df in range(1, 300):
        exact = float(t_dist.ppf(0.995, df))
        assert exact <= t995(df) <= exact * 1.1, df


def test_forecaster_time_to_limit_on_a_rising_queue_and_none_on_a_flat_or_falling_one() -> None:
    f = Forecaster(window=15, min_points=5)
    for i in range(5):
        f.add(float(i), 100.0 * i)
    assert f.eta(1000) == math.inf  # 5 points, but over 4 s: less than a third of the window
    f.add(5.0, 500.0)
    assert f.eta(1000) == pytest.approx(5.0)  # 500 now, +100/s exactly
    assert f.eta(300) == 0.0  # already past it
    flat = Forecaster(window=15, min_points=5)
    for i in range(10):
        flat.add(float(i), 500.0 - i)
    assert flat.eta(1000) == math.inf
    # Only the last `window` seconds count: an old ramp is forgotten once the queue is flat.
    for i in range(10, 40):
        f.add(float(i), 500.0)
    assert f.eta(1000) == math.inf


def test_a_noisy_ramp_is_forecast_with_the_conservative_slope() -> None:
    rng = random.Random(2)
    f = Forecaster(window=15, min_points=5)
    for i in range(16):
        f.add(float(i), 100.0 * i + rng.uniform(-200, 200))
    trend = f.trend()
    assert trend is not None
    assert 0 < trend.slope_low < trend.slope
    assert f.eta(5000) == pytest.approx((5000 - trend.level) / trend.slope_low)


def test_a_noisy_flat_gauge_seldom_forecasts_a_breach() -> None:
    """A gauge bouncing uniformly between 0 and half its limit, sampled once a second for ~3 hours:
    plain least squares would forecast a breach now and then; the conservative slope almost never."""
    rng = random.Random(1)
    f = Forecaster(window=15, min_points=5)
    breaches = plain = 0
    for i in range(10_000):
        f.add(float(i), rng.uniform(0, 500))
        breaches += f.eta(1000) <= 30
        trend = f.trend()
        plain += trend is not None and trend.slope > 0 and (1000 - trend.level) / trend.slope <= 30
    assert breaches <= 5
    assert plain >= 25  # the plain slope would have alerted every few minutes


# -- latency -------------------------------------------------------------------------------------------


def test_hdr_percentiles_are_within_one_percent_of_exact_percentiles() -> None:
    rng = np.random.default_rng(3)
    values_us = np.concatenate([rng.lognormal(6, 1.0, 20_000), rng.uniform(10_000, 900_000, 300)]).astype(int)
    book = LatencyBook(window=60)
    for v in values_us:
        book.record("md.recv_to_pub", "v", 0.0, int(v) * 1000)
    pct = Percentiles.of(book.recent("md.recv_to_pub", "v", 1.0))
    assert pct.count == len(values_us)
    for p, got in ((50, pct.p50), (95, pct.p95), (99, pct.p99)):
        exact = float(np.percentile(values_us, p, method="inverted_cdf")) / 1000
        assert got == pytest.approx(exact, rel=0.01), p
    assert pct.max == pytest.approx(values_us.max() / 1000, rel=0.01)
    assert book.sum_us("md.recv_to_pub", "v") == int(values_us.sum())


def test_rolling_histogram_forgets_old_slots_but_keeps_them_in_the_total() -> None:
    h = RollingHistogram(window=60, slot=5)
    for i in range(100):
        h.record(float(i), 1000)  # 1 ms, one a second for 100 s
    recent = h.recent(100.0)
    assert 55 <= recent.get_total_count() <= 65
    assert h.total().get_total_count() == 100
    assert h.recent(500.0).get_total_count() == 0
    assert h.total().get_total_count() == 100


def test_negative_and_huge_latencies_are_clamped_not_lost() -> None:
    book = LatencyBook(window=60)
    book.record("md.pub_to_consume", "v", 0.0, -5_000_000)  # a clock step backwards
    book.record("md.pub_to_consume", "v", 0.0, 10**15)
    pct = Percentiles.of(book.total("md.pub_to_consume", "v"))
    assert pct.count == 2
    assert pct.p50 == 0.0
    assert pct.max == pytest.approx(60_000, rel=0.01)


def test_prometheus_buckets_count_like_a_naive_cumulative_count() -> None:
    rng = random.Random(11)
    values = [rng.randint(0, 3_000_000) for _ in range(20_000)]
    h = RollingHistogram(60, 5)
    for v in values:
        h.record(0.0, v)
    bounds = [100, 250, 1000, 2500, 10_000, 100_000, 1_000_000, 10_000_000]
    for bound, count in cumulative_buckets(h.total(), bounds):
        exact = sum(1 for v in values if v <= bound)
        assert abs(count - exact) <= max(2, 0.011 * exact), bound


def test_latency_all_scope_merges_every_venue() -> None:
    book = LatencyBook(window=60)
    for _ in range(10):
        book.record("md.recv_to_pub", "a", 0.0, 1_000_000)
    for _ in range(30):
        book.record("md.recv_to_pub", "b", 0.0, 3_000_000)
    total = Percentiles.of(book.total("md.recv_to_pub", "all"))
    assert total.count == 40
    assert total.p50 == pytest.approx(3.0, rel=0.01)


# -- health --------------------------------------------------------------------------------------------


def _svc(**kw: object) -> ServiceInputs:
    base: dict[str, object] = {
        "down": False,
        "state": "ready",
        "nats_connected": True,
        "heartbeat_age": 0.2,
        "interval": 1.0,
        "down_after": 2.0,
    }
    return ServiceInputs(**{**base, **kw})  # type: ignore[arg-type]


def test_service_health_formula() -> None:
    assert service_health(_svc()).score == 1.0
    assert service_health(_svc(down=True)).score == 0.0
    assert service_health(_svc(nats_connected=False)).score == 0.0
    assert service_health(_svc(state="stopping")).score == 0.5
    assert service_health(_svc(heartbeat_age=1.75)).score == pytest.approx(0.5)  # halfway 1.5 s -> 2 s
    assert service_health(_svc(error_rate=0.5)).score == pytest.approx(1 - 0.3 * 0.5)
    assert service_health(_svc(drop_rate=100)).score == pytest.approx(0.8)
    assert service_health(_svc(queue_fills=[0.4, 0.75])).score == pytest.approx(1 - 0.3 * 0.5)
    assert service_health(_svc(loop_lag_ms=550)).score == pytest.approx(1 - 0.2 * 0.5)
    worst = service_health(_svc(error_rate=9, drop_rate=99, queue_fills=[1.0], loop_lag_ms=5000))
    assert worst.score == 0.0


def test_feed_health_formula() -> None:
    assert feed_health(FeedInputs(state="live", reported=1.0, fresh=True)) == 1.0
    assert feed_health(FeedInputs(state="live", reported=0.6, fresh=True)) == pytest.approx(0.6)
    assert feed_health(FeedInputs(state="stale", reported=1.0, fresh=True)) == pytest.approx(0.3)
    assert feed_health(FeedInputs(state="live", reported=1.0, fresh=False)) == 0.0
    assert feed_health(FeedInputs(state="stopped", reported=1.0, fresh=True)) is None
    assert feed_health(FeedInputs(state="live", reported=1.0, fresh=True, gap_rate=0.5)) == pytest.approx(
        0.75
    )
    assert feed_health(FeedInputs(state="live", reported=1.0, fresh=True, p_lat=1.0)) == pytest.approx(0.7)


def test_latency_penalty_and_system_health() -> None:
    assert latency_penalty(5, 10) == 0.0
    assert latency_penalty(15, 10) == pytest.approx(0.5)
    assert latency_penalty(50, 10) == 1.0
    assert system_health([1, 1, 1, 1], [1], []) == 1.0
    # One of five services down: S = ½·0.8 + ½·0 = 0.4; H = 0.5·0.4 + 0.3·1 + 0.2·1
    assert system_health([1, 1, 1, 1, 0], [1], []) == pytest.approx(0.7)
    assert system_health([1, 1], [], [0.5]) == pytest.approx((0.5 + 0.2 * 0.5) / 0.7)
    assert system_health([], [], []) == 1.0


def test_availability_is_up_time_over_observed_time_in_the_window() -> None:
    a = Availability(window=100)
    assert a.ratio(0) is None
    a.mark(0, True)
    a.mark(50, False)
    a.mark(75, True)
    assert a.ratio(100) == pytest.approx(0.75)
    a.mark(100, None)  # not counted (an operator stopped it)
    assert a.ratio(150) == pytest.approx(0.5)  # window 50..150: 25 s down, 25 s up, 50 s not counted
    a.mark(150, True)
    assert a.ratio(400) == 1.0
