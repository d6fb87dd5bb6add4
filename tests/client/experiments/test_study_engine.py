import itertools

import pytest

from client.experiments.study_config import Repeats
from client.experiments.study_engine import time_calls
from client.experiments.study_records import Latency


class Clock:
    """A clock that advances by `step` seconds per reading: call times become exact."""

    def __init__(self, step: float) -> None:
        self.ticks = itertools.count()
        self.step = step

    def __call__(self) -> float:
        return next(self.ticks) * self.step


@pytest.mark.parametrize(
    ("repeats", "step", "calls"),
    [
        (Repeats(warmup=2, min_repeats=3, max_repeats=300, seconds=1.0), 0.1, 4),  # stops once a second passed
        (Repeats(warmup=0, min_repeats=5, max_repeats=300, seconds=0.01), 0.1, 5),  # slow calls: min_repeats
        (Repeats(warmup=0, min_repeats=1, max_repeats=7, seconds=100.0), 0.001, 7),  # fast calls: max_repeats
    ],
)
def test_the_timing_rule(repeats, step, calls):
    made = []
    times = time_calls(lambda: made.append(1), repeats, clock=Clock(step))
    assert len(times) == calls and len(made) == repeats.warmup + calls
    assert times == pytest.approx([step] * calls)


def test_latency_percentiles_by_nearest_rank():
    latency = Latency.of([i / 1000 for i in range(1, 101)])  # 1 … 100 ms
    assert (latency.p50_ms, latency.p90_ms, latency.p99_ms, latency.max_ms) == pytest.approx((50, 90, 99, 100))
    assert latency.avg_ms == pytest.approx(50.5)
