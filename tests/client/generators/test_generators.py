"""The one interface: both generators, by name, turn what they measured into records of one shape."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from client.generators import GENERATORS, Generator
from client.generators.base import GeneratorConfig
from client.generators.load import PointRun
from client.generators.measure import Completion, Failures, MeasurementConfig, window_of
from client.generators.perf_analyzer import PerfAnalyzer, PerfPoint, PerfRun, measured, parse_csv
from client.generators.tritonbench import Tritonbench
from client.points import Load, Point
from client.records import PointRecord, Settings
from client.targets.requests import Requests
from client.transport.text_client import ClientConfig, ClientError

REAL_CSV = Path(__file__).parent / "data" / "perf_analyzer_verbose.csv"
MEASUREMENT = MeasurementConfig(window_s=1.0, stability_pct=10, stable_windows=2, max_trials=4, warmup_s=0.5)
CONFIG = GeneratorConfig(ClientConfig("127.0.0.1:8001", "minilm"), MEASUREMENT, variant="fp32")
POINT = Point(4, 32, Load(concurrency=2))


def _stats(count: int) -> dict:
    phases = {f"{p}_{unit}": count * (10 if unit == "ns" else 1) for p in
              ("queue", "compute_input", "compute_infer", "compute_output") for unit in ("ns", "count")}  # fmt: skip
    return {"minilm_model": {"inference_count": count, "execution_count": count, **phases}}


def _run() -> PointRun:
    """Two windows of 100 answers 10 ms each, a failure in warm-up, the server's counters at every edge."""
    answered = [Completion(w + i / 100 - 0.01, w + i / 100, True) for w in (1.0, 2.0) for i in range(100)]
    windows = [window_of(answered, 1.0, 2.0), window_of(answered, 2.0, 3.0)]
    snapshots = [{"stats": {"127.0.0.1:8001": _stats(n)}, "gpu": {}} for n in (0, 100, 200)]
    return PointRun(windows, snapshots, True, "one refused", Failures(errors=1, timeouts=0), sent=250)


def test_the_registry_names_every_generator_by_its_records_word():
    assert {"tritonbench": Tritonbench, "perf_analyzer": PerfAnalyzer} == GENERATORS
    assert all(issubclass(g, Generator) and g.name == name for name, g in GENERATORS.items())


def test_tritonbench_records_a_run_through_the_one_constructor():
    generator = Tritonbench(CONFIG, Requests("minilm", None))
    record = generator.record(POINT, generator.measured(POINT, _run(), cpu_s=0.5))
    assert (record.generator, record.model, record.variant, record.mode) == (
        "tritonbench",
        "minilm",
        "fp32",
        "concurrency",
    )
    assert (record.batch_size, record.seq_len, record.concurrency, record.arrival) == (4, 32, 2, None)
    assert record.requests == 200 and record.errors == 1 and record.trials == 2 and record.stable
    assert record.throughput_infer_per_s == pytest.approx(100.0)
    assert record.throughput_seq_per_s == pytest.approx(400.0) and record.throughput_tokens_per_s == pytest.approx(
        12800
    )
    assert record.latency_p50_ms == pytest.approx(10.0) and record.server["minilm_model"].inference_count == 200
    assert record.settings == {**dataclasses.asdict(MEASUREMENT), "url": "127.0.0.1:8001", "percentile": None,
                               "command": "", "input_data": "", "server_total_us": {},
                               "client_cpu_us_per_request": pytest.approx(2000.0),  # 0.5 s over 250 sent
                               "stats_urls": ()}  # fmt: skip
    assert record.replicas == {}  # one server: its breakdown is `server`
    assert record.host and record.timestamp and record.versions["tritonclient"]


def test_a_run_without_an_answer_is_a_clear_error():
    generator = Tritonbench(CONFIG, Requests("minilm", None))
    failed = [Completion(1.1, 1.2, False)]
    run = PointRun([window_of(failed, 1.0, 2.0)] * 2, [{"stats": {}, "gpu": {}}] * 3, False, "refused", Failures(1, 0))
    with pytest.raises(ClientError, match="no request succeeded at batch 4, length 32: refused"):
        generator.measured(POINT, run)


def test_perf_analyzer_records_its_run_in_the_same_shape():
    spec = PerfPoint("127.0.0.1:8001", "minilm", POINT.load, batch_size=4, measurement_interval_ms=1000, max_trials=4)
    run = PerfRun(spec, parse_csv(REAL_CSV), requests=316, passes=[(8.0, 1.0)] * 3, server={}, command=["pa", "-v"],
                  version="2.51.0", cpu_s=0.3)  # fmt: skip
    record = PerfAnalyzer(CONFIG, Requests("minilm", None)).record(POINT, measured(run))
    tritonbench = Tritonbench(CONFIG, Requests("minilm", None))
    reference = tritonbench.record(POINT, tritonbench.measured(POINT, _run()))
    assert record.key[:2] == reference.key[:2] and record.key[3:] == reference.key[3:]  # only the generator differs
    assert record.generator == "perf_analyzer" and set(record.settings) == set(reference.settings)
    assert set(record.settings) == {f.name for f in dataclasses.fields(Settings)}
    assert record.settings["window_s"] == 1.0 and record.settings["window_requests"] == 0
    assert record.settings["stable_windows"] == 3 and record.settings["warmup_s"] == 0.0  # what perf_analyzer does
    assert record.settings["command"] == "pa -v" and record.settings["server_total_us"]["server_queue_us"] == 2.0
    assert record.versions["perf_analyzer"] == "2.51.0" and record.versions["tritonclient"]
    # three 1 s windows of 8 items/s at batch 4: 6 requests sent for 0.3 s of perf_analyzer's CPU
    assert record.settings["client_cpu_us_per_request"] == pytest.approx(50_000.0)
    assert isinstance(record, PointRecord) and PointRecord.from_dict(dataclasses.asdict(record)).key == record.key
