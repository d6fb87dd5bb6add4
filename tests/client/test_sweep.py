"""Sweeps against the real bundled server."""

from __future__ import annotations

import asyncio
import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from builder.common.corpus import corpus_sentences
from builder.serving.server import TritonServer
from client.cli import main
from client.generators.measure import MeasurementConfig
from client.records import PointRecord, ResultStore
from client.sweep import SweepConfig, plan_points, point_line, run_sweep
from client.transport.text_client import ClientConfig

pytestmark = pytest.mark.slow
ROOT = Path(__file__).parents[2]  # `python -m client` runs this checkout's code
SENTENCES = corpus_sentences()
FAST = MeasurementConfig(window_s=0.5, stability_pct=50, stable_windows=2, max_trials=4, warmup_s=0.2)


def _config(server, model="minilm", **kw) -> SweepConfig:
    base = {"batch_sizes": (1, 2), "seq_lens": (16,), "concurrency": (1, 2), "measurement": FAST}
    return SweepConfig(ClientConfig(server.grpc_url, model), **{**base, **kw})


def test_sweep_records_every_point_with_the_servers_breakdown(server, served_repo, tmp_path):
    store = ResultStore(tmp_path)
    records = run_sweep(_config(server), store, echo=lambda _: None, repo=served_repo, progress=False)
    stored = store.load()
    assert [(r.batch_size, r.concurrency) for r in stored] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    assert [r.to_json() for r in records] == [r.to_json() for r in stored]
    for r in stored:
        assert r.generator == "tritonbench" and r.mode == "concurrency" and r.errors == 0 and r.requests > 0
        assert r.throughput_seq_per_s == pytest.approx(r.throughput_infer_per_s * r.batch_size)
        assert r.throughput_tokens_per_s == pytest.approx(r.throughput_seq_per_s * 16)
        assert 0 < r.latency_p50_ms <= r.latency_p90_ms <= r.latency_p95_ms <= r.latency_p99_ms <= r.latency_max_ms
        assert set(r.server) >= {"minilm", "minilm_tokenizer", "minilm_model", "minilm_post"}
        assert r.server["minilm_model"].compute_infer_us > 0
        assert r.trials >= 2 and isinstance(r.stable, bool) and r.versions["tritonclient"]
        assert r.gpu == {}  # no GPU on this machine
        # the event loop's and gRPC's CPU per request: more than nothing, less than a whole request's latency
        assert 0 < r.settings["client_cpu_us_per_request"] < r.latency_avg_ms * 1000


def test_bare_model_and_request_rate(server, served_repo, tmp_path):
    config = _config(server, "minilm_model", concurrency=(), request_rates=(20.0,), arrival="poisson", batch_sizes=(2,))
    (record,) = run_sweep(config, ResultStore(tmp_path), echo=lambda _: None, repo=served_repo, progress=False)
    assert record.mode == "request_rate" and record.request_rate == 20.0 and record.arrival == "poisson"
    assert record.concurrency is None and record.requests > 0
    assert set(record.server) == {"minilm_model"}


def test_a_rerun_resumes_and_measures_only_new_points(server, served_repo, tmp_path):
    store = ResultStore(tmp_path)
    first = run_sweep(_config(server, batch_sizes=(1,)), store, echo=lambda _: None, repo=served_repo, progress=False)
    lines: list[str] = []
    again = run_sweep(_config(server, batch_sizes=(1,)), store, echo=lines.append, repo=served_repo, progress=False)
    assert again == [] and "2 already in" in lines[0]
    more = run_sweep(_config(server, batch_sizes=(1, 2)), store, echo=lambda _: None, repo=served_repo, progress=False)
    assert [(r.batch_size, r.concurrency) for r in more] == [(2, 1), (2, 2)]
    assert len(store.load()) == len(first) + 2


