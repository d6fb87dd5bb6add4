import itertools
import random

import pytest

from client.generators.measure import (
    Completion,
    MeasurementConfig,
    arrival_times,
    is_stable,
    next_gap,
    summarize,
    window_of,
    within,
)

CONFIG = MeasurementConfig(window_s=1.0, stability_pct=10, stable_windows=3, max_trials=6)


def _window(start: float, n: int, latency: float):
    done = [Completion(start + i / n - latency, start + i / n, True) for i in range(n)]
    return window_of(done, start, start + 1.0)


def test_window_counts_completions_by_finish_time():
    completions = [Completion(0.1, 0.5, True), Completion(0.6, 1.2, True), Completion(0.7, 0.9, False)]
    window = window_of(completions, 0.0, 1.0)
    assert window.latencies == pytest.approx((0.4,)) and window.errors == 1
    assert window.throughput == pytest.approx(1.0)


def test_within_percent():
    assert within([100, 105, 95], 10) and not within([100, 125, 95], 10)
    assert not within([0.0, 0.0, 0.0], 10)


def test_stability_needs_n_agreeing_windows_in_throughput_and_latency():
    steady = [_window(i, 100, 0.01) for i in range(3)]
    assert is_stable(steady, CONFIG)
    assert not is_stable(steady[:2], CONFIG)
    slower = [*steady[:2], _window(2, 70, 0.01)]  # throughput off by > 10 %
    assert not is_stable(slower, CONFIG)
    laggy = [*steady[:2], _window(2, 100, 0.02)]  # latency doubled
    assert not is_stable(laggy, CONFIG)
    assert is_stable([_window(0, 10, 0.5), *steady], CONFIG)  # only the last N count


def test_summary_merges_the_last_windows():
    windows = [_window(0, 10, 0.9), *[_window(i, 100, 0.01) for i in range(1, 4)]]
    summary = summarize(windows, CONFIG)
    assert summary.requests == 300 and summary.duration_s == pytest.approx(3.0)
    assert summary.throughput_infer_per_s == pytest.approx(100.0)
    assert summary.latency["latency_p50_ms"] == pytest.approx(10.0)


def test_summary_without_successes_raises():
    with pytest.raises(ValueError, match="no request succeeded"):
        summarize([window_of([Completion(0, 0.5, False)], 0, 1)] * 3, CONFIG)


def test_constant_and_poisson_schedules():
    assert arrival_times(4, 1.0, "constant", random.Random(0)) == pytest.approx([0.25, 0.5, 0.75])
    poisson = arrival_times(200, 50.0, "poisson", random.Random(1))
    assert len(poisson) / 50 == pytest.approx(200, rel=0.05)
    gaps = [b - a for a, b in itertools.pairwise(poisson)]
    assert max(gaps) > 3 / 200  # exponential gaps vary, unlike constant spacing
    assert arrival_times(200, 5.0, "poisson", random.Random(1)) == arrival_times(200, 5.0, "poisson", random.Random(1))
    with pytest.raises(ValueError, match="positive"):
        next_gap(0, "constant", random.Random(0))
    with pytest.raises(ValueError, match="unknown arrival"):
        next_gap(1, "bursty", random.Random(0))


def test_config_validation():
    with pytest.raises(ValueError, match="max trials"):
        MeasurementConfig(stable_windows=3, max_trials=2)
