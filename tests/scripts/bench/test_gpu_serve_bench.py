"""The served GPU bench's own verdict (scripts/bench/gpu_serve_bench.py), on the records of real H200 runs.

The bench exits 1, naming the deployment, when the served path falls behind; here its `checks` and `targets` read
the records and in-process baselines that two runs stored (scripts/results/h200_2026-12-02/). It runs in a child
process: importing the bench applies the backend stubs' thread settings to the importing process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
RUNS = ROOT / "scripts" / "results" / "h200_2026-12-02"
VERDICT = """
import json, sys
from pathlib import Path
from client.records import load_records
from scripts.bench.gpu_serve_bench import checks, targets
run = Path(sys.argv[1])
records = load_records([run / "results.jsonl"])
baseline = json.loads((run / "summary.json").read_text())["in_process"]
print(json.dumps({
    "failures": checks(records, baseline, float(sys.argv[2]), float(sys.argv[3])),
    "targets": [[t, m, ok] for t, m, ok in targets(records, baseline, (4, 8, 2), 8)],
}))
"""


def verdict(run: str, min_ratio: float = 0.90, max_step_ms: float = 1.0) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", VERDICT, str(RUNS / run), str(min_ratio), str(max_step_ms)],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(done.stdout)


def test_a_slow_step_is_named_and_a_good_run_passes():
    assert verdict("serve_1258")["failures"] == [
        "bert (bert_tokenizer): server compute at batch 1 is 1.06 ms (> 1.0 ms)"
    ]
    assert verdict("serve_1321")["failures"] == []


def test_a_served_model_below_the_ratio_is_named_with_its_generator():
    failures = verdict("serve_1321", min_ratio=0.95)["failures"]
    assert len(failures) == 2 and all(f.startswith("bert_model (") and "(< 0.95)" in f for f in failures)
    assert {f.split(")")[0] for f in failures} == {"bert_model (perf_analyzer", "bert_model (tritonbench"}


def test_targets_report_what_was_measured():
    rows = {target: (measured, met) for target, measured, met in verdict("serve_1321")["targets"]}
    assert rows["served model only, batch 32 ≥ 18,000 seq/s"] == ("18,490 seq/s", True)
    assert rows["single model b1 c1 p50 ≤ 1.5 ms"] == ("1.86 ms", False)
    assert rows["Runner 1 × 128 ≤ 0.6 ms"][1] is True
    assert rows["(the same over HTTP)"] == ("nan texts/s", None)  # that run measured the ensemble over gRPC only


def test_targets_a_partial_run_did_not_measure_are_neither_met_nor_missed():
    rows = {target: (measured, met) for target, measured, met in verdict("mps_idle_2144")["targets"]}
    assert rows["served model only, batch 32 ≥ 18,000 seq/s"][1] is None  # --only bert@64,bertfe1
    assert rows["3-step ensemble b1 c1 p50 ≤ 3.0 ms"][1] is None
    assert rows["3-step ensemble c64 ≥ 8,000 texts/s"] == ("6,989 texts/s", False)
    assert rows["single model b1 c1 p50 ≤ 1.5 ms"] == ("1.68 ms", False)


def test_only_selects_deployments_and_concurrencies_of_the_plan():
    script = (
        "import json; from scripts.bench.gpu_serve_bench import selected, PLAN\n"
        "print(json.dumps({o: [[p.model, p.concurrency] for p in selected(o)] for o in "
        "['bert@64,bertwide', 'bertsm@1', 'bertfloor', '']} | {'all': len(PLAN)}))"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    chosen = json.loads(done.stdout)
    # the ensemble over gRPC and HTTP by both tools, then its steps alone (they are bert's too), then bertwide
    steps = [["bert_tokenizer", 64], ["bert_model", 64]]
    assert chosen["bert@64,bertwide"] == [["bert", 64]] * 4 + steps + [["bertwide", 64]]
    assert chosen["bertfloor"] == [["bertfloor", 64]]
    assert chosen["bertsm@1"] == []  # the single model is measured at c64 only: main() refuses this
    assert len(chosen[""]) == chosen["all"]


SETTINGS = """
import json, sys
from scripts.bench.gpu_serve_bench import server_settings
def show(args):
    try:
        return [
            [s.shm_mib, s.cpu_latency_us, s.idle_poll, s.folder, s.label, [type(h).__name__ for h in s.holds]]
            for s in server_settings(*args)
        ]
    except ValueError as exc:
        return str(exc)