def test_killing_the_server_mid_sweep_keeps_earlier_points(served_repo, tmp_path):
    out = tmp_path / "out"
    with TritonServer(served_repo) as victim:
        exe = Path(sys.executable).parent / "tritonbench"
        proc = subprocess.Popen(
            [
                str(exe),
                "sweep",
                "--url",
                victim.grpc_url,
                "--model",
                "minilm",
                "--batch-sizes",
                "1,2,4,8",
                "--seq-lens",
                "16",
                "--concurrency",
                "1",
                "--measurement-interval",
                "500",
                "--stable-windows",
                "2",
                "--max-trials",
                "3",
                "--warmup",
                "0.2",
                "--repo",
                str(served_repo),
                "--out",
                str(out),
                "--no-progress",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not ResultStore(out).load():
            time.sleep(0.1)
        victim.stop()
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1, output
    assert "saved in" in output and "run the same command again" in output
    assert "Traceback" not in output
    records = ResultStore(out).load()
    assert 1 <= len(records) < 4 and records[0].batch_size == 1


def test_a_torn_last_line_is_skipped(tmp_path, server, served_repo):
    store = ResultStore(tmp_path)
    run_sweep(
        _config(server, batch_sizes=(1,), concurrency=(1,)),
        store,
        echo=lambda _: None,
        repo=served_repo,
        progress=False,
    )
    with store.path.open("a") as f:
        f.write('{"model": "minilm", "batch_')  # a kill mid-write
    with pytest.warns(UserWarning, match="skipped 1 damaged line"):
        assert len(store.load()) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "nope"], "unknown model"),
        (["--model", "minilm", "--batch-sizes", "64"], "batch size 64 exceeds max_batch_size 32"),
        (["--model", "minilm", "--seq-lens", "512"], "sequence length 512 exceeds the 256 tokens"),
        (["--model", "minilm", "--tokenizer", "/nonexistent.json"], "no tokenizer.json"),
    ],
)
def test_clear_errors_before_any_load(server, served_repo, tmp_path, args, message):
    result = CliRunner().invoke(
        main,
        ["sweep", "--url", server.grpc_url, "--repo", str(served_repo), "--out", str(tmp_path), "--no-progress", *args],
    )
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output
    assert ResultStore(tmp_path).load() == []


def test_text_model_without_tokenizer_says_how_to_fix(server, tmp_path):
    result = CliRunner().invoke(
        main,
        [
            "sweep",
            "--url",
            server.grpc_url,
            "--model",
            "minilm",
            "--repo",
            str(tmp_path),
            "--out",
            str(tmp_path),
            "--no-progress",
        ],
    )
    assert result.exit_code == 1 and "--tokenizer" in result.output


def test_grid_order():
    config = SweepConfig(ClientConfig("h:1", "m"), (1, 8), (32, 128), concurrency=(1, 4))
    assert [(p.batch_size, p.seq_len, p.load.concurrency) for p in plan_points(config)][:3] == [
        (1, 32, 1),
        (1, 32, 4),
        (1, 128, 1),
    ]
    assert len(plan_points(config)) == 8
    assert json.loads(json.dumps(list(config.key(plan_points(config)[0]))))[0] == "m"


def test_perf_analyzer_generator_measures_the_same_grid(server, served_repo, tmp_path):
    relaxed = MeasurementConfig(window_s=1.0, stability_pct=100, stable_windows=3, max_trials=5, warmup_s=0.2)
    config = _config(server, batch_sizes=(1,), concurrency=(1,), measurement=relaxed, generator="perf_analyzer")
    (record,) = run_sweep(config, ResultStore(tmp_path), echo=lambda _: None, repo=served_repo, progress=False)
    assert record.generator == "perf_analyzer" and record.seq_len == 16 and record.requests > 0
    assert 0 < record.latency_p50_ms <= record.latency_p99_ms and record.stable
    assert "minilm_model" in record.server
    assert 0 < record.settings["client_cpu_us_per_request"] < record.latency_avg_ms * 1000


