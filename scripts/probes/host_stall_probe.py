"""Where the python-torch engine's host side stalls on a GPU host (issue 11): measurements, not guesses.

`inprocess`: in one process, the host operations of a request (clone, allocation, copies, tokenizing,
the Runner) timed on a fresh process, after CUDA starts, after a BERT-base Runner captures its graphs,
and after each mitigation in turn (one intra-op thread, the compile workers shut down, large
allocations kept off mmap); with a census of every thread's CPU time on the host while idle, timer and
wake-up latencies, and py-spy's native stacks during the slow call. `--settings fixed` keeps the thread
settings that tritonbuild_backend applies at import in every stub (one thread per pool).

`served`: a BERT-base 3-step ensemble served by the bundled tritonserver; a census of every process's
threads while idle and under perf_analyzer load, py-spy dumps of every backend stub, and the server's
per-model breakdown. `--profile` adds concurrency 64 with a py-spy profile of one stub of each model
(where each stub's time goes per request), `--single-instances N` the single model with N instances there.

  python -m scripts.probes.host_stall_probe inprocess --out DIR --tokenizer DIR [--settings default|fixed]
  python -m scripts.probes.host_stall_probe served --out DIR --tokenizer DIR --work DIR [--templates OLD_BACKEND_FILES]
      [--profile [--single-instances N]]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from builder.common.backend_files import backend_module
from scripts.bench.timing import census  # imports no torch: inprocess sets the pools' sizes before torch loads
from scripts.probes.older_backend_files import use_older_backend_files

POOL_ENV = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "RAYON_NUM_THREADS",
    "TOKENIZERS_PARALLELISM",
    "TORCHINDUCTOR_COMPILE_THREADS",
)


def median_us(fn, repeats: int = 200) -> float:
    """Median microseconds of fn() (host clock; everything timed here is synchronous)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e6)
    return round(statistics.median(times), 2)


def latencies() -> dict:
    """Timer and wake-up latencies: what any short sleep or futex hand-over costs on this host."""
    ready, done = threading.Event(), threading.Event()
    woke: list[float] = []

    def waiter() -> None:
        while True:
            ready.wait()
            ready.clear()
            woke.append(time.perf_counter())
            done.set()

    threading.Thread(target=waiter, daemon=True).start()
    handovers = []
    for _ in range(200):
        time.sleep(0.002)  # let the waiter block, as an idle stub does
        start = time.perf_counter()
        ready.set()
        done.wait()
        done.clear()
        handovers.append((woke[-1] - start) * 1e6)
    return {
        "sleep_100us_actual_us": median_us(lambda: time.sleep(1e-4), 50),
        "sleep_1ms_actual_us": median_us(lambda: time.sleep(1e-3), 50),
        "thread_wakeup_us_p50": round(statistics.median(handovers), 1),
        "thread_wakeup_us_max": round(max(handovers), 1),
        "python_loop_1e5_us": median_us(lambda: sum(range(100_000)), 20),
    }


def host_ops(torch, tokenizer, pinned: bool) -> dict:
    """The host operations of one request, each timed alone."""
    import numpy as np

    small = torch.empty((32, 128, 24), dtype=torch.float32)  # 393 kB
    large = torch.empty((32, 128, 768), dtype=torch.float32)  # 12.6 MB
    small.fill_(1.0)
    large.fill_(1.0)
    dest_small, dest_large = torch.empty_like(small), torch.empty_like(large)
    ops = {
        "clone_393kB_us": median_us(lambda: small.clone()),
        "clone_12.6MB_us": median_us(lambda: large.clone(), 50),
        "copy_into_393kB_us": median_us(lambda: dest_small.copy_(small)),
        "copy_into_12.6MB_us": median_us(lambda: dest_large.copy_(large), 50),
        "torch_empty_393kB_us": median_us(lambda: torch.empty((32, 128, 24))),
        "numpy_copy_393kB_us": median_us(lambda: np.array(small.numpy(), copy=True)),
        "numpy_concatenate_tokens_us": median_us(lambda: np.concatenate([np.ones((1, 128), np.int64)] * 32)),
        "torch_threads": torch.get_num_threads(),
        "process_threads": len(os.listdir("/proc/self/task")),
    }
    if pinned:
        pin_small = torch.empty((32, 128, 24), dtype=torch.float32, pin_memory=True)
        pin_small.fill_(1.0)
        ops["clone_pinned_393kB_us"] = median_us(lambda: pin_small.clone())
        ops["clone_of_pinned_is_pinned"] = bool(pin_small.clone().is_pinned())
        ops["slice_clone_pinned_393kB_us"] = median_us(lambda: pin_small[:32].clone())
    if tokenizer is not None:
        text = "the quick brown fox jumps over the lazy dog " * 14
        encode = getattr(tokenizer, "encode_batch_fast", tokenizer.encode_batch)
        ops["tokenize_128_tokens_us"] = median_us(lambda: encode([text]))
        ops["tokenize_32x128_tokens_us"] = median_us(lambda: encode([text] * 32), 50)
    return ops


