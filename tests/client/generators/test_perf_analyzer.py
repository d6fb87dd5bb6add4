"""perf_analyzer: exact command lines and input files, its real CSV, and the real binary against the real server."""

from __future__ import annotations

import ctypes
import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from builder.common.corpus import corpus_sentences
from builder.serving.server import free_port
from builder.sources.source import resolve_path
from client.generators.perf_analyzer import (
    PerfAnalyzerError,
    PerfAnalyzerFailed,
    PerfAnalyzerLibraryError,
    PerfAnalyzerNotFound,
    PerfAnalyzerUnstable,
    PerfPoint,
    PerfRun,
    binary_version,
    build_command,
    build_env,
    find_binary,
    measured,
    parse_csv,
    run_point,
    tokenize,
    write_text_data,
    write_token_data,
)
from client.points import Load, Point
from client.records import PointRecord, ResultStore

# Written by perf_analyzer 2.51.0 itself: minilm ensemble, gRPC, batch 1, concurrency 2, bundled CPU server.
REAL_CSV = Path(__file__).parent / "data" / "perf_analyzer_verbose.csv"
BIN = Path("/opt/pa/perf_analyzer")


def to_record(run: PerfRun, seq_len: int, variant: str = "") -> PointRecord:
    """The record a sweep stores for this run at `seq_len` (PointRecord.of, as every generator makes it)."""
    p = run.point
    point = Point(p.batch_size, seq_len, p.load)
    return PointRecord.of(
        point, measured(run), model=p.model, protocol=p.protocol, generator="perf_analyzer", variant=variant
    )


# ── the command line ────────────────────────────────────────────────────────────────────────────


def test_concurrency_command_has_exact_flags(tmp_path):
    data = tmp_path / "in.json"
    point = PerfPoint("127.0.0.1:8001", "minilm", Load(concurrency=4), "grpc", batch_size=8, input_data=data)
    assert build_command(BIN, point, tmp_path / "out.csv") == [
        "/opt/pa/perf_analyzer",
        "-m", "minilm",
        "-u", "127.0.0.1:8001",
        "-i", "grpc",
        "-b", "8",
        "--concurrency-range", "4:4",
        "--measurement-interval", "5000",
        "--stability-percentage", "10",
        "--max-trials", "10",
        "--input-data", str(data),
        "-f", str(tmp_path / "out.csv"),
        "--verbose-csv",
        "-v",
    ]  # fmt: skip


def test_request_rate_command_with_count_windows_percentile_and_shapes(tmp_path):
    point = PerfPoint(
        "127.0.0.1:8000",
        "minilm_model",
        Load(request_rate=12.5, arrival="poisson"),
        "http",
        measurement_request_count=200,
        stability_pct=25,
        max_trials=3,
        percentile=95,
        shapes={"input_ids": [128], "attention_mask": [128]},
    )
    command = build_command(BIN, point, tmp_path / "o.csv")
    assert command[1:8] == ["-m", "minilm_model", "-u", "127.0.0.1:8000", "-i", "http", "-b"]
    assert command[9:] == [
        "--request-rate-range", "12.5:12.5",
        "--request-distribution", "poisson",
        "--measurement-mode", "count_windows",
        "--measurement-request-count", "200",
        "--stability-percentage", "25",
        "--max-trials", "3",
        "--percentile", "95",
        "--shape", "input_ids:128",
        "--shape", "attention_mask:128",
        "-f", str(tmp_path / "o.csv"),
        "--verbose-csv",
        "-v",
    ]  # fmt: skip
    assert point.load.mode == "request_rate"
    rate = build_command(BIN, PerfPoint("h:1", "m", Load(request_rate=20.0)), tmp_path / "o.csv")
    assert rate[rate.index("--request-rate-range") + 1] == "20:20"
    assert rate[rate.index("--request-distribution") + 1] == "constant"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"protocol": "udp"}, "unknown protocol"),
        ({"batch_size": 0}, "at least 1"),
        ({"percentile": 100}, "range"),
    ],
)
def test_points_perf_analyzer_would_reject_are_refused_early(kwargs, message):
    # the load itself is refused by client.points.Load, the one description every generator reads
    with pytest.raises(PerfAnalyzerError, match=message):
        PerfPoint("127.0.0.1:8001", "minilm", Load(concurrency=1), **kwargs)


# ── input data ──────────────────────────────────────────────────────────────────────────────────


