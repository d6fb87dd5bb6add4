"""Where each step of the 3-step ensemble spends a request's time under load, timed inside the stubs (issue 11).

The server's statistics say how long each step's instances were busy per execution; they do not say how much of that
was our Python, the GPU, or the Python backend's hand-over between tritonserver and the stub. Here the profile's
BERT-base ensemble (`bert`, python-torch, random weights) is served with every step's model timed by
scripts/probes/phase_timer_model.py: each execute(), the gap before it, and in the model step the Runner's wall time
and each graph's span on the GPU (CUDA events). perf_analyzer holds each point (one text or one token row per
request, 128 tokens) while the probe reads the stubs' totals twice, some seconds apart; the table gives, per
execution of each step: its rows, the server's compute, the stub's time inside execute() and before it (gap), the
Runner and the GPU span. A second table gives the CPU each role used per request over the same seconds: tritonserver's
own threads, each step's stubs, perf_analyzer, and the host's busy cores (scripts/bench/cpu_by_role.py). A third
gives the model step's executions by batch size over the same seconds (the server's statistics) and the rows its
CUDA graphs pad per execution, each batch running at the smallest of its config's batch_buckets that holds it.

`--layouts float,main,float,main` measures the points once per layout, by turns on the same server: where the
stubs' threads may run (scripts/probes/stub_affinity.py).

  python -m scripts.probes.phase_probe --out DIR --tokenizer TOKENIZER_DIR [--work DIR] [--smoke]
      [--idle-poll on|off] [--mps on|off] [--model-instances N] [--templates OLDER_TEMPLATES_PYTHON_DIR]
      [--points bert@1,bert@64] [--layouts float,main]
"""

from __future__ import annotations

import argparse
import json
import shutil
import threading
import time
from pathlib import Path

from builder.common.backend_files import backend_module
from builder.repository.modelconfig import parse_config
from client.generators.measure import MeasurementConfig
from client.records import ModelTimes, ResultStore
from client.sweep import SweepConfig, run_sweep
from client.transport.server_stats import Batches, batch_counters, batch_deltas
from client.transport.text_client import ClientConfig
from scripts.bench.cpu_by_role import Snapshot, per_request
from scripts.probes.older_backend_files import use_older_backend_files
from scripts.probes.phase_timer_model import SHIM
from scripts.probes.stub_affinity import LAYOUTS
from scripts.probes.stub_affinity import apply as apply_layout

TIMER = Path(__file__).with_name("phase_timer_model.py")
STEPS = ("tokenizer", "model", "post")
POINTS = "bert@1,bert@64,bert_model@64,bert_tokenizer@64"  # model@concurrency
SETTLE_S, SPAN_S = 4.0, 6.0  # after a point's load starts: when the first reading is taken, and the second


def build(args: argparse.Namespace) -> Path:
    """The ensemble's repository, each step's model timed (phase_timer_model.PhaseTimed mixed into it)."""
    from builder.precision.fidelity import FidelityOptions
    from builder.repository.options import ServingOptions
    from builder.repository.pipeline import make_repo
    from scripts.bench.gpu_serve_bench import bert_base  # it sets the stubs' thread settings in this process

    repo = args.work / "repo"
    model = bert_base(args.work / "bert-base-cls", args.tokenizer, classifier=True, smoke=args.smoke)
    gpu, precision = ("cpu", "fp32") if args.smoke else (args.gpu, "fp16")
    serving = ServingOptions("fused-tanh-gelu", model_instances=args.model_instances)
    make_repo(str(model), "text-classification", "bert", "python-torch", gpu, repo, force=True,
              trust_remote_code=False, echo=print, precision=precision, serving=serving,
              fidelity=FidelityOptions(enabled=False))  # fmt: skip
    if args.templates:  # the same repository with an older commit's backend files, timed the same way
        use_older_backend_files(repo, args.templates)
    for step in STEPS:
        version = repo / f"bert_{step}" / "1"
        (version / "model.py").rename(version / "probed_model.py")
        shutil.copyfile(TIMER, version / "phase_timer.py")
        (version / "model.py").write_text(SHIM)
    return repo


def reading(repo: Path) -> dict[str, dict[str, float]]:
    """Every step's totals, summed over its instances."""
    found: dict[str, dict[str, float]] = {}
    for step in STEPS:
        total: dict[str, float] = {}
        for path in (repo / f"bert_{step}" / "1").glob("phases_*.json"):
            try:
                values = json.loads(path.read_text())
            except (OSError, ValueError):  # replaced as it was read: the next reading has it
                continue
            for key, value in values.items():
                total[key] = total.get(key, 0.0) + value
        found[step] = total
    return found


def difference(before: dict, after: dict, seconds: float) -> dict[str, dict[str, float]]:
    """Per step: executions and requests per second, and µs per execution of each phase."""
    rows = {}
    for step in STEPS:
        delta = {k: after[step].get(k, 0.0) - before[step].get(k, 0.0) for k in after[step]}
        executes = delta.get("executes", 0.0)
        if not executes:
            continue
        row = {"executes_per_s": executes / seconds, "requests_per_execute": delta["requests"] / executes}
        for key in ("execute_s", "gap_s", "runner_s", "gpu_span_s"):
            row[key.removesuffix("_s") + "_us"] = delta.get(key, 0.0) / executes * 1e6
        rows[step] = row
    return rows


