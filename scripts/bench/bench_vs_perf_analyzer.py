"""tritonbench against NVIDIA's perf_analyzer: same server, model, inputs, windows and stability rule.

RUNS independent runs against one server (warmed first, so neither tool meets a cold one). In each run, at
each concurrency level, the tools measure the point in the order --order gives: `abba` (the default)
measures tritonbench, perf_analyzer, perf_analyzer, tritonbench (odd runs; even runs start with
perf_analyzer), so that a server drifting over the run's minute weighs on both tools alike, and compares
each tool's mean of its two readings; `sequential` measures tritonbench then perf_analyzer once each.
Every run's ratio must keep tritonbench's throughput within --min-ratio (0.95) of perf_analyzer's: the
script prints each reading, each run's ratio, each tool's CPU time per request sent and the medians,
writes JSON and Markdown, and exits 1 naming every run and level below the bar. From the repository's root:
  python -m scripts.bench.bench_vs_perf_analyzer [--runs 5] [--concurrency 1,4] [--order abba] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from builder.common.versions import package_versions
from builder.repository.pipeline import make_repo
from builder.serving.server import TritonServer
from client.generators.measure import MeasurementConfig
from client.records import PointRecord, ResultStore
from client.sweep import SweepConfig, run_sweep
from client.transport.text_client import ClientConfig

ROOT = Path(__file__).resolve().parents[2]
ENGINES = ("tritonbench", "perf_analyzer")  # the order: tritonbench first, then perf_analyzer
ORDERS = {
    "abba": "tritonbench, perf_analyzer, perf_analyzer, tritonbench (even runs: the reverse), each tool's mean "
    "of its two readings compared",
    "sequential": "tritonbench then perf_analyzer",
}


def cpu_model() -> str:
    """The CPU's model name and core count, for the record."""
    lines = subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
    name = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("Model name")), "unknown")
    return f"{name}, {len(os.sched_getaffinity(0))} cores"


def measure(
    server: TritonServer, store: ResultStore, engine: str, concurrency: int, label: str, args: argparse.Namespace
) -> PointRecord | None:
    """One point with one tool (the variant label names the run, so the store keeps every reading)."""
    config = SweepConfig(
        ClientConfig(server.grpc_url, args.model),
        (args.batch,),
        (args.seq_len,),
        concurrency=(concurrency,),
        measurement=MeasurementConfig(
            window_s=args.window_ms / 1000,
            stability_pct=args.stability,
            stable_windows=3,
            max_trials=args.max_trials,
            warmup_s=1.0,
        ),
        generator=engine,
        variant=label,
    )
    records = run_sweep(config, store, echo=lambda _: None, repo=args.repo, progress=False)
    return records[0] if records else None  # None: perf_analyzer never settled (it stores no number then)


def order(run: int, protocol: str) -> list[str]:
    """The tools in the order run `run` measures them: once each, or ABBA (odd runs from tritonbench)."""
    first = list(ENGINES) if run % 2 else list(reversed(ENGINES))
    return first if protocol == "sequential" else first + first[::-1]


def reading(run: int, concurrency: int, got: dict[str, list[PointRecord | None]]) -> dict:
    """One run at one level: each tool's mean over its readings, and their ratio (None where one never settled)."""

    def mean(values: list) -> float | None:
        return None if not values or None in values else statistics.fmean(values)

    row: dict = {"run": run, "concurrency": concurrency}
    for engine, records in got.items():
        row[f"{engine}_readings_infer_per_s"] = [r.throughput_infer_per_s if r else None for r in records]
        row[f"{engine}_infer_per_s"] = mean(row[f"{engine}_readings_infer_per_s"])
        row[f"{engine}_p50_ms"] = mean([r.latency_p50_ms if r else None for r in records])
        row[f"{engine}_cpu_us_per_request"] = mean(
            [r.settings.get("client_cpu_us_per_request") if r else None for r in records]
        )
    t, p = row["tritonbench_infer_per_s"], row["perf_analyzer_infer_per_s"]
    row["ratio"] = t / p if t and p else None
    return row


def summary(rows: list[dict], levels: list[int]) -> list[dict]:
    """Per level: the lowest and the median ratio over the runs, and each tool's median CPU per request."""

    def median(values: list) -> float | None:
        present = [v for v in values if v is not None]
        return statistics.median(present) if present else None

    out = []
    for level in levels:
        mine = [r for r in rows if r["concurrency"] == level]
        ratios = [r["ratio"] for r in mine if r["ratio"] is not None]
        out.append({
            "concurrency": level,
            "runs": len(mine),
            "min_ratio": min(ratios) if ratios else None,
            "median_ratio": median(ratios),
            **{f"{e}_median_infer_per_s": median([r[f"{e}_infer_per_s"] for r in mine]) for e in ENGINES},
            **{f"{e}_median_cpu_us": median([r[f"{e}_cpu_us_per_request"] for r in mine]) for e in ENGINES},
        })  # fmt: skip
    return out


def failures(rows: list[dict], min_ratio: float) -> list[str]:
    """Every reading below the bar, or without a ratio, by run and level."""
    bad = []
    for r in rows:
        if r["ratio"] is None:
            bad.append(f"run {r['run']}, concurrency {r['concurrency']}: a tool found no stable measurement")
        elif r["ratio"] < min_ratio:
            bad.append(f"run {r['run']}, concurrency {r['concurrency']}: ratio {r['ratio']:.3f} < {min_ratio}")
    return bad