print(json.dumps([show(args) for args in json.loads(sys.argv[1])]))
"""


def settings_of(*options: tuple[str, ...]) -> list:
    """server_settings(*args) for each tuple of --shm-mib, --cpu-latency-us (and --idle-poll, --mps), in a child
    process: [shm_mib, cpu_latency_us, idle_poll, folder, label, holds] per server, or the ValueError's message."""
    command = [sys.executable, "-c", SETTINGS, json.dumps(options)]
    return json.loads(subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True).stdout)


def test_server_settings_pair_shared_memory_sizes_with_cpu_latency_limits():
    found = settings_of(("0", "none,0"), ("0,64", "none"), ("0,64", "0,none"), ("0,64,1", "none,0"))
    paired, sizes, both = ([[row[0], row[1], row[3]] for row in rows] for rows in found[:3])
    assert paired == [[0, None, "shm_0mib"], [0, 0, "shm_0mib_cpu_0us"]]
    assert sizes == [[0, None, "shm_0mib"], [64, None, "shm_64mib"]]
    assert both == [[0, 0, "shm_0mib_cpu_0us"], [64, None, "shm_64mib"]]
    assert "give one value or one per server" in found[3]


def test_server_settings_pair_idle_poll_and_mps_with_the_other_settings_and_refuse_other_words():
    both, broadcast, word, mismatched, mps, bad_mps = settings_of(
        ("0", "none", "off,on"), ("0", "none,0", "on"), ("0", "none", "yes"), ("0,64", "none", "on,off,on"),
        ("0", "none", "on", "off,on"), ("0", "none", "off", "yes"),
    )  # fmt: skip
    assert [row[2:] for row in both] == [
        [False, "shm_0mib", "default MiB, host's CPU idle", []],
        [True, "shm_0mib_idle_poll", "default MiB, host's CPU idle, idle poll", ["IdlePoll"]],
    ]
    assert [row[2:4] for row in broadcast] == [[True, "shm_0mib_idle_poll"], [True, "shm_0mib_cpu_0us_idle_poll"]]
    assert broadcast[1][5] == ["CpuLatencyHold", "IdlePoll"]
    assert "--idle-poll yes: give on or off" in word
    assert "give one value or one per server" in mismatched
    assert [row[3:] for row in mps] == [
        ["shm_0mib_idle_poll", "default MiB, host's CPU idle, idle poll", ["IdlePoll"]],
        ["shm_0mib_idle_poll_mps", "default MiB, host's CPU idle, idle poll, MPS", ["IdlePoll", "Mps"]],
    ]
    assert "--mps yes: give on or off" in bad_mps


def test_a_smoke_run_measures_by_rounds_on_one_server_with_each_roles_cpu(tmp_path):
    """The bench itself, on the CPU (--smoke): the real server, perf_analyzer and the bundled BERT tokenizer."""
    from builder.sources.source import resolve_path

    out = tmp_path / "out"
    command = [sys.executable, "-m", "scripts.bench.gpu_serve_bench", "--out", str(out), "--tokenizer",
               str(resolve_path("minilm")), "--work", str(tmp_path / "work"), "--smoke", "--only", "bertfloor",
               "--rounds", "2", "--window-s", "1"]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert [r["setting"] for r in summary["rounds"]] == ["default MiB, host's CPU idle"] * 2
    assert (out / "sweep").is_dir() and (out / "sweep_round2").is_dir()
    # one census per round, each with the CPU that tritonserver and the measured deployment's stubs used per request
    assert set(summary["census_c64"]) == {"bertfloor perf_analyzer", "bertfloor perf_analyzer round 2"}
    for census in summary["census_c64"].values():
        cpu = census["cpu_per_request"]
        assert cpu["server_us"] > 0 and cpu["bertfloor_model_us"] > 0 and cpu["bertfloor_tokenizer_us"] > 0
        assert 0 < cpu["host_busy_cores"] <= (os.cpu_count() or 1)
    assert "| point (p50 ms at c1, seq/s above) | round 1:" in done.stdout


def test_bertwide_batch_buckets_are_read_as_make_repo_reads_them():
    parsed = subprocess.run(
        [sys.executable, "-c", "from scripts.bench.gpu_serve_bench import sizes; print(sizes('1,2,3,16'))"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert parsed.stdout.strip() == "(1, 2, 3, 16)"
    command = [sys.executable, "-m", "scripts.bench.gpu_serve_bench", "--out", "unused", "--tokenizer", "unused",
               "--wide-batch-buckets", "8,x"]  # fmt: skip
    refused = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "'8,x' is not a comma-separated list of integers" in refused.stderr
