import pytest

from client.stats import percentile, summarize_latencies


def test_nearest_rank_percentiles():
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 50) == 50 and percentile(values, 90) == 90 and percentile(values, 99) == 99
    assert percentile(values, 100) == 100 and percentile(values, 0) == 1
    assert percentile([3.0], 99) == 3.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0


def test_bad_percentile_inputs():
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)
    with pytest.raises(ValueError, match="outside"):
        percentile([1.0], 101)


def test_summary_in_milliseconds():
    summary = summarize_latencies([0.004, 0.001, 0.002, 0.003])
    assert summary["latency_avg_ms"] == pytest.approx(2.5)
    assert summary["latency_p50_ms"] == pytest.approx(2.0)
    assert summary["latency_max_ms"] == pytest.approx(4.0)