def test_engine_perf_analyzer_still_chooses_perf_analyzer(server, served_repo, tmp_path):
    command = ["sweep", "--url", server.grpc_url, "--model", "minilm", "--seq-lens", "16", "--engine", "perf_analyzer"]
    command += ["--measurement-interval", "1000", "--stability-percentage", "100", "--max-trials", "5"]
    result = CliRunner().invoke(main, [*command, "--repo", str(served_repo), "--out", str(tmp_path), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "The option 'engine' is deprecated. use --generator" in result.output
    (record,) = ResultStore(tmp_path).load()
    assert (
        record.generator == "perf_analyzer" and '"generator": "perf_analyzer"' in ResultStore(tmp_path).path.read_text()
    )


def test_a_generator_that_never_settles_stores_nothing_and_says_so(server, served_repo, tmp_path, monkeypatch):
    from client.generators import GENERATORS
    from client.generators.tritonbench import Tritonbench

    class Unsettled(Tritonbench):  # a real run, then no settled number, as perf_analyzer reports an unstable point
        name = "unsettled"

        def _measure(self, point, target):
            super()._measure(point, target)

    monkeypatch.setitem(GENERATORS, "unsettled", Unsettled)
    lines: list[str] = []
    config = _config(server, batch_sizes=(1,), concurrency=(1,), generator="unsettled")
    assert run_sweep(config, ResultStore(tmp_path), echo=lines.append, repo=served_repo, progress=False) == []
    assert ResultStore(tmp_path).load() == []
    assert "unsettled found no stable measurement at b1 s16 c1; not stored (a rerun retries it)" in lines


def _measure_with(server, config: SweepConfig, texts_for) -> PointRecord:
    """One point of `config` whose request i sends texts_for(i), run and recorded as a sweep does."""
    from client.generators.load import run_point
    from client.generators.tritonbench import Tritonbench
    from client.points import Load, Point
    from client.targets.requests import Requests
    from client.transport.server_stats import counters
    from client.transport.text_client import AsyncTextClient

    async def go():
        async with AsyncTextClient(config.client) as client:

            async def send(index: int) -> None:
                await client.infer(texts_for(index))

            async def sample():
                return {"stats": {config.client.url: counters(await client.statistics())}, "gpu": {}}

            return await run_point(send, Load(concurrency=1), config.measurement, sample)

    point = Point(1, 16, Load(concurrency=1))
    generator = Tritonbench(config.generator_config(), Requests(config.client.model, None))
    return generator.record(point, generator.measured(point, asyncio.run(go())))


def test_errors_during_warm_up_are_counted_in_the_record(server):
    config = _config(server, measurement=MeasurementConfig(0.5, 0, 50, 2, 4, warmup_s=1.0))
    record = _measure_with(server, config, lambda i: [""] if i < 5 else [f"good text {i}"])  # 5 refused, first
    assert record.errors == 5 and record.timeouts == 0 and record.requests > 0


def test_timeouts_are_counted_apart(server):
    long_texts = [" ".join(SENTENCES[i : i + 40]) for i in range(32)]  # 32 × 256 tokens: seconds on two cores
    config = SweepConfig(
        ClientConfig(server.grpc_url, "minilm", timeout_s=1.0),
        (1,),
        (16,),
        concurrency=(1,),
        measurement=MeasurementConfig(0.5, 0, 50, 2, 4, warmup_s=0.2),
    )
    record = _measure_with(server, config, lambda i: long_texts if i == 0 else [f"good text {i}"])
    assert record.timeouts == 1 and record.errors == 1 and record.requests > 0
    assert "errors 1 (timeouts 1)" in point_line(record)


def test_ctrl_c_says_which_points_are_saved_and_no_progress_prints_each_point(server, served_repo, tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "client", "sweep", "--url", server.grpc_url, "--model", "minilm"]
    command += ["--batch-sizes", "1,2,4,8", "--seq-lens", "16", "--concurrency", "1", "--measurement-interval", "500"]
    command += ["--stable-windows", "2", "--max-trials", "3", "--warmup", "0.2", "--repo", str(served_repo)]
    command += ["--out", str(out), "--no-progress"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT)
    # interrupt once the first point's line is out (it is printed after the point is stored): waiting for the
    # file instead could interrupt between the two, and the line would never come
    early, deadline = b"", time.monotonic() + 60
    while time.monotonic() < deadline and not re.search(rb"\n\[1/4\][^\n]*\n", early):
        if select.select([proc.stdout], [], [], 0.5)[0]:
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:  # it exited: the assertions below say how
                break
            early += chunk
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=60)
    output = (early + rest).decode()
    saved = ResultStore(out).load()
    assert proc.returncode == 1 and "Traceback" not in output, output
    assert 1 <= len(saved) < 4
    names = ", ".join(f"b{r.batch_size} s16 c1" for r in saved)
    assert f"interrupted: {len(saved)} new point(s) of this run are saved in {out / 'results.jsonl'}: {names}" in output
    assert f"the same command measures the other {4 - len(saved)}" in output
    for number, record in enumerate(saved, 1):  # --no-progress: each point's line, as it finished
        assert f"[{number}/4] {point_line(record)}" in output