def test_text_data_is_one_batch1_entry_per_text(tmp_path):
    path = write_text_data(tmp_path / "t.json", ["First text.", "Grüße 🙂"])
    assert json.loads(path.read_text(encoding="utf-8")) == {
        "data": [
            {"TEXT": {"content": ["First text."], "shape": [1]}},
            {"TEXT": {"content": ["Grüße 🙂"], "shape": [1]}},
        ]
    }
    with pytest.raises(PerfAnalyzerError, match="text 1 is empty"):
        write_text_data(tmp_path / "bad.json", ["ok", "  "])
    with pytest.raises(PerfAnalyzerError, match="no texts"):
        write_text_data(tmp_path / "bad.json", [])


def test_token_data_rows_become_entries_of_shape_seq(tmp_path):
    ids = np.array([[101, 7592, 102, 0], [101, 2088, 2003, 102]], dtype=np.int64)
    mask = np.array([[1, 1, 1, 0], [1, 1, 1, 1]], dtype=np.int64)
    path = write_token_data(tmp_path / "k.json", ids, mask, vocab_size=30522)
    assert json.loads(path.read_text()) == {
        "data": [
            {
                "input_ids": {"content": [101, 7592, 102, 0], "shape": [4]},
                "attention_mask": {"content": [1, 1, 1, 0], "shape": [4]},
            },
            {
                "input_ids": {"content": [101, 2088, 2003, 102], "shape": [4]},
                "attention_mask": {"content": [1, 1, 1, 1], "shape": [4]},
            },
        ]
    }


@pytest.mark.parametrize(
    ("ids", "mask", "message"),
    [
        ([[1, 30522]], [[1, 1]], "must lie in"),  # out of vocabulary: the crash perf_analyzer's random ids cause
        ([[-1, 5]], [[1, 1]], "must lie in"),
        ([[1, 2]], [[1, 2]], "0/1"),
        ([[1, 2]], [[0, 0]], "at least one real token"),
        ([[1, 2]], [[1, 1, 1]], "must be equal"),
        ([1, 2], [1, 1], "must be equal"),
        ([[1.5, 2.0]], [[1, 1]], "integers"),
    ],
)
def test_invalid_token_data_is_refused(tmp_path, ids, mask, message):
    with pytest.raises(PerfAnalyzerError, match=message):
        write_token_data(tmp_path / "k.json", np.array(ids), np.array(mask), vocab_size=30522)


def test_tokenize_gives_valid_padded_ids_from_real_text():
    tokenizer = resolve_path("minilm") / "tokenizer.json"
    ids, mask = tokenize(tokenizer, ["Hello there.", " ".join(corpus_sentences()[:5])], seq_len=16)
    assert ids.shape == mask.shape == (2, 16) and ids.dtype == np.int64
    assert ids[0, 0] == 101 and ids[0, mask[0].sum() - 1] == 102 and (ids[0, mask[0].sum() :] == 0).all()
    assert mask[1].sum() == 16 and ids.max() < 30522  # truncated to the length, ids in MiniLM's vocabulary


# ── perf_analyzer's real CSV ────────────────────────────────────────────────────────────────────


def test_parse_real_verbose_csv():
    numbers = parse_csv(REAL_CSV)
    assert numbers == {
        "infer_per_s": 87.6553,
        "latency_avg_us": 22742.0,
        "latency_p50_us": 20982.0,
        "latency_p90_us": 31661.0,
        "latency_p95_us": 34602.0,
        "latency_p99_us": 40011.0,
        "server_queue_us": 2.0,
        "server_compute_input_us": 84.0,
        "server_compute_infer_us": 11841.0,
        "server_compute_output_us": 736.0,
        "stable": True,
    }
    assert parse_csv(REAL_CSV, "Failed to obtain stable measurement within 3 windows")["stable"] is False


def test_csv_without_verbose_columns_or_rows_is_an_error(tmp_path):
    plain = tmp_path / "plain.csv"
    plain.write_text("Concurrency,Inferences/Second,Client Send\n1,46.6,0\n")
    with pytest.raises(PerfAnalyzerFailed, match="--verbose-csv"):
        parse_csv(plain)
    header_only = tmp_path / "empty.csv"
    header_only.write_text(REAL_CSV.read_text().splitlines()[0] + "\n")
    with pytest.raises(PerfAnalyzerFailed, match="0 result rows"):
        parse_csv(header_only)