def model_step_statistics(server: object) -> dict:
    """The server's statistics of the model step (bert_model), batch sizes included."""
    import tritonclient.grpc as grpcclient

    with grpcclient.InferenceServerClient(server.grpc_url) as client:
        return client.get_inference_statistics("bert_model", as_json=True)


def graph_buckets(repo: Path) -> list[int]:
    """The batch sizes the model step captures as CUDA graphs (its config's batch_buckets)."""
    config = parse_config((repo / "bert_model" / "config.pbtxt").read_text())
    return [int(b) for b in config.parameters["batch_buckets"].string_value.split(",")]


def padding(batches: dict[int, tuple[int, float]], buckets: list[int]) -> float:
    """Rows a GPU's graphs pad per execution: each batch runs at the smallest bucket holding it (eagerly above all)."""
    bucket_for = backend_module("torch_model").bucket_for
    executions = sum(n for n, _ in batches.values())
    padded = sum(n * ((bucket_for(size, buckets) or size) - size) for size, (n, _) in batches.items())
    return padded / executions if executions else 0.0


def measure(server: object, repo: Path, model: str, level: int, store: ResultStore) -> dict:
    """One point under perf_analyzer, with two readings of the stubs' totals and every role's CPU while it runs.

    The same two moments give the model step's executions by batch size (the server's statistics).
    """
    readings: list[tuple[float, dict, Snapshot, Batches]] = []

    def read_twice() -> None:
        start = reading(repo)
        begun = time.monotonic()
        while time.monotonic() - begun < 60:  # the load begins once perf_analyzer has read the model
            time.sleep(0.2)
            now = reading(repo)
            if any(now[s].get("requests", 0) > start[s].get("requests", 0) for s in STEPS):
                break
        for pause in (SETTLE_S, SPAN_S):
            time.sleep(pause)
            batches = batch_counters(model_step_statistics(server), "bert_model")
            readings.append((time.monotonic(), reading(repo), Snapshot.take(server.pid, server.repo), batches))

    thread = threading.Thread(target=read_twice)
    thread.start()
    window = MeasurementConfig(window_s=5.0, stability_pct=100, stable_windows=3, max_trials=3, warmup_s=0.0)
    config = SweepConfig(ClientConfig(server.grpc_url, model), (1,), (128,), concurrency=(level,),
                         measurement=window, generator="perf_analyzer", metrics_url=server.metrics_url)  # fmt: skip
    run_sweep(config, store, echo=print, repo=repo, progress=False)
    thread.join()
    record = next(r for r in reversed(store.load()) if r.model == model and r.concurrency == level)
    (t0, a, cpu0, batches0), (t1, b, cpu1, batches1) = readings
    batches = batch_deltas(batches0, batches1)
    served = max(b[step].get("requests", 0.0) - a[step].get("requests", 0.0) for step in STEPS)
    server_times = {
        step.removeprefix("bert_"): {
            "compute_infer_us": times.compute_infer_us,
            "rows": times.inference_count / max(times.execution_count, 1),
            "queue_us": times.queue_us,
            "compute_output_us": times.compute_output_us,
            "held": held(record.throughput_infer_per_s, times),
        }
        for step, times in record.server.items()
        if step.startswith("bert_")
    }
    return {
        "model": model,
        "concurrency": level,
        "throughput": record.throughput_infer_per_s,
        "p50_ms": record.latency_p50_ms,
        "stubs": difference(a, b, t1 - t0),
        "server": server_times,
        "cpu": per_request(cpu0, cpu1, served),
        "model_batches": {str(size): [n, us] for size, (n, us) in batches.items()},  # size: executions, compute µs
        "padded_rows": padding(batches, graph_buckets(repo)),
    }


def held(throughput: float, times: ModelTimes) -> float:
    """How many of the point's requests are in this step at any moment (Little's law: rate × time in the step).

    Over the ensemble's steps they add up to about its concurrency: where they sit is where the time goes. The
    last step's output time includes writing the ensemble's response (gRPC: on its instance's thread).
    """
    spent = times.queue_us + times.compute_input_us + times.compute_infer_us + times.compute_output_us
    return throughput * spent / 1e6


def points(text: str) -> list[tuple[str, int]]:
    """`model@concurrency,...` as (model, concurrency) pairs."""
    pairs = []
    for item in text.split(","):
        model, _, level = item.partition("@")
        if not model or not level.isdigit():
            raise argparse.ArgumentTypeError(f"{item!r}: a point is MODEL@CONCURRENCY, e.g. bert@64")
        if (model, int(level)) in pairs:  # the sweep would skip it as measured, and the stubs be read idle
            raise argparse.ArgumentTypeError(f"{item!r} is named twice; to measure it again: --layouts float,float")
        pairs.append((model, int(level)))
    return pairs