def children() -> list[str]:
    """Child processes of this one (the compile workers, when there are any)."""
    me, found = str(os.getpid()), []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
            if stat[stat.rindex(")") + 2 :].split()[1] == me:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    found.append(f.read().replace(b"\0", b" ").decode()[:120])
        except (OSError, ValueError):
            continue
    return found


def pyspy(pid: int, out: Path, seconds: float, work) -> str:
    """py-spy's native stacks of `pid` (raw collapsed format) while `work` runs; '' without py-spy."""
    binary = shutil.which("py-spy")
    if binary is None:
        return "py-spy not found"
    proc = subprocess.Popen(
        [binary, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "250", "--native",
         "--threads", "--idle", "--format", "raw", "--output", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    time.sleep(0.5)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None:
        work()
    output, _ = proc.communicate(timeout=60)
    return output[-400:]


def top_stacks(raw: Path, count: int = 12) -> list[str]:
    """The heaviest leaf-most frames of a py-spy raw file, as 'samples  stack tail'."""
    if not raw.is_file():
        return []
    rows = []
    for line in raw.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        if samples.isdigit():
            rows.append((int(samples), ";".join(stack.split(";")[-6:])[-300:]))
    rows.sort(reverse=True)
    return [f"{n:6d}  {s}" for n, s in rows[:count]]


def frame_shares(raw: Path, top: int = 25) -> dict:
    """Where a stub's serving thread spent a py-spy raw profile (--threads): each frame's inclusive share, the leaves'.

    The serving thread is the one whose stacks reach execute() most; its samples include the waits (--idle), so
    `busy_pct` (samples inside execute()) says how much of the time it was serving. Line numbers are dropped and a
    frame is counted once per stack: its share is the fraction of samples in which it was running or below.
    """
    stacks: dict[str, list[tuple[list[str], int]]] = {}
    if not raw.is_file():
        return {"samples": 0}
    for line in raw.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        if not samples.isdigit():
            continue
        thread, *frames = [re.sub(r":\d+\)$", ")", frame) for frame in stack.split(";")]
        stacks.setdefault(thread, []).append((frames, int(samples)))
    if not stacks:
        return {"samples": 0}

    def in_execute(rows: list[tuple[list[str], int]]) -> int:
        return sum(n for frames, n in rows if any(f.startswith("execute (") for f in frames))

    thread, rows = max(stacks.items(), key=lambda kv: (in_execute(kv[1]), sum(n for _, n in kv[1])))
    total = sum(n for _, n in rows)
    inclusive: dict[str, int] = {}
    leaves: dict[str, int] = {}
    for frames, count in rows:
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + count
        if frames:
            leaves[frames[-1]] = leaves.get(frames[-1], 0) + count

    def ranked(counts: dict[str, int]) -> list[str]:
        ordered = sorted(counts.items(), key=lambda kv: -kv[1])[:top]
        return [f"{n / total * 100:5.1f}%  {frame[:160]}" for frame, n in ordered]

    return {
        "thread": thread,
        "samples": total,
        "busy_pct": round(in_execute(rows) / total * 100, 1),
        "inclusive": ranked(inclusive),
        "leaves": ranked(leaves),
    }


def record_stubs(stubs: dict[int, str], out: Path, seconds: float, tag: str) -> dict:
    """py-spy records one stub of each model at once for `seconds` (native frames, idle included, 100 Hz)."""
    one = {}
    for pid, name in stubs.items():
        one.setdefault(name, pid)
    procs = {}
    for name, pid in one.items():
        raw = out / f"pyspy_{tag}_{name}.txt"
        procs[name] = (raw, subprocess.Popen(
            ["py-spy", "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "100", "--native",
             "--idle", "--threads", "--format", "raw", "--output", str(raw)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        ))  # fmt: skip
    found = {}
    for name, (raw, proc) in procs.items():
        output, _ = proc.communicate(timeout=seconds + 60)
        found[name] = {"pid": one[name], **frame_shares(raw), "py_spy": output[-300:]}
    return found


def build_runner(torch, batch_shapes: list[tuple[int, int]]):
    """A random-weight BERT-base classifier, fp16, fused-tanh-gelu, captured at `batch_shapes` (as served)."""
    from transformers import BertConfig, BertForSequenceClassification

    from builder.engines.python_torch import default_batch_buckets

    torch_model = backend_module("torch_model", stub_environment=True)  # the helper is loaded: inprocess set the pools
    Runner, apply_precision, build_forward = torch_model.Runner, torch_model.apply_precision, torch_model.build_forward

    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(num_labels=2)).eval()
    model.config._attn_implementation = "sdpa"
    model = apply_precision(model, "fp16").to("cuda")
    forward = build_forward(model, "text-classification", "fused-tanh-gelu")
    runner = Runner(forward, torch.device("cuda"), list(default_batch_buckets(32)), [128], 32 * 128)
    return runner


def runner_ops(runner) -> dict:
    """Runner.__call__ at 1 × 128 and 32 × 128 (no padded row, one padded token)."""
    import numpy as np

    ids1 = np.random.default_rng(0).integers(1000, 20000, (1, 128))
    ids32 = np.random.default_rng(1).integers(1000, 20000, (32, 128))
    padded = np.ones_like(ids32)
    padded[0, -1] = 0
    return {
        "runner_1x128_us": median_us(lambda: runner(ids1, np.ones_like(ids1))),
        "runner_32x128_full_us": median_us(lambda: runner(ids32, np.ones_like(ids32))),
        "runner_32x128_one_pad_us": median_us(lambda: runner(ids32, padded)),
    }


def inprocess(args: argparse.Namespace) -> None:
    """Host operations through the life of one engine process, and each mitigation's effect."""
    # The backend helper sets every pool to one thread at import, as in a stub; `default` undoes it (the libraries'
    # own defaults) before torch loads OpenMP, `fixed` keeps it.
    backend_module("tritonbuild_backend", stub_environment=args.settings == "fixed")
    import torch
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(args.tokenizer / "tokenizer.json"))
    report: dict = {
        "settings": args.settings,
        "env": {k: os.environ.get(k) for k in POOL_ENV},
        "cores": os.cpu_count(),
    }
    report["parallel_info"] = torch.__config__.parallel_info()
    report["latencies_fresh"] = latencies()
    report["fresh"] = host_ops(torch, tokenizer, pinned=False)
    report["census_fresh_idle"] = census(2)
    torch.zeros(1, device="cuda")
    report["cuda_started"] = host_ops(torch, tokenizer, pinned=True)
    start = time.perf_counter()
    runner = build_runner(torch, [(1, 128), (32, 128)])
    report["capture_s"] = round(time.perf_counter() - start, 1)
    report["children_after_capture"] = children()
    report["after_capture"] = {**host_ops(torch, tokenizer, pinned=True), **runner_ops(runner)}
    report["latencies_after_capture"] = latencies()
    report["census_after_capture_idle"] = census(3)
    small = torch.empty((32, 128, 24))
    report["pyspy_clone"] = pyspy(os.getpid(), args.out / f"pyspy_clone_{args.settings}.txt", 4, lambda: small.clone())
    report["pyspy_clone_top"] = top_stacks(args.out / f"pyspy_clone_{args.settings}.txt")
    print(json.dumps({k: report[k] for k in ("fresh", "after_capture")}, indent=1), flush=True)
    steps = []
    torch.set_num_threads(1)
    steps.append(("torch.set_num_threads(1)", {**host_ops(torch, tokenizer, True), **runner_ops(runner)}))
    try:
        from torch._inductor.async_compile import shutdown_compile_workers

        shutdown_compile_workers()
        time.sleep(1)
        steps.append(("compile workers shut down", {**host_ops(torch, tokenizer, True), **runner_ops(runner)}))
    except ImportError as exc:
        steps.append(("compile workers shut down", {"error": str(exc)}))
    import ctypes

    libc = ctypes.CDLL("libc.so.6")
    libc.mallopt(-3, 256 << 20)  # M_MMAP_THRESHOLD: large blocks from the heap, no mmap/munmap per call
    libc.mallopt(-1, 512 << 20)  # M_TRIM_THRESHOLD
    steps.append(("large allocations off mmap", {**host_ops(torch, tokenizer, True), **runner_ops(runner)}))
    report["mitigations"] = steps
    report["children_at_end"] = children()
    report["census_at_end_idle"] = census(2)
    (args.out / f"inprocess_{args.settings}.json").write_text(json.dumps(report, indent=1))
    for label, ops in steps:
        print(label, json.dumps(ops), flush=True)
    print("census after capture:", json.dumps(report["census_after_capture_idle"], indent=1), flush=True)
    print("\n".join(report["pyspy_clone_top"]), flush=True)


def stub_pids() -> dict[int, str]:
    """pid → model name of every Python backend stub on the host."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"triton_python_backend_stub"):
            found[int(pid)] = argv[1].decode(errors="replace").rsplit("/", 3)[-3] if len(argv) > 1 else "?"
    return found


def served_repo(args: argparse.Namespace, label: str) -> Path:
    """The probe's repository: BERT-base as the 3-step ensemble `bert` (and the single model `bertsm`)."""
    from builder.repository.options import ServingOptions
    from builder.repository.pipeline import make_repo
    from scripts.bench.gpu_serve_bench import bert_base

    repo = args.work / f"repo-{label}"
    model = bert_base(args.work / "bert-cls", args.tokenizer, classifier=True, smoke=args.smoke)
    deployments = {"bert": ServingOptions("fused-tanh-gelu")}
    if args.single_instances:  # the same model as one Python model: one stub hop per text
        deployments["bertsm"] = ServingOptions(
            "fused-tanh-gelu", single_model=True, model_instances=args.single_instances
        )
    gpu, precision = ("cpu", "fp32") if args.smoke else ("h100", "fp16")
    for name, serving in deployments.items():
        make_repo(str(model), "text-classification", name, "python-torch", gpu, repo, force=True,
                  trust_remote_code=False, echo=print, precision=precision, serving=serving)  # fmt: skip
    if args.templates:  # serve another commit's backend files: the same repository before a fix
        use_older_backend_files(repo, args.templates)
    return repo


def served(args: argparse.Namespace) -> None:
    """The BERT-base ensemble, served: census idle and under load, stub stacks, server breakdown."""
    from builder.serving.server import TritonServer

    label = args.templates.name if args.templates else "current"
    repo = served_repo(args, label)
    report: dict = {"templates": label}
    result = args.out / f"served_probe_{label}.json"
    log = args.out / f"tritonserver_{label}.log"
    with TritonServer(repo, log_path=log, startup_timeout_s=300) as server:
        stubs = stub_pids()
        report["stubs"] = stubs
        report["census_idle"] = census(3)
        dumps = {}
        for pid, name in stubs.items():
            dump = subprocess.run(
                ["py-spy", "dump", "--pid", str(pid), "--native"], capture_output=True, text=True, timeout=60
            )
            dumps[f"{name}:{pid}"] = (dump.stdout + dump.stderr)[-3000:]
        report["stub_dumps_idle"] = dumps
        measure_served(args, server, repo, stubs, report, result)
    result.write_text(json.dumps(report, indent=1, default=str))
    for key in [k for k in report if k.startswith("census")]:
        print(key, json.dumps(report[key], indent=1), flush=True)
    for name, dump in report["stub_dumps_idle"].items():
        print(f"--- {name}\n{dump[-1500:]}", flush=True)
    for key in [k for k in report if k.startswith("stacks_")]:
        for name, found in (report[key] or {}).items():
            head = f"--- {key} {name}: {found.get('samples')} samples, {found.get('busy_pct')} % in execute()"
            print(head + "\n  " + "\n  ".join(found.get("inclusive", [])))
            print("  leaves:\n  " + "\n  ".join(found.get("leaves", [])[:12]), flush=True)


def measure_served(args: argparse.Namespace, server, repo: Path, stubs: dict, report: dict, result: Path) -> None:
    """perf_analyzer at each point with a census (and, at concurrency 64 with --profile, the stubs' stacks)."""
    import tempfile

    from client.generators.measure import MeasurementConfig
    from client.records import ResultStore
    from client.report.tables import markdown_table
    from client.sweep import SweepConfig, run_sweep
    from client.transport.text_client import ClientConfig

    window = MeasurementConfig(window_s=2.0, stability_pct=10, stable_windows=3, max_trials=5, warmup_s=1.0)
    store = ResultStore(Path(tempfile.mkdtemp()))
    loaded: dict = {}

    def under_load(profile: str | None) -> None:
        time.sleep(2)
        if profile is None:
            loaded["census"] = census(3)
            return
        with ThreadPoolExecutor(1) as pool:  # the stubs' stacks while the census runs
            stacks = pool.submit(record_stubs, stubs, args.out, 3, profile)
            loaded["census"] = census(3)
            loaded["stacks"] = stacks.result()

    points = [("bert", 1, 1), ("bert_model", 32, 4), ("bert", 1, 16)]
    if args.profile:
        points += [("bert", 1, 64)] + [("bertsm", 1, 64)] * bool(args.single_instances)
    for model_name, batch, level in points:
        profile = f"{model_name}_c{level}" if args.profile and level == 64 else None
        thread = threading.Thread(target=under_load, args=(profile,))
        thread.start()
        client = ClientConfig(server.grpc_url, model_name)
        config = SweepConfig(client, (batch,), (128,), concurrency=(level,), measurement=window,
                             generator="perf_analyzer", metrics_url=server.metrics_url)  # fmt: skip
        try:
            run_sweep(config, store, echo=print, repo=repo, progress=False)
        except Exception as exc:  # a probe: record what failed and go on to the next point
            report.setdefault("errors", []).append(f"{model_name}: {exc}")
        thread.join()
        report[f"census_load_{model_name}_b{batch}_c{level}"] = loaded.pop("census", None)
        if profile:
            report[f"stacks_{profile}"] = loaded.pop("stacks", None)
        report["points"] = [r.to_json() for r in store.load()]
        result.write_text(json.dumps(report, indent=1, default=str))  # kept if a later point is cut short
    print(markdown_table(store.load()), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=("inprocess", "served"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tokenizer", type=Path, required=True)
    parser.add_argument("--settings", choices=("default", "fixed"), default="default")
    parser.add_argument("--work", type=Path, default=Path("/tmp/stall-probe"))
    parser.add_argument("--templates", type=Path, help="served: backend .py files to serve instead (an older commit's)")
    parser.add_argument("--smoke", action="store_true", help="served: a tiny model on the cpu profile (no GPU)")
    parser.add_argument("--profile", action="store_true", help="served: also c64, with py-spy on one stub per model")
    parser.add_argument(
        "--single-instances", type=int, default=0, help="served --profile: also the single model at c64"
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    inprocess(args) if args.mode == "inprocess" else served(args)


if __name__ == "__main__":
    main()
