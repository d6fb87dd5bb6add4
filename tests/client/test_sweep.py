import json

import pytest

from client.sweep import SweepConfig, markdown_table, run_sweep
from client.text_client import ClientConfig

pytestmark = pytest.mark.slow


def test_a_short_sweep_writes_one_record_per_point(server, tmp_path):
    config = SweepConfig(
        ClientConfig(server.grpc_url, "minilm"), batch_sizes=(1, 4), concurrency=(2,), duration_s=1.0, warmup_s=0.3
    )
    results = run_sweep(config, tmp_path, echo=lambda _: None)
    records = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [(r["batch_size"], r["concurrency"]) for r in records] == [(1, 2), (4, 2)]
    for record in records:
        assert record["requests"] > 0 and record["errors"] == 0
        assert record["throughput_seq_per_s"] == pytest.approx(record["throughput_infer_per_s"] * record["batch_size"])
        assert 0 < record["latency_p50_ms"] <= record["latency_p90_ms"] <= record["latency_p99_ms"]
        assert record["latency_p99_ms"] <= record["latency_max_ms"]
        # every composing model and the ensemble count each request: at least 4 inferences per request
        assert record["server_inference_count"] >= 4 * record["requests"]
    assert "| minilm | grpc | 4 | 2 |" in markdown_table(results)
