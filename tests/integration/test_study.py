"""`tritonbench study` end to end on this CPU: tiny models, the real bundled server, killed twice and resumed.

The issue's targets: kill the study at a random point and rerun → the same final store (every planned
point, once), no point measured twice (what was stored before a kill is still there, byte for byte);
and the report's tables are the store's (regenerated from it and compared).
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from client.experiments.study_config import load_config
from client.experiments.study_records import StudyRecord, study_store
from client.experiments.study_report import report_tables
from client.experiments.study_run import StudyOptions, StudyPaths, prepare
from client.experiments.study_tables import StudyData

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]

CONFIG = """
[study]
name = "tiny"
gpu = "cpu"
precisions = ["fp32", "fp16", "bf16"]      # bf16: the cpu profile has none, so the plan leaves it out
batch_sizes = [1, 2]
seq_lens = [16, 32]

[[models]]
name = "dbert"
source = "{distilbert}"
task = "text-classification"

[[models]]
name = "gpt2"
source = "{gpt2}"
task = "causal-lm"

[inprocess]
warmup = 1
min_repeats = 3
max_repeats = 5
seconds = 0.05

[cpu]
threads = 1
warmup = 1
min_repeats = 2
max_repeats = 3
seconds = 0.05

[served]
batch_sizes = [1, 2]
seq_lens = [32]
concurrency = [1]
window_s = 0.3
warmup_s = 0.2
stable_windows = 2
max_trials = 3
stability_pct = 50.0

[fidelity]
texts = 8
batch_size = 4

[report]
reference_seq_len = 32
latency_budgets_ms = [5, 500]
"""


def lines(store: Path) -> list[bytes]:
    """The store's complete lines (a torn last one, without its newline, left out)."""
    if not store.is_file():
        return []
    data = store.read_bytes()
    return data[: data.rfind(b"\n") + 1].splitlines(keepends=True)


def run_study(config: Path, out: Path, kill_after: int | None = None, timeout_s: float = 900) -> list[bytes]:
    """The CLI in a child process; with `kill_after`, SIGKILLed once that many points are stored."""
    command = [sys.executable, "-m", "client", "study", str(config), "--out", str(out), "--no-progress"]
    log = (out.parent / f"study-{len(list(out.parent.glob('study-*.log')))}.log").open("wb")
    child = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + timeout_s
    try:
        while child.poll() is None and time.monotonic() < deadline:
            if kill_after is not None and len(lines(out / "study.jsonl")) >= kill_after:
                os.killpg(child.pid, signal.SIGKILL)  # mid-point: the next one is already being measured
                break
            time.sleep(0.05)
        else:
            if child.poll() is None:
                pytest.fail(f"the study did not finish in {timeout_s:.0f} s; log: {log.name}")
        child.wait(timeout=60)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
        log.close()
    if kill_after is None:
        assert child.returncode == 0, Path(log.name).read_text()[-3000:]
    return lines(out / "study.jsonl")


def test_a_killed_study_resumes_to_the_same_store_and_reports_the_stores_numbers(tmp_path, tiny_models):
    config_file = tmp_path / "study.toml"
    config_file.write_text(CONFIG.format(distilbert=tiny_models["distilbert"], gpt2=tiny_models["gpt2"]))
    config, out = load_config(config_file), tmp_path / "out"
    plan = prepare(config, StudyPaths(out, out / "work"), StudyOptions())
    planned = [p.key for p in plan.points]
    assert len(planned) == 44 and {p.precision for p in plan.points} == {"fp32", "fp16"}

    # Two kills at random points: one before serving (mid-measurement in process), one while the server serves.
    rng, serving = random.Random(15), next(i for i, p in enumerate(plan.points) if p.kind == "served")
    after_first = run_study(config_file, out, kill_after=rng.randint(1, serving - 1))
    assert 1 <= len(after_first) < serving
    after_second = run_study(config_file, out, kill_after=rng.randint(serving + 1, len(planned) - 1))
    assert serving < len(after_second) < len(planned)
    assert after_second[: len(after_first)] == after_first  # nothing stored was measured again or rewritten
    final = run_study(config_file, out)
    assert final[: len(after_second)] == after_second

    keys = [StudyRecord.from_dict(json.loads(line)).key for line in final]
    assert len(keys) == len(set(keys))  # no point measured twice
    assert keys == planned  # the same final store as one uninterrupted run: every point, in the plan's order
    assert final == lines(out / "study.jsonl") and (out / "study.jsonl").read_bytes().endswith(b"\n")

    # The report's tables are the store's: regenerated from the final store, they are what the report prints.
    records = study_store(out).load()
    markdown = (out / "report" / "report.md").read_text()
    page = (out / "report" / "report.html").read_text()
    for table in report_tables(StudyData(records), config.report):
        assert table.markdown() in markdown, table.key
        assert table.html() in page, table.key
    assert len(re.findall(r'src="data:image/png;base64,', page)) == 5

    # ... and one cell recomputed from the raw JSON lines, not through the report's code
    raw = [json.loads(line) for line in final]
    cpu = next(r for r in raw if r["kind"] == "cpu" and (r["model"], r["batch_size"], r["seq_len"]) == ("gpt2", 2, 32))
    gpus = {r["precision"]: r["latency"]["p50_ms"] for r in raw
            if r["kind"] == "inprocess" and (r["model"], r["batch_size"], r["seq_len"]) == ("gpt2", 2, 32)}  # fmt: skip
    best = min(gpus, key=gpus.get)
    speedup = cpu["latency"]["p50_ms"] / gpus[best]
    cell = f"{speedup:.1f}× {best}" if speedup >= 10 else f"{speedup:.2f}× {best}"
    section = markdown.split("**gpt2: speedup over the CPU FP32 baseline")[1]
    row = next(line for line in section.splitlines() if line.startswith("| batch 2 |"))
    assert row.strip("| ").split(" | ")[2] == cell  # the length-32 column

    served = [r for r in records if r.kind == "served"]
    assert len(served) == 8 and all(r.served and r.served.errors == 0 and r.served.requests > 0 for r in served)
    fidelity = [r for r in records if r.kind == "fidelity"]
    assert all({m.inputs for m in r.fidelity} == {"real text", "random ids"} for r in fidelity)
    assert all(m.min_cosine > 0.999 and m.nonfinite_rate == 0 for r in fidelity for m in r.fidelity)
