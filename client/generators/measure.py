"""Measurement windows and perf_analyzer's stabilisation rule, as pure functions over timings."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from client.stats import summarize_latencies


@dataclass(frozen=True)
class MeasurementConfig:
    """How a point is measured: warm-up, windows, and when the numbers count as settled."""

    window_s: float = 2.0  # time windows (mode "time")
    window_requests: int = 0  # > 0: count windows of at least this many requests (mode "count")
    stability_pct: float = 10.0  # last `stable_windows` within ± this % of their mean
    stable_windows: int = 3
    max_trials: int = 10
    warmup_s: float = 1.0

    def __post_init__(self) -> None:
        if self.window_s <= 0 or self.stability_pct <= 0 or self.stable_windows < 1:
            raise ValueError("window, stability percentage and stable window count must be positive")
        if self.max_trials < self.stable_windows:
            raise ValueError(
                f"max trials ({self.max_trials}) must be at least the stable windows ({self.stable_windows})"
            )


@dataclass(frozen=True)
class Completion:
    """One finished request: when it was sent and answered (perf_counter seconds), and whether it failed."""

    sent: float
    done: float
    ok: bool
    timed_out: bool = False  # failed for want of an answer within the client's timeout


@dataclass(frozen=True)
class Failures:
    """Every failed request of a whole measurement, warm-up and the requests still in flight at the end included."""

    errors: int  # failed requests, timeouts included
    timeouts: int


def failures(completions: list[Completion]) -> Failures:
    """Count the failures among all completions: a stall during warm-up or an early window is not forgotten."""
    return Failures(sum(not c.ok for c in completions), sum(c.timed_out for c in completions))


@dataclass(frozen=True)
class Window:
    """The requests that finished inside [start, end)."""

    start: float
    end: float
    latencies: tuple[float, ...]
    errors: int

    @property
    def throughput(self) -> float:
        """Successful requests per second."""
        return len(self.latencies) / (self.end - self.start)

    @property
    def avg_latency(self) -> float:
        """Mean latency in seconds (infinite when nothing finished)."""
        return sum(self.latencies) / len(self.latencies) if self.latencies else math.inf


def window_of(completions: list[Completion], start: float, end: float) -> Window:
    """Collect the completions that finished in [start, end)."""
    inside = [c for c in completions if start <= c.done < end]
    return Window(start, end, tuple(c.done - c.sent for c in inside if c.ok), sum(not c.ok for c in inside))


def within(values: list[float], pct: float) -> bool:
    """True when every value lies within ± pct % of their mean."""
    mean = sum(values) / len(values)
    return mean > 0 and math.isfinite(mean) and all(abs(v - mean) <= mean * pct / 100 for v in values)


def is_stable(windows: list[Window], config: MeasurementConfig) -> bool:
    """perf_analyzer's rule: the last N windows agree within ±pct in throughput and in average latency."""
    last = windows[-config.stable_windows :]
    if len(last) < config.stable_windows or any(not w.latencies for w in last):
        return False
    return within([w.throughput for w in last], config.stability_pct) and within(
        [w.avg_latency for w in last], config.stability_pct
    )


@dataclass(frozen=True)
class PointSummary:
    """The reported numbers of a point: the last N windows merged (failures count over the whole point)."""

    requests: int
    duration_s: float
    throughput_infer_per_s: float
    latency: dict[str, float]


def summarize(windows: list[Window], config: MeasurementConfig) -> PointSummary:
    """Merge the last `stable_windows` windows (settled or not) into the point's numbers."""
    last = windows[-config.stable_windows :]
    latencies = [x for w in last for x in w.latencies]
    duration = last[-1].end - last[0].start
    if not latencies:
        raise ValueError("no request succeeded in the measured windows")
    return PointSummary(len(latencies), duration, len(latencies) / duration, summarize_latencies(latencies))


def next_gap(rate: float, arrival: str, rng: random.Random) -> float:
    """Seconds until the next send of an open-loop schedule: constant spacing or Poisson arrivals."""
    if rate <= 0:
        raise ValueError("request rate must be positive")
    if arrival == "constant":
        return 1.0 / rate
    if arrival == "poisson":
        return rng.expovariate(rate)
    raise ValueError(f"unknown arrival process '{arrival}' (constant or poisson)")


def arrival_times(rate: float, duration_s: float, arrival: str, rng: random.Random) -> list[float]:
    """Send offsets (seconds from start) of a schedule over `duration_s`."""
    times: list[float] = []
    t = next_gap(rate, arrival, rng)
    while t < duration_s:
        times.append(t)
        t += next_gap(rate, arrival, rng)
    return times
