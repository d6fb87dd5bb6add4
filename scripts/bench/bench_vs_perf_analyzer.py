"""tritonbench against NVIDIA's perf_analyzer: same server, model, inputs, windows and stability rule.

For each concurrency level both tools measure the same point, in alternating order (so drift in the
machine's load hits both); prints the side-by-side table with tritonbench/perf_analyzer ratios and
writes JSON and Markdown. From the repository's root:
  python -m scripts.bench.bench_vs_perf_analyzer [--out scripts/results] ...
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
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
ENGINES = ("tritonbench", "perf_analyzer")


def cpu_model() -> str:
    """The CPU's model name and core count, for the record."""
    lines = subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
    name = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("Model name")), "unknown")
    return f"{name}, {len(__import__('os').sched_getaffinity(0))} cores"


def measure(
    server: TritonServer,
    repo: Path,
    store: ResultStore,
    engine: str,
    concurrency: int,
    repeat: int,
    args: argparse.Namespace,
) -> PointRecord | None:
    """One point with one engine (the variant label carries the repeat, so the store keeps every run)."""
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
        variant=f"{engine}-{repeat}",
    )
    records = run_sweep(config, store, echo=lambda _: None, repo=repo, progress=False)
    return records[0] if records else None  # None: perf_analyzer never settled (it stores no number then)


def compare(concurrency: int, runs: dict[str, list[PointRecord]]) -> dict:
    """One level: each tool's median numbers over the repeats, and the ratios the goal is stated in."""

    def med(engine: str, field: str) -> float:
        return statistics.median(getattr(r, field) for r in runs[engine])

    t_rate, p_rate = med("tritonbench", "throughput_infer_per_s"), med("perf_analyzer", "throughput_infer_per_s")
    t_p50, p_p50 = med("tritonbench", "latency_p50_ms"), med("perf_analyzer", "latency_p50_ms")
    pairs = zip(runs["tritonbench"], runs["perf_analyzer"], strict=True)
    return {
        "concurrency": concurrency,
        "repeats": len(runs["tritonbench"]),
        "tritonbench_infer_per_s": t_rate,
        "perf_analyzer_infer_per_s": p_rate,
        "throughput_ratio": t_rate / p_rate,
        "tritonbench_p50_ms": t_p50,
        "perf_analyzer_p50_ms": p_p50,
        "p50_diff_pct": 100 * (t_p50 - p_p50) / p_p50,
        "tritonbench_p99_ms": med("tritonbench", "latency_p99_ms"),
        "perf_analyzer_p99_ms": med("perf_analyzer", "latency_p99_ms"),
        "each_ratio": [t.throughput_infer_per_s / p.throughput_infer_per_s for t, p in pairs],
    }


def markdown(rows: list[dict], meta: dict) -> str:
    """The comparison as Markdown with its provenance."""
    out = [
        f"# tritonbench vs perf_analyzer ({meta['date']})",
        "",
        f"- machine: {meta['machine']}; model `{meta['model']}` (python-onnxruntime, CPU), bundled tritonserver "
        f"2.51.0, gRPC, batch {meta['batch']}, {meta['seq_len']}-token real English texts",
        f"- windows {meta['window_ms']} ms, stability ±{meta['stability']} % over 3 windows, max "
        f"{meta['max_trials']} trials; tools alternate, "
        f"{meta['repeats']} repeats per level, medians compared",
        f"- versions: {json.dumps(meta['versions'])}",
        f"- command: `{meta['command']}`",
        "",
        "| concurrency | tritonbench infer/s | perf_analyzer infer/s | ratio | tritonbench p50 ms | "
        "perf_analyzer p50 ms | p50 diff | tritonbench p99 ms | perf_analyzer p99 ms |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    out += [
        f"| {r['concurrency']} | {r['tritonbench_infer_per_s']:.1f} | {r['perf_analyzer_infer_per_s']:.1f} | "
        f"{r['throughput_ratio']:.3f} | {r['tritonbench_p50_ms']:.2f} | {r['perf_analyzer_p50_ms']:.2f} | "
        f"{r['p50_diff_pct']:+.1f} % | {r['tritonbench_p99_ms']:.2f} | {r['perf_analyzer_p99_ms']:.2f} |"
        for r in rows
    ]
    return "\n".join(out) + "\n"


def main() -> None:
    """Build the repository if needed, serve it, measure both tools, report."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repo", type=Path, default=ROOT / "repo")
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--concurrency", default="1,2,4,8")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--seq-len", type=int, default=32)
    parser.add_argument("--window-ms", type=int, default=3000)
    parser.add_argument("--stability", type=float, default=10.0)
    parser.add_argument("--max-trials", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "scripts" / "results")
    args = parser.parse_args()
    if not (args.repo / args.model / "config.pbtxt").is_file():
        make_repo(
            "minilm",
            "feature-extraction",
            args.model,
            "python-onnxruntime",
            "cpu",
            args.repo,
            force=False,
            trust_remote_code=False,
            echo=print,
        )
    stamp = time.strftime("%Y-%m-%d")
    store = ResultStore(args.out, f"tritonbench_vs_perf_analyzer_{stamp}.jsonl")
    store.path.unlink(missing_ok=True)
    rows = []
    with TritonServer(args.repo) as server:
        for concurrency in (int(c) for c in args.concurrency.split(",")):
            runs: dict[str, list[PointRecord]] = {engine: [] for engine in ENGINES}
            for repeat in range(args.repeats):
                got = {
                    e: measure(server, args.repo, store, e, concurrency, repeat, args)
                    for e in (ENGINES if repeat % 2 == 0 else ENGINES[::-1])
                }
                if None in got.values():  # keep runs paired: a repeat counts only if both tools settled
                    print(f"concurrency {concurrency}, repeat {repeat}: no stable measurement, dropped", flush=True)
                    continue
                for engine, record in got.items():
                    runs[engine].append(record)
            if not runs["tritonbench"]:
                continue
            rows.append(compare(concurrency, runs))
            print(json.dumps(rows[-1]), flush=True)
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
        "repeats": args.repeats,
        "versions": package_versions(),
        "command": " ".join(sys.orig_argv),
    }
    (args.out / f"tritonbench_vs_perf_analyzer_{stamp}.json").write_text(
        json.dumps({"meta": meta, "rows": rows}, indent=2)
    )
    text = markdown(rows, meta)
    (args.out / f"tritonbench_vs_perf_analyzer_{stamp}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