def _num(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def markdown(rows: list[dict], levels: list[dict], meta: dict, bad: list[str]) -> str:
    """Every reading and the per-level summary as Markdown, with its provenance."""
    out = [
        f"# tritonbench vs perf_analyzer ({meta['date']})",
        "",
        f"- machine: {meta['machine']}; model `{meta['model']}` (python-onnxruntime, CPU), bundled tritonserver "
        f"2.51.0, gRPC, batch {meta['batch']}, {meta['seq_len']}-token real token ids",
        f"- {meta['runs']} runs against one warmed server; in each, per level, {ORDERS[meta['order']]}; "
        f"windows {meta['window_ms']} ms, stable within ±{meta['stability']} % over 3 windows, at most "
        f"{meta['max_trials']}; bar: ratio ≥ {meta['min_ratio']} in every reading",
        "- CPU per request: tritonbench's process time (every thread) over the requests it sent; perf_analyzer's "
        "user + system time (start-up included) over the requests its windows sent",
        f"- versions: {json.dumps(meta['versions'])}",
        f"- command: `{meta['command']}`",
        "",
        "| run | concurrency | tritonbench infer/s | perf_analyzer infer/s | readings (tritonbench; perf_analyzer) | "
        "ratio | tritonbench p50 ms | perf_analyzer p50 ms | tritonbench CPU µs/request | "
        "perf_analyzer CPU µs/request |",
        "|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]

    def readings(row: dict) -> str:
        return "; ".join(", ".join(_num(v) for v in row[f"{e}_readings_infer_per_s"]) for e in ENGINES)

    out += [
        f"| {r['run']} | {r['concurrency']} | {_num(r['tritonbench_infer_per_s'])} | "
        f"{_num(r['perf_analyzer_infer_per_s'])} | {readings(r)} | {_num(r['ratio'], 3)} | "
        f"{_num(r['tritonbench_p50_ms'], 2)} | "
        f"{_num(r['perf_analyzer_p50_ms'], 2)} | {_num(r['tritonbench_cpu_us_per_request'], 0)} | "
        f"{_num(r['perf_analyzer_cpu_us_per_request'], 0)} |"
        for r in rows
    ]
    out += [
        "",
        "| concurrency | runs | lowest ratio | median ratio | median tritonbench CPU µs/request | "
        "median perf_analyzer CPU µs/request |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    out += [
        f"| {s['concurrency']} | {s['runs']} | {_num(s['min_ratio'], 3)} | {_num(s['median_ratio'], 3)} | "
        f"{_num(s['tritonbench_median_cpu_us'], 0)} | {_num(s['perf_analyzer_median_cpu_us'], 0)} |"
        for s in levels
    ]
    out += ["", "Below the bar: " + ("; ".join(bad) if bad else "none") + "."]
    return "\n".join(out) + "\n"


def main() -> None:
    """Build the repository if needed, serve it, warm it, measure RUNS runs, report, exit 1 below the bar."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, default=ROOT / "repo")
    parser.add_argument("--model", default="minilm_model", help="the model step alone (token ids), or the ensemble")
    parser.add_argument("--concurrency", default="1,4")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--seq-len", type=int, default=32)
    parser.add_argument("--window-ms", type=int, default=3000)
    parser.add_argument("--stability", type=float, default=10.0)
    parser.add_argument("--max-trials", type=int, default=10)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--order", choices=sorted(ORDERS), default="abba", help="how a run orders the tools")
    parser.add_argument("--min-ratio", type=float, default=0.95)
    parser.add_argument("--out", type=Path, default=ROOT / "scripts" / "results")
    args = parser.parse_args()
    if not (args.repo / "minilm" / "config.pbtxt").is_file():
        make_repo("minilm", "feature-extraction", "minilm", "python-onnxruntime", "cpu", args.repo)
    levels = [int(c) for c in args.concurrency.split(",")]
    stamp = time.strftime("%Y-%m-%d")
    args.out.mkdir(parents=True, exist_ok=True)
    store = ResultStore(args.out, f"tritonbench_vs_perf_analyzer_{stamp}.jsonl")
    store.path.unlink(missing_ok=True)
    rows = []
    with TritonServer(args.repo) as server:
        with tempfile.TemporaryDirectory() as scratch:  # the warm-up's reading is not kept
            measure(server, ResultStore(Path(scratch)), "tritonbench", max(levels), "warm-up", args)
        for run in range(1, args.runs + 1):
            for level in levels:
                got: dict[str, list[PointRecord | None]] = {e: [] for e in ENGINES}
                for turn, engine in enumerate(order(run, args.order)):
                    got[engine].append(measure(server, store, engine, level, f"run{run}.{turn}", args))
                rows.append(reading(run, level, got))
                print(json.dumps(rows[-1]), flush=True)
    levels_summary = summary(rows, levels)
    bad = failures(rows, args.min_ratio)
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": cpu_model(),
        "host": platform.node(),
        "model": args.model,
        "batch": args.batch,
        "seq_len": args.seq_len,
        "window_ms": args.window_ms,
        "stability": args.stability,
        "max_trials": args.max_trials,
        "runs": args.runs,
        "order": args.order,
        "min_ratio": args.min_ratio,
        "versions": package_versions(),
        "command": " ".join(sys.orig_argv),
    }
    result = {"meta": meta, "readings": rows, "levels": levels_summary, "below_the_bar": bad}
    (args.out / f"tritonbench_vs_perf_analyzer_{stamp}.json").write_text(json.dumps(result, indent=2) + "\n")
    text = markdown(rows, levels_summary, meta, bad)
    (args.out / f"tritonbench_vs_perf_analyzer_{stamp}.md").write_text(text)
    print(text)
    if bad:
        sys.exit(1)


if __name__ == "__main__":
    main()
