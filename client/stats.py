"""Latency statistics as pure functions."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The q-th percentile (0–100) by the nearest-rank method, as perf_analyzer reports it."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} outside 0..100")
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return float(sorted_values[rank - 1])


def summarize_latencies(latencies_s: Sequence[float]) -> dict[str, float]:
    """avg/p50/p90/p95/p99/max in milliseconds."""
    ordered = sorted(latencies_s)
    ms = 1000.0
    return {
        "latency_avg_ms": sum(ordered) / len(ordered) * ms,
        "latency_p50_ms": percentile(ordered, 50) * ms,
        "latency_p90_ms": percentile(ordered, 90) * ms,
        "latency_p95_ms": percentile(ordered, 95) * ms,
        "latency_p99_ms": percentile(ordered, 99) * ms,
        "latency_max_ms": ordered[-1] * ms,
    }