def test_record_converts_units_from_the_real_csv(tmp_path):
    point = PerfPoint("127.0.0.1:8001", "minilm", Load(concurrency=2), "grpc", batch_size=4)
    run = PerfRun(
        point, parse_csv(REAL_CSV), requests=316, passes=[(1.0, 1.0)] * 3, server={}, command=["pa"], version="2.51.0"
    )
    record = to_record(run, seq_len=32, variant="fp32")
    assert record.generator == "perf_analyzer" and record.mode == "concurrency" and record.arrival is None
    assert record.throughput_seq_per_s == pytest.approx(87.6553)  # perf_analyzer's infer/s counts batch items
    assert record.throughput_infer_per_s == pytest.approx(87.6553 / 4)
    assert record.throughput_tokens_per_s == pytest.approx(87.6553 * 32)
    assert record.duration_s == pytest.approx(316 * 4 / 87.6553)
    assert (record.latency_p50_ms, record.latency_p99_ms) == (pytest.approx(20.982), pytest.approx(40.011))
    assert math.isnan(record.latency_max_ms) and record.errors == 0 and record.trials == 3 and record.stable
    assert record.versions["perf_analyzer"] == "2.51.0"
    store = ResultStore(tmp_path)
    store.append(record)
    (loaded,) = store.load()
    assert loaded.key == record.key and math.isnan(loaded.latency_max_ms)


# ── the real binary against the real server ─────────────────────────────────────────────────────


def test_installed_binary_runs_and_finds_its_libraries():
    binary = find_binary()
    env = build_env({"PATH": os.environ.get("PATH", "")})
    assert "cuda_runtime" in env["LD_LIBRARY_PATH"]
    assert binary_version(binary, env) == "2.51.0"


def test_missing_cuda_runtime_is_named():
    try:
        ctypes.CDLL("libcudart.so.12")
        pytest.skip("this host has libcudart.so.12 system-wide")
    except OSError:
        pass
    with pytest.raises(PerfAnalyzerLibraryError, match=r"libcudart\.so\.12 is missing") as caught:
        binary_version(find_binary(), {"PATH": os.environ.get("PATH", "")})
    assert "nvidia-cuda-runtime-cu12" in str(caught.value)


def test_a_binary_on_path_is_found_when_pip_installed_none(tmp_path, monkeypatch):
    import sysconfig

    from client.generators import perf_analyzer

    installed = find_binary()
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setattr(sysconfig, "get_path", lambda name: str(tmp_path))
    monkeypatch.setattr(perf_analyzer, "files", lambda package: [])
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    with pytest.raises(PerfAnalyzerNotFound, match="tritonclient 2.51.0"):
        find_binary()
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "perf_analyzer").symlink_to(installed)
    assert find_binary() == tmp_path / "bin" / "perf_analyzer"


def test_missing_binary_is_a_clear_error(tmp_path):
    point = PerfPoint("127.0.0.1:8001", "minilm", Load(concurrency=1))
    with pytest.raises(PerfAnalyzerNotFound, match="no perf_analyzer at"):
        run_point(point, binary=tmp_path / "perf_analyzer")


# perf_analyzer calls windows stable when max/min of the last three is within 1 + pct/100 (here 2x), for
# throughput and latency alike: wide, because two shared cores make 1 s windows noisy; 5 trials at most.
FAST = {"measurement_interval_ms": 1000, "max_trials": 5, "stability_pct": 100.0}


@pytest.fixture(scope="module")
def text_data(tmp_path_factory) -> Path:
    sentences = corpus_sentences()
    return write_text_data(tmp_path_factory.mktemp("pa") / "texts.json", sentences[100:164])


def _url(server, protocol: str) -> str:
    return server.grpc_url if protocol == "grpc" else server.http_url


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["grpc", "http"])
@pytest.mark.parametrize("concurrency", [1, 2])
def test_minilm_ensemble_with_real_text(server, text_data, protocol, concurrency, tmp_path):
    point = PerfPoint(
        _url(server, protocol), "minilm", Load(concurrency=concurrency), protocol, input_data=text_data, **FAST
    )
    run = run_point(point, timeout_s=60)
    n = run.numbers
    assert n["stable"] and n["infer_per_s"] > 0 and run.requests > 0 and run.version == "2.51.0"
    assert 0 < n["latency_p50_us"] <= n["latency_p90_us"] <= n["latency_p95_us"] <= n["latency_p99_us"]
    assert n["latency_avg_us"] > 0 and n["server_compute_infer_us"] > 0
    assert 3 <= len(run.passes) <= 5 and all(ips > 0 and latency > 0 for ips, latency in run.passes)
    assert run.cpu_s is not None and 0 < run.cpu_s < 60 and (run.cpu_us_per_request() or 0) > 0
    assert set(run.server) == {"minilm_tokenizer", "minilm_model", "minilm_post"}  # the ensemble has no split
    assert all(t.inference_count > 0 and t.compute_infer_us > 0 for t in run.server.values())
    # Little's law: `concurrency` requests are in flight all the time, minus the client's gap between them
    in_flight = n["infer_per_s"] * n["latency_avg_us"] * 1e-6
    assert 0.7 * concurrency <= in_flight <= 1.05 * concurrency
    record = to_record(run, seq_len=32)
    assert record.protocol == protocol and record.concurrency == concurrency and record.stable
    assert 2.0 <= record.duration_s <= 8.0  # the three 1000 ms windows reported
    assert record.latency_p50_ms <= record.latency_p90_ms <= record.latency_p99_ms
    ResultStore(tmp_path).append(record)
    assert ResultStore(tmp_path).load()[0].settings["command"].endswith("--verbose-csv -v")


