"""The results store: damaged lines are skipped with one warning, and a new record is never lost."""

import dataclasses
import json
import warnings
from pathlib import Path

import pytest
from click.testing import CliRunner

from client.cli import main
from client.records import ModelTimes, PointRecord, ResultStore
from client.sweep import SweepConfig, plan_points
from client.transport.text_client import ClientConfig


def _record(batch: int = 1, **changes) -> PointRecord:
    values = dict(
        model="m", protocol="grpc", generator="tritonbench", mode="concurrency", batch_size=batch, seq_len=16,
        concurrency=1, request_rate=None, arrival=None, variant="fp32", requests=10, errors=0, duration_s=1.0,
        throughput_infer_per_s=10.0, throughput_seq_per_s=10.0, throughput_tokens_per_s=160.0, latency_avg_ms=1.0,
        latency_p50_ms=1.0, latency_p90_ms=1.0, latency_p95_ms=1.0, latency_p99_ms=1.0, latency_max_ms=2.0,
        stable=True, trials=3, server={"m": ModelTimes(10, 5, 1.0, 1.0, 1.0, 1.0)},
    )  # fmt: skip
    return PointRecord(**{**values, **changes})


def _line(**changes) -> bytes:
    return json.dumps({**dataclasses.asdict(_record()), **changes}).encode() + b"\n"


def test_a_torn_last_line_does_not_swallow_the_next_record(tmp_path):
    store = ResultStore(tmp_path)
    store.append(_record(1))
    with store.path.open("ab") as f:
        f.write(b'{"model": "m", "batch_')  # killed mid-write
    store.append(_record(2))
    with pytest.warns(UserWarning, match=r"skipped 1 damaged line\(s\), kept 2 record\(s\) \(line 2: not complete"):
        assert [r.batch_size for r in store.load()] == [1, 2]
        assert store.done_keys() >= {_record(2).key}  # a resumed sweep does not measure it again


def test_hostile_lines_are_skipped_with_one_warning_that_lists_them(tmp_path):
    store = ResultStore(tmp_path)
    store.append(_record(1))
    with store.path.open("ab") as f:
        f.write(b"[1, 2]\n")  # not an object
        f.write(b"\xff\xfe garbage\n")  # not UTF-8
        f.write(_line(batch_size="8"))  # wrong type
        f.write(_line(stable=1, requests=True))  # a bool is no count, a number no bool
        f.write(_line(server={"m": {"queue_us": "slow"}}))  # a damaged nested record
        f.write(json.dumps({"model": "m"}).encode() + b"\n")  # fields missing
        f.write(_line(batch_size=4, future_field="ignored"))  # a newer version's record: kept
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        records = store.load()
    assert [r.batch_size for r in records] == [1, 4]
    assert len(caught) == 1, [str(w.message) for w in caught]
    message = str(caught[0].message)
    assert "skipped 6 damaged line(s), kept 2 record(s)" in message
    for expected in ("line 2: a JSON list, not an object", "line 3: not UTF-8", "line 4: batch_size is str, not int"):
        assert expected in message
    assert "line 5: requests is bool, not int, stable is int, not bool" in message


def test_old_records_without_timeouts_still_load(tmp_path):
    store = ResultStore(tmp_path)
    old = {k: v for k, v in dataclasses.asdict(_record(3)).items() if k != "timeouts"}
    store.path.write_text(json.dumps(old) + "\n")
    (record,) = store.load()
    assert record.batch_size == 3 and record.timeouts == 0


@pytest.mark.parametrize("command", ["report", "compare"])
def test_report_and_compare_survive_a_damaged_store(tmp_path, command):
    store = ResultStore(tmp_path / "results")
    store.ensure_writable()
    for concurrency in (1, 2):
        store.append(_record(1, concurrency=concurrency))
    with store.path.open("ab") as f:
        f.write(b'"just a string"\n\x00\x01\x02\n{"torn": ')
    args = [command, str(tmp_path / "results")] + (["--out", str(tmp_path / "report")] if command == "report" else [])
    with pytest.warns(UserWarning, match="skipped 3 damaged line"):
        result = CliRunner().invoke(main, args)
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output


def test_a_line_torn_by_a_kill_is_cut_when_the_store_is_opened_again(tmp_path):
    store = ResultStore(tmp_path)
    store.ensure_writable()
    store.append(_record(1))
    store.append(_record(2))
    with store.path.open("a") as sink:  # what a kill in the middle of a write leaves
        sink.write(_record(4).to_json()[:37])
    with pytest.warns(UserWarning, match="dropped a torn last line"):
        store.ensure_writable()
    store.append(_record(8))
    assert [r.batch_size for r in store.load()] == [1, 2, 8]
    assert all(json.loads(line) for line in store.path.read_text().splitlines())


def test_a_complete_store_is_left_as_it_is(tmp_path, recwarn):
    store = ResultStore(tmp_path)
    store.ensure_writable()
    store.append(_record(1))
    before = store.path.read_bytes()
    store.ensure_writable()
    assert store.path.read_bytes() == before and not recwarn.list
    assert store.done_keys() == {_record(1).key}


# Written by tritonbench at commit 50dbcec on the H200 (issue 11), when the load generator's key was "engine".
OLD_STORE = Path(__file__).parents[2] / "scripts" / "results" / "h200_2026-12-01" / "served" / "results.jsonl"


def test_a_store_written_when_the_generator_was_called_engine_still_loads_resumes_and_compares(tmp_path):
    text = OLD_STORE.read_text()
    assert '"engine": "perf_analyzer"' in text and '"generator"' not in text
    store = ResultStore(OLD_STORE.parent)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not one line is taken for damaged
        records = store.load()
    assert len(records) == 9 and {r.generator for r in records} == {"perf_analyzer", "tritonbench"}
    assert [r.generator for r in records[:2]] == ["perf_analyzer", "tritonbench"]
    # the same point swept again is skipped: its key is the old record's
    config = SweepConfig(ClientConfig("127.0.0.1:8001", "bert_model"), (32,), (128,), concurrency=(4,),
                         variant="fp16", generator="perf_analyzer")  # fmt: skip
    assert config.key(plan_points(config)[0]) in store.done_keys()
    # stored again, it names the generator with its own word
    copy = ResultStore(tmp_path)
    copy.append(records[0])
    line = json.loads(copy.path.read_text())
    assert line["generator"] == "perf_analyzer" and "engine" not in line
    compared = CliRunner().invoke(main, ["compare", str(OLD_STORE.parent), "--by", "generator"])
    assert compared.exit_code == 0 and "Baseline generator: **perf_analyzer**" in compared.output
    assert "tritonbench speedup" in compared.output


def test_per_replica_breakdowns_survive_the_store(tmp_path):
    record = _record(replicas={"127.0.0.1:1": {"m": ModelTimes(6, 3, 1.0, 1.0, 1.0, 1.0)},
                               "127.0.0.1:2": {"m": ModelTimes(4, 2, 2.0, 1.0, 1.0, 1.0)}})  # fmt: skip
    store = ResultStore(tmp_path)
    store.ensure_writable()
    store.append(record)
    (loaded,) = store.load()
    assert loaded == record and isinstance(loaded.replicas["127.0.0.1:2"]["m"], ModelTimes)
    with pytest.warns(UserWarning, match="replicas is dict"):  # a damaged breakdown is named, not half-loaded
        (tmp_path / "bad").mkdir()
        (tmp_path / "bad" / "results.jsonl").write_bytes(_line(replicas={"127.0.0.1:1": {"m": {"inference_count": 1}}}))
        assert ResultStore(tmp_path / "bad").load() == []