def layouts(text: str) -> list[str]:
    """A comma-separated list of stub_affinity layouts."""
    names = text.split(",")
    for name in names:
        if name not in LAYOUTS:
            raise argparse.ArgumentTypeError(f"{name!r}: a layout is one of {', '.join(LAYOUTS)}")
    return names


def table(results: list[dict]) -> str:
    """One row per point and step: µs per execution, the server's queue and output µs per request, requests held."""
    lines = [
        "| point | step | rows/exec | server compute | in execute() | gap before it | Runner | GPU span "
        "| queue per request | output per request | requests held |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        label = point_label(result)
        for step, row in result["stubs"].items():
            server = result["server"].get(step, {})
            nan = float("nan")
            lines.append(
                f"| {label} | {step} | {row['requests_per_execute']:.1f} | {server.get('compute_infer_us', nan):,.0f} "
                f"| {row['execute_us']:,.0f} | {row['gap_us']:,.0f} | {row['runner_us']:,.0f} "
                f"| {row['gpu_span_us']:,.0f} | {server.get('queue_us', nan):,.0f} "
                f"| {server.get('compute_output_us', nan):,.0f} | {server.get('held', nan):.1f} |"
            )
    return "\n".join(lines)


def cpu_table(results: list[dict]) -> str:
    """One row per point: µs of CPU per request in each role, and the host's busy cores (the idle pollers apart)."""
    roles = list(dict.fromkeys(key for result in results for key in result["cpu"] if key.endswith("_us")))
    lines = [
        "| point | " + " | ".join(role.removesuffix("_us") for role in roles) + " | host busy cores | pollers |",
        "|---|" + "---:|" * (len(roles) + 2),
    ]
    for result in results:
        cpu = result["cpu"]
        cells = [f"{cpu[role]:,.0f}" if role in cpu else "" for role in roles]
        cells += [f"{cpu['host_busy_cores']:.1f}", f"{cpu['host_nice_cores']:.1f}"]
        lines.append(f"| {point_label(result)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def batch_table(results: list[dict]) -> str:
    """One row per point: the model step's batch sizes (share of executions, compute µs each), rows a GPU pads."""
    lines = [
        "| point | model step batch sizes: share of executions, server compute µs | padded rows per execution |",
        "|---|---|---:|",
    ]
    for result in results:
        batches = {int(size): (n, us) for size, (n, us) in result["model_batches"].items()}
        total = sum(n for n, _ in batches.values()) or 1
        shown = [f"{size}: {100 * n / total:.0f} % {us:,.0f}" for size, (n, us) in batches.items() if n >= 0.01 * total]
        lines.append(f"| {point_label(result)} | {'; '.join(shown)} | {result['padded_rows']:.2f} |")
    return "\n".join(lines)


def point_label(result: dict) -> str:
    """A point's name in the tables: model, concurrency and throughput, after its round and layout if any."""
    label = f"{result['model']} c{result['concurrency']}: {result['throughput']:,.0f}/s"
    if result.get("layout", "float") != "float" or result.get("round"):
        label = f"{result.get('round', 1)}. {result['layout']}: {label}"
    return label


def main() -> None:
    from scripts.bench.gpu_serve_bench import ServerSetting  # it sets the stubs' thread settings in this process

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tokenizer", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path("/tmp/phase-probe"))
    parser.add_argument("--gpu", default="h200")
    parser.add_argument("--model-instances", type=int, help="the model step's instances [default: the profile's]")
    parser.add_argument("--idle-poll", choices=("on", "off"), default="on")
    parser.add_argument("--mps", choices=("on", "off"), default="on")
    parser.add_argument("--smoke", action="store_true", help="a tiny model on the cpu profile (no GPU)")
    parser.add_argument("--templates", type=Path, help="serve these backend files (an older templates/python/)")
    parser.add_argument("--points", type=points, default=points(POINTS), help=f"[default: {POINTS}]")
    parser.add_argument("--layouts", type=layouts, default=["float"], help="where the stubs run, by turns")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    repo = build(args)

    setting = ServerSetting(idle_poll=args.idle_poll == "on", mps=args.mps == "on" and not args.smoke)
    results = []
    with setting.start(repo, args.out / "tritonserver.log") as server:
        for round_, layout in enumerate(args.layouts, 1):
            pinned = apply_layout(layout, server.pid, server.repo)
            print(f"round {round_}: layout {layout}: {pinned or 'every stub thread on every CPU'}", flush=True)
            # a store per round: a store skips the points it holds
            store = ResultStore(args.out / ("sweep" if len(args.layouts) == 1 else f"sweep{round_}"))
            for model, level in args.points:
                result = measure(server, repo, model, level, store)
                if len(args.layouts) > 1:
                    result.update(round=round_, layout=layout, pinned=pinned)
                results.append(result)
                (args.out / "phases.json").write_text(json.dumps(results, indent=1) + "\n")
    tables = (
        f"{table(results)}\n\nCPU per request (µs), by role:\n\n{cpu_table(results)}\n\n"
        f"The model step's batches (server statistics; graphs pad on a GPU only):\n\n{batch_table(results)}\n"
    )
    print(tables, flush=True)
    (args.out / "phases.md").write_text(tables)


if __name__ == "__main__":
    main()