@pytest.mark.slow
def test_bare_model_with_valid_token_ids(server, served_repo, tmp_path):
    tokenizer = served_repo / "minilm_tokenizer" / "1" / "tokenizer.json"
    ids, mask = tokenize(tokenizer, corpus_sentences()[:32], seq_len=32)
    data = write_token_data(tmp_path / "tokens.json", ids, mask, vocab_size=30522)
    point = PerfPoint(server.grpc_url, "minilm_model", Load(concurrency=1), batch_size=4, input_data=data, **FAST)
    run = run_point(point, timeout_s=60)
    times = run.server["minilm_model"]  # a bare model's own line has the full breakdown
    assert times.inference_count == pytest.approx(run.requests * 4, rel=0.1)
    record = to_record(run, seq_len=32)
    assert record.throughput_seq_per_s == pytest.approx(4 * record.throughput_infer_per_s)
    assert record.throughput_tokens_per_s == pytest.approx(32 * record.throughput_seq_per_s)


@pytest.mark.slow
def test_request_rate_with_poisson_arrivals(server, text_data):
    # Poisson bursts queue on one model instance, so latency swings more than under concurrency: 4x band
    settings = {**FAST, "stability_pct": 300.0}
    poisson = Load(request_rate=30.0, arrival="poisson")
    point = PerfPoint(server.grpc_url, "minilm", poisson, input_data=text_data, **settings)
    record = to_record(run_point(point, timeout_s=60), seq_len=32)
    assert record.mode == "request_rate" and record.arrival == "poisson" and record.request_rate == 30.0
    assert 15.0 <= record.throughput_infer_per_s <= 45.0  # about the 30/s asked for


@pytest.mark.slow
def test_unstable_measurement_is_reported_with_its_windows(server, text_data):
    point = PerfPoint(
        server.grpc_url,
        "minilm",
        Load(concurrency=1),
        input_data=text_data,
        **{**FAST, "stability_pct": 0.1, "max_trials": 3},
    )
    with pytest.raises(PerfAnalyzerUnstable, match="no stable measurement of minilm") as caught:
        run_point(point, timeout_s=60)
    assert len(caught.value.passes) == 3 and "lengthen --measurement-interval" in str(caught.value)


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_unreachable_server_gives_perf_analyzers_own_message(text_data, protocol):
    point = PerfPoint(f"127.0.0.1:{free_port()}", "minilm", Load(concurrency=1), protocol, input_data=text_data, **FAST)
    with pytest.raises(PerfAnalyzerFailed, match="failed to get model metadata") as caught:
        run_point(point, timeout_s=60)
    assert "exit 99" in str(caught.value) and "check the URL" in str(caught.value)


@pytest.mark.slow
def test_unknown_model_and_rejected_text_carry_the_servers_message(server, tmp_path):
    unknown = PerfPoint(server.grpc_url, "nosuch", Load(concurrency=1), **FAST)
    with pytest.raises(PerfAnalyzerFailed, match="'nosuch' is not found"):
        run_point(unknown, timeout_s=60)
    blank = tmp_path / "blank.json"  # bypasses write_text_data's check, as a hand-made file would
    blank.write_text(json.dumps({"data": [{"TEXT": {"content": ["   "], "shape": [1]}}]}))
    rejected = PerfPoint(server.grpc_url, "minilm", Load(concurrency=1), input_data=blank, **FAST)
    with pytest.raises(PerfAnalyzerFailed, match="empty or whitespace only"):
        run_point(rejected, timeout_s=60)
