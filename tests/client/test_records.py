import json

import pytest

from client.records import PointRecord, ResultStore


def record(batch: int) -> PointRecord:
    return PointRecord(
        model="m", protocol="grpc", engine="tritonbench", mode="concurrency", batch_size=batch, seq_len=32,
        concurrency=1, request_rate=None, arrival=None, variant="fp32", requests=10, errors=0, duration_s=1.0,
        throughput_infer_per_s=10.0, throughput_seq_per_s=10.0 * batch, throughput_tokens_per_s=320.0 * batch,
        latency_avg_ms=1.0, latency_p50_ms=1.0, latency_p90_ms=1.0, latency_p95_ms=1.0, latency_p99_ms=1.0,
        latency_max_ms=1.0, stable=True, trials=3,
    )  # fmt: skip


def test_a_line_torn_by_a_kill_is_cut_before_the_next_append(tmp_path):
    store = ResultStore(tmp_path)
    store.ensure_writable()
    store.append(record(1))
    store.append(record(2))
    with store.path.open("a") as sink:  # what a kill in the middle of a write leaves
        sink.write(record(4).to_json()[:37])
    with pytest.warns(UserWarning, match="dropped a torn last line"):
        store.ensure_writable()
    store.append(record(8))
    assert [r.batch_size for r in store.load()] == [1, 2, 8]
    assert all(json.loads(line) for line in store.path.read_text().splitlines())


def test_a_complete_store_is_left_as_it_is(tmp_path, recwarn):
    store = ResultStore(tmp_path)
    store.ensure_writable()
    store.append(record(1))
    before = store.path.read_bytes()
    store.ensure_writable()
    assert store.path.read_bytes() == before and not recwarn.list
    assert store.done_keys() == {record(1).key}
