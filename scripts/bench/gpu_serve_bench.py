"""The served GPU path against its in-process baseline, in one run, checking itself (issue 11).

Builds random-weight BERT-base models with a 30522-entry BERT-uncased tokenizer and engine python-torch (h200
profile by default): a text classifier behind the 3-step ensemble (`bert`) and a single-model feature extractor
without batching delay (`bertfe1`). In this process, before any server starts: the forward's bare CUDA graph and the
engine's Runner (host arrays in, host tensor out) at 1 × 128 and 32 × 128. Then the bundled tritonserver serves
both, and perf_analyzer and tritonbench measure, over gRPC with 128-token texts: the model alone at batch 32, the
ensemble and the single model at batch 1, concurrency 1, and the ensemble at concurrency 64 with one text per
request; the same ensemble with more instances (`bertwide`: --wide-instances, model, tokenizer and post-processing;
--wide-host-threads; its batching delay --wide-delay-us; its graphs' batch sizes --wide-batch-buckets) at
concurrency 64, to show what the profile's instance counts (or thread pools, delay, buckets) leave on the table; and
the classifier as one Python model (`bertsm`: --single-instances) at concurrency 64, one stub hand-over per text
instead of three. Which part limits the ensemble at concurrency 64: its tokenizer step alone, its model step alone
with one row per request, and the same ensemble with a 2-layer, 64-wide model (`bertfloor`); and the ensemble with
its graphs captured at powers-of-two batch sizes (`bertpow2`), the buckets before 2026-12-03. With --shm-mib A,B,
--cpu-latency-us X,Y, --idle-poll off,on or --mps off,on the served points are measured once per server setting,
each on a server of its own, one after the other: the size of the Python backend's shared-memory region (0: the
backend's default), the CPU latency limit held while it serves (`serve --cpu-latency-us`; `none`: the host's own),
`serve --idle-poll` and `serve --mps`; a single value applies to every server, a setting may repeat. The checks and
targets read the first server, and the in-process baseline runs under its CPU latency limit and idle pollers (not
MPS: this process is no server). With --warm-s S, each model's first concurrency-64 point follows S seconds of that
load (recorded apart, in OUT/warm/). With --rounds N each server measures the points N times by turns (--only
bert@64,bertwide --rounds 4: ABABABAB), so that deployments compare on one server; the table gives one column per
round. At each concurrency-64 point a census gives the busiest processes and every role's CPU per inference
(scripts/bench/cpu_by_role.py).

It exits 1, naming the deployment, when the served model alone at batch 32 falls below
--min-served-ratio (0.90) of the bare graph's in-process throughput, or when the tokenizer or
post-processing step's server compute at batch 1 exceeds --max-step-ms (1.0): a machine whose served
path degrades is caught here, not by a user. Every target of the issue is printed as met or missed.

Run from the repository's root (`--smoke`: tiny models on the CPU, the checks only reported):
  python -m scripts.bench.gpu_serve_bench --out DIR --tokenizer TOKENIZER_DIR [--gpu h200] [--kernels fused-tanh-gelu]
  python -m scripts.bench.gpu_serve_bench --out DIR --tokenizer TOKENIZER_DIR --smoke
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import platform
import shutil
import sys
import threading
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import click
import torch

from builder.common.backend_files import backend_module
from builder.common.cli import int_list
from builder.common.versions import package_versions
from builder.precision.fidelity import FidelityOptions
from builder.repository.options import ServingOptions
from builder.repository.pipeline import make_repo
from builder.serving.holds import Hold, holding, server_holds
from builder.serving.idle_poll import IdlePoll
from builder.serving.mps import Mps
from builder.serving.server import TritonServer
from client.generators.measure import MeasurementConfig
from client.records import PointRecord, ResultStore
from client.report.tables import markdown_table
from client.sweep import SweepConfig, run_sweep
from client.transport.text_client import ClientConfig, ClientError, TextClient
from scripts.bench.cpu_by_role import Snapshot, per_request
from scripts.bench.timing import census, graph_of, time_cpu, time_gpu

# The python-torch backend's own file, imported as the server imports it, at start-up: the backend helper's stub
# settings (one thread per pool, tokenizers' pool off, one compile thread) stay in this process and the servers
# it starts, as they always did here.
torch_model = backend_module("torch_model", stub_environment=True)

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
SMOKE_CONFIG = {"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 2, "intermediate_size": 128}
FLOOR_LAYERS, FLOOR_WIDTH = SMOKE_CONFIG["num_hidden_layers"], SMOKE_CONFIG["hidden_size"]  # bertfloor's model
MAX_RUNNER_ERROR = 0.05  # FP16 logits of padded batches against the unpadded forward
POWERS_OF_TWO = (1, 2, 4, 8, 16, 32, 64)  # bertpow2's batch buckets (make-repo --batch-buckets; max batch added)
SEQ = 128
TB, PA = "tritonbench", "perf_analyzer"


def bert_base(folder: Path, tokenizer: Path, classifier: bool, smoke: bool) -> Path:
    """A random-weight BERT-base (classifier or bare encoder) with a 30522-entry uncased tokenizer."""
    from transformers import BertConfig, BertForSequenceClassification, BertModel

    torch.manual_seed(0)
    config = BertConfig(num_labels=2, **(SMOKE_CONFIG if smoke else {}))
    model = BertForSequenceClassification(config) if classifier else BertModel(config)
    model.eval().save_pretrained(folder)
    for name in TOKENIZER_FILES:
        shutil.copy(tokenizer / name, folder / name)
    return folder


def in_process(model_dir: Path, precision: str, kernels: str) -> dict[str, float]:
    """The classifier's forward as a bare CUDA graph and through the engine's Runner, at 1 × 128 and 32 × 128.

    128-token texts fill their bucket: the served requests take the full-row path (no attention mask),
    which is what is timed first; the masked path (one padded token) is timed beside it.
    """
    from transformers import AutoModelForSequenceClassification

    Runner, apply_precision, build_forward = torch_model.Runner, torch_model.apply_precision, torch_model.build_forward

    model = AutoModelForSequenceClassification.from_pretrained(model_dir, attn_implementation="sdpa").eval()
    forward = build_forward(apply_precision(model, precision).to(DEVICE), "text-classification", kernels)
    found: dict[str, float] = {}
    for batch in (1, 32):
        ids = torch.randint(1000, 20000, (batch, SEQ), device=DEVICE)
        full, padded = torch.ones_like(ids), torch.ones_like(ids)
        padded[0, -1] = 0
        if DEVICE.type == "cuda":
            found[f"graph_{batch}x{SEQ}_ms"] = time_gpu(graph_of(forward.run, ids, full, True), 200)
            found[f"graph_masked_{batch}x{SEQ}_ms"] = time_gpu(graph_of(forward.run, ids, padded, False), 200)
        # the Runner returns host tensors: it has synchronised when it returns, so wall time is its time
        runner = Runner(forward, DEVICE, [batch], [SEQ], batch * SEQ)
        host = ids.cpu().numpy(), full.cpu().numpy(), padded.cpu().numpy()
        found[f"runner_{batch}x{SEQ}_ms"] = time_cpu(lambda r=runner, h=host: r(h[0], h[1]), 300)
        found[f"runner_masked_{batch}x{SEQ}_ms"] = time_cpu(lambda r=runner, h=host: r(h[0], h[2]), 300)
    found["runner_vs_forward_max_abs"] = runner_error(forward)
    if DEVICE.type == "cuda":
        torch.cuda.empty_cache()
    return found


def runner_error(forward: object) -> float:
    """How far the Runner's answers are from the forward's, at two batch sizes of one length (3 and 11 rows).

    Both run padded (to 4 and 16 rows) through graphs that copy out into one pinned buffer per length.
    """
    runner = torch_model.Runner(forward, DEVICE, [4, 16], [SEQ], 16 * SEQ)
    ids = torch.randint(1000, 20000, (11, SEQ), device=DEVICE)
    mask = torch.ones_like(ids)
    mask[1::2, SEQ // 2 :] = 0  # half the rows padded: the masked graphs
    errors = []
    for rows in (3, 11):
        got = runner(ids[:rows].cpu().numpy(), mask[:rows].cpu().numpy()).clone()
        want = runner.eager(ids[:rows], mask[:rows]).cpu()
        errors.append(float((got - want).abs().max()))
    return max(errors)


@dataclass(frozen=True)
class Measured:
    """One served point to measure: a model of a deployment at one batch and concurrency, by one tool and protocol."""

    model: str
    batch: int
    concurrency: int
    engine: str
    protocol: str = "grpc"


PLAN = (
    Measured("bert_model", 32, 4, PA),  # the model alone: the throughput the server keeps of the graph's
    Measured("bert_model", 32, 4, TB),
    Measured("bert_model", 32, 8, PA),
    Measured("bert", 1, 1, PA),  # the 3-step ensemble at batch 1: latency, and each step's server compute
    Measured("bert", 1, 1, TB),
    Measured("bertfe1", 1, 1, PA),  # the single model, no batching delay: the latency deployment
    Measured("bertfe1", 1, 1, TB),
    Measured("bert", 1, 64, PA),  # one text per request, 64 clients: the dynamic batchers must merge them
    Measured("bert", 1, 64, TB),
    # over HTTP too: the last step writes gRPC responses on its instance's thread (h200_2026-12-03/http_1108/)
    Measured("bert", 1, 64, PA, "http"),
    Measured("bert", 1, 64, TB, "http"),
    # what each step keeps alone at c64, and the pipeline with a model that costs next to nothing: which part limits
    Measured("bert_tokenizer", 1, 64, PA),
    Measured("bert_model", 1, 64, PA),
    Measured("bertfloor", 1, 64, PA),
    Measured("bertpow2", 1, 64, PA),  # the ensemble with the graphs' batch sizes powers of two, as before 2026-12-03
    Measured("bertwide", 1, 64, PA),  # the same with more model and tokenizer instances
    Measured("bertsm", 1, 64, PA),  # the single model with the profile's batching: one stub hop per text
    Measured("bertsm", 1, 64, TB),
)


@dataclass(frozen=True)
class ServerSetting:
    """What one server of the run is started with."""

    shm_mib: int = 0  # the Python backend's shared-memory region per stub (0: the backend's default)
    cpu_latency_us: int | None = None  # the PM QoS limit held while it serves (None: the host's own)
    idle_poll: bool = False  # a nice-19 poller on every CPU while it serves (serve --idle-poll)
    mps: bool = False  # serve --mps

    @property
    def python_backend_config(self) -> tuple[str, ...]:
        """The Python backend's settings."""
        return (f"shm-default-byte-size={self.shm_mib << 20}",) if self.shm_mib else ()

    @property
    def label(self) -> str:
        """How the tables name it."""
        cpu = "host's CPU idle" if self.cpu_latency_us is None else f"CPU latency {self.cpu_latency_us} µs"
        poll, mps = ", idle poll" if self.idle_poll else "", ", MPS" if self.mps else ""
        return f"{self.shm_mib or 'default'} MiB, {cpu}{poll}{mps}"

    @property
    def folder(self) -> str:
        """Its folder's name after `server{i}_`."""
        cpu = "" if self.cpu_latency_us is None else f"_cpu_{self.cpu_latency_us}us"
        return f"shm_{self.shm_mib}mib{cpu}" + ("_idle_poll" if self.idle_poll else "") + ("_mps" if self.mps else "")

    @property
    def holds(self) -> list[Hold]:
        """What the server holds while it runs (the in-process baseline runs under the first server's, but MPS)."""
        return server_holds(self.cpu_latency_us, self.idle_poll, self.mps)

    def start(self, repo: Path, log: Path) -> TritonServer:
        """This setting's server for `repo` (not started)."""
        backend = self.python_backend_config
        return TritonServer(
            repo, log_path=log, startup_timeout_s=420, python_backend_config=backend,
            cpu_latency_us=self.cpu_latency_us, idle_poll=self.idle_poll, mps=self.mps,
        )  # fmt: skip


def server_settings(shm_mib: str, cpu_latency_us: str, idle_poll: str = "off", mps: str = "off") -> list[ServerSetting]:
    """One setting per server from --shm-mib, --cpu-latency-us, --idle-poll and --mps (comma lists; one value: all)."""
    given = {"--shm-mib": shm_mib, "--cpu-latency-us": cpu_latency_us, "--idle-poll": idle_poll, "--mps": mps}
    lists = {flag: [v.strip() for v in text.split(",")] for flag, text in given.items()}
    for flag in ("--idle-poll", "--mps"):
        if set(lists[flag]) - {"on", "off"}:
            raise ValueError(f"{flag} {given[flag]}: give on or off, or one per server (off,on)")
    count = max(len(values) for values in lists.values())
    if {len(values) for values in lists.values()} - {1, count}:
        flags = ", ".join(f"{flag} {text}" for flag, text in given.items())
        raise ValueError(f"{flags}: give one value or one per server")
    sizes, limits, polls, shares = (values * (count // len(values)) for values in lists.values())
    return [
        ServerSetting(int(mib), None if us == "none" else int(us), poll == "on", share == "on")
        for mib, us, poll, share in zip(sizes, limits, polls, shares, strict=True)
    ]


def sizes(text: str) -> tuple[int, ...]:
    """A comma-separated list of positive sizes, as make-repo reads one (its order is checked by ServingOptions)."""
    try:
        return int_list(text)
    except click.BadParameter as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def deployment_of(point: Measured) -> str:
    """The deployment a point measures (`bert_model` and `bert_tokenizer` are steps of `bert`)."""
    return point.model.partition("_")[0]


def selected(only: str | None) -> tuple[Measured, ...]:
    """PLAN's points that --only names (DEPLOYMENT or DEPLOYMENT@CONCURRENCY, comma-separated); all without it."""
    if not only:
        return PLAN
    wanted = [item.partition("@") for item in only.split(",")]
    return tuple(
        p for p in PLAN if any(deployment_of(p) == d and (not c or p.concurrency == int(c)) for d, _, c in wanted)
    )


def serve_and_measure(
    repo: Path,
    out: Path,
    window: MeasurementConfig,
    variant: str,
    setting: ServerSetting,
    plan: tuple = PLAN,
    warm_s: float = 0.0,
    rounds: int = 1,
) -> tuple[list[list[PointRecord]], dict]:
    """Every point of `plan` against one server, `rounds` times by turns; each round's records, and CPU censuses.

    Rounds measure the same points again on the same server, so that deployments compare by turns (ABAB) rather
    than across servers, which differ by more than most changes (h200_2026-12-04/). Round 1 is OUT/sweep/, round
    r OUT/sweep_round{r}/. With `warm_s`, each model's first concurrency-64 point follows warm_s seconds of the
    same load from perf_analyzer, kept apart in OUT/warm/: the point then measures a server that has already met
    that load.
    """
    stores = [ResultStore(out / ("sweep" if r == 1 else f"sweep_round{r}")) for r in range(1, rounds + 1)]
    censuses: dict = {}
    warmed: set[str] = set()
    with setting.start(repo, out / "tritonserver.log") as server:
        mps = [h for h in server.holds if isinstance(h, Mps)]
        if mps:  # a CUDA program that cannot reach the daemon runs without MPS, silently: who joined
            print(f"MPS: servers and their clients {mps[0].clients()}", flush=True)
        for round_, store, point in ((r, st, p) for r, st in enumerate(stores, 1) for p in plan):
            url = server.grpc_url if point.protocol == "grpc" else server.http_url
            config = SweepConfig(
                ClientConfig(url, point.model, point.protocol),
                (point.batch,),
                (SEQ,),
                concurrency=(point.concurrency,),
                measurement=window,
                variant=variant,
                generator=point.engine,
                metrics_url=server.metrics_url,
            )
            if point.concurrency == 64 and warm_s and point.model not in warmed:
                warmed.add(point.model)
                warm = MeasurementConfig(
                    window_s=warm_s / 3, stability_pct=100, stable_windows=3, max_trials=3, warmup_s=0
                )
                print(f"warm-up: {point.model} at c64 for {warm_s:g} s (OUT/warm/, not a measured point)", flush=True)
                with contextlib.suppress(ClientError):  # the measured point reports what went wrong
                    run_sweep(replace(config, generator=PA, measurement=warm), ResultStore(out / "warm"), echo=print,
                              repo=repo, progress=False)  # fmt: skip
            watcher = None
            if point.concurrency == 64:  # where host-side stalls would show: which threads burn the CPU
                label = " ".join(
                    [
                        *([] if point.model == "bert" else [point.model]),
                        point.engine,
                        *([] if point.protocol == "grpc" else [point.protocol]),
                        *([] if round_ == 1 else [f"round {round_}"]),
                    ]
                )
                watcher = threading.Thread(
                    target=lambda k=label, m=point.model: censuses.update({k: census_by_role(server, m, 3)})
                )
                watcher.start()
            try:
                run_sweep(config, store, echo=print, repo=repo, progress=False)
            except ClientError as exc:
                print(f"{point}: {exc.message}", flush=True)
            if watcher:
                watcher.join()
            pollers = [h for h in server.holds if isinstance(h, IdlePoll)]
            if pollers:  # whether the load stopped them during this point (idle_poll.py)
                print(f"idle poll: {pollers[0].pauses} pauses for load so far, paused: {pollers[0].paused}", flush=True)
    return [store.load() for store in stores], censuses


def census_by_role(server: TritonServer, model: str, seconds: float) -> dict:
    """census(seconds) once `model`'s load has begun, with each role's CPU per inference over the same seconds.

    It waits for the first inferences (perf_analyzer starts and reads the model first), then one more second.
    """
    with TextClient(ClientConfig(server.grpc_url, model, timeout_s=10)) as client:

        def served() -> int:
            return next((s["inference_count"] for s in client.model_statistics() if s["name"] == model), 0)

        begun, start = time.monotonic(), served()
        while served() == start and time.monotonic() - begun < 60:
            time.sleep(0.1)
        time.sleep(1.0)
        before, start = Snapshot.take(server.pid, server.repo), served()
        found = census(seconds)
        after, end = Snapshot.take(server.pid, server.repo), served()
    found["cpu_per_request"] = per_request(before, after, end - start)
    return found


def print_targets(rows: list[dict]) -> None:
    """Each target of the issue, met, missed or not measured."""
    print("\n| target | measured | |\n|---|---|---|")
    for row in rows:
        verdict = {True: "met", False: "MISSED", None: "not measured"}[row["met"]]
        print(f"| {row['target']} | {row['measured'] if row['met'] is not None else '–'} | {verdict} |")


def print_censuses(censuses: dict) -> None:
    """The CPU at each c64 point: the busiest processes, and each role's CPU per request."""
    for key, found in censuses.items():
        top = ", ".join(f"{p['process'][:40]} {p['cpu_pct']}%" for p in found["top_processes"][:4])
        print(f"CPU at c64 ({key}): {found['busy_cores']} busy cores, steal {found['steal_pct']}%: {top}")
        roles = found.get("cpu_per_request", {})
        busy = {role.removesuffix("_us"): us for role, us in roles.items() if role.endswith("_us") and us >= 1}
        spent = ", ".join(f"{role} {us:,.0f}" for role, us in busy.items())  # idle deployments' stubs left out
        if roles:
            print(f"  µs of CPU per request: {spent}; host busy {roles['host_busy_cores']:.1f} cores + pollers")


def find(records: list[PointRecord], point: Measured) -> PointRecord | None:
    """The record of one planned point, if it was measured (perf_analyzer stores no unstable point)."""
    key = (point.model, point.engine, point.batch, point.concurrency, point.protocol)
    return next((r for r in records if (r.model, r.generator, r.batch_size, r.concurrency, r.protocol) == key), None)


def checks(records: list[PointRecord], baseline: dict[str, float], min_ratio: float, max_step_ms: float) -> list[str]:
    """The benchmark's own verdict: every way the served path fell behind, naming the deployment."""
    failures = []
    graph = baseline.get(f"graph_32x{SEQ}_ms") or baseline[f"runner_32x{SEQ}_ms"]
    in_process = 32 / graph * 1000
    for engine in (PA, TB):
        served = find(records, Measured("bert_model", 32, 4, engine))
        if served is None:
            failures.append(f"bert_model: batch 32 not measured by {engine}")
        elif served.throughput_seq_per_s < min_ratio * in_process:
            failures.append(
                f"bert_model ({engine}): served {served.throughput_seq_per_s:,.0f} seq/s at batch 32 is "
                f"{served.throughput_seq_per_s / in_process:.2f} of the in-process {in_process:,.0f} (< {min_ratio})"
            )
    error = baseline.get("runner_vs_forward_max_abs", 0.0)
    if error > MAX_RUNNER_ERROR:
        failures.append(f"bert_model: the Runner's logits are {error:.3g} off the forward's (> {MAX_RUNNER_ERROR})")
    ensemble = find(records, Measured("bert", 1, 1, PA))
    if ensemble is None:
        failures.append("bert: batch 1 not measured by perf_analyzer (its per-step breakdown is the check)")
    else:
        for step in ("bert_tokenizer", "bert_post"):
            times = ensemble.server.get(step)
            if times is None or times.compute_infer_us > max_step_ms * 1000:
                spent = f"{times.compute_infer_us / 1000:.2f} ms" if times else "no breakdown"
                failures.append(f"bert ({step}): server compute at batch 1 is {spent} (> {max_step_ms} ms)")
    return failures


def server_rows(records: list[PointRecord]) -> dict[str, float]:
    """perf_analyzer's figure of each served point: p50 ms at concurrency 1, sequences/s above."""
    return {
        f"{r.model} b{r.batch_size} c{r.concurrency}"
        + ("" if r.protocol == "grpc" else f" {r.protocol}"): r.latency_p50_ms
        if r.concurrency == 1
        else r.throughput_seq_per_s
        for r in records
        if r.generator == PA
    }


def print_servers(servers: list[dict], column: str = "server") -> None:
    """The points side by side, one column per server (or per round of one server) and its setting."""
    heads = [f"{column} {i}: {s['setting']}" for i, s in enumerate(servers, start=1)]
    print("\n| point (p50 ms at c1, seq/s above) | " + " | ".join(heads) + " |")
    print("|---|" + "---:|" * len(servers))
    for point in servers[0]["points"]:
        print(f"| {point} | " + " | ".join(f"{s['points'].get(point, float('nan')):,.2f}" for s in servers) + " |")


def targets(
    records: list[PointRecord], baseline: dict[str, float], wide: tuple[int, ...], single: int
) -> list[tuple[str, str, bool | None]]:
    """Issue 11's targets: (target, measured, met), met None where this run did not measure it (--only)."""

    def seq_per_s(point: Measured) -> float:
        record = find(records, point)
        return record.throughput_seq_per_s if record else float("nan")

    def p50(point: Measured) -> float:
        record = find(records, point)
        return record.latency_p50_ms if record else float("nan")

    graph1 = baseline.get(f"graph_1x{SEQ}_ms", float("nan"))
    graph32 = 32 / baseline.get(f"graph_32x{SEQ}_ms", float("nan")) * 1000
    runner1 = baseline[f"runner_1x{SEQ}_ms"]
    runner32 = 32 / baseline[f"runner_32x{SEQ}_ms"] * 1000
    served32 = seq_per_s(Measured("bert_model", 32, 4, PA))
    single1, ensemble1 = p50(Measured("bertfe1", 1, 1, PA)), p50(Measured("bert", 1, 1, PA))
    c64 = {
        name: seq_per_s(Measured(name, 1, 64, PA))
        for name in ("bert", "bertwide", "bertsm", "bert_tokenizer", "bert_model", "bertfloor", "bertpow2")
    }
    c64_http = seq_per_s(Measured("bert", 1, 64, PA, "http"))
    rows = [  # (target, the values it reads, measured, met)
        ("served model only, batch 32 ≥ 0.90 × graph", (served32, graph32),
         f"{served32:,.0f} seq/s = {served32 / graph32:.3f} × graph", served32 >= 0.9 * graph32),
        ("served model only, batch 32 ≥ 18,000 seq/s", (served32,), f"{served32:,.0f} seq/s", served32 >= 18000),
        ("single model b1 c1 p50 ≤ 1.5 ms", (single1,), f"{single1:.2f} ms", single1 <= 1.5),
        ("3-step ensemble b1 c1 p50 ≤ 3.0 ms", (ensemble1,), f"{ensemble1:.2f} ms", ensemble1 <= 3.0),
        ("3-step ensemble c64 ≥ 8,000 texts/s", (c64["bert"],), f"{c64['bert']:,.0f} texts/s", c64["bert"] >= 8000),
        ("(the same over HTTP)", (c64_http,), f"{c64_http:,.0f} texts/s", c64_http >= 8000),
        (f"(the same, {wide[0]} model, {wide[1]} tokenizer and {wide[2]} post instances)", (c64["bertwide"],),
         f"{c64['bertwide']:,.0f} texts/s", c64["bertwide"] >= 8000),
        (f"(the single model, {single} instances, c64)", (c64["bertsm"],), f"{c64['bertsm']:,.0f} texts/s",
         c64["bertsm"] >= 8000),
        *((f"({what}, c64)", (c64[name],), f"{c64[name]:,.0f} texts/s", c64[name] >= 8000) for name, what in (
            ("bert_tokenizer", "the tokenizer step alone"),
            ("bert_model", "the model step alone, one row per request"),
            ("bertfloor", f"the 3-step ensemble with a {FLOOR_LAYERS}-layer, {FLOOR_WIDTH}-wide model"),
            ("bertpow2", "the 3-step ensemble, graphs at powers-of-two batch sizes"),
        )),
        ("Runner 1 × 128 ≤ 0.6 ms", (runner1,), f"{runner1:.3f} ms", runner1 <= 0.6),
        ("Runner 32 × 128 ≥ 0.90 × graph", (runner32, graph32),
         f"{runner32:,.0f} seq/s = {runner32 / graph32:.3f} × graph", runner32 >= 0.9 * graph32),
        ("in process 1 × 128 ≤ 0.45 ms", (graph1,), f"{graph1:.3f} ms", graph1 <= 0.45),
        ("in process 32 × 128 ≥ 20,000 seq/s", (graph32,), f"{graph32:,.0f} seq/s", graph32 >= 20000),
    ]  # fmt: skip
    return [
        (target, measured, None if any(math.isnan(v) for v in values) else met)
        for target, values, measured, met in rows
    ]


def environment(args: argparse.Namespace) -> dict:
    """Where and with what this ran."""
    device = torch.cuda.get_device_name() if DEVICE.type == "cuda" else platform.processor() or "cpu"
    return {
        "device": device,
        "host": platform.node(),
        "python": platform.python_version(),
        "versions": package_versions(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "gpu_profile": args.gpu,
        "precision": args.precision,
        "kernels": args.kernels,
    }


def main() -> None:
    """Baseline in process, build, serve, measure, check."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tokenizer", type=Path, required=True, help="folder with a BERT uncased tokenizer")
    parser.add_argument("--gpu", default="h200", help="make-repo --gpu")
    parser.add_argument("--precision", default="fp16")
    parser.add_argument("--kernels", default="fused-tanh-gelu", help="python-torch kernels (make-repo --kernels)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/gpu-serve"))
    parser.add_argument("--window-s", type=float, default=2.0, help="measurement window of every point")
    parser.add_argument("--min-served-ratio", type=float, default=0.90)
    parser.add_argument("--max-step-ms", type=float, default=1.0)
    parser.add_argument("--wide-instances", default="4,8,2", help="bertwide's model, tokenizer and post instances")
    parser.add_argument("--wide-host-threads", type=int, help="bertwide's pools (make-repo --host-threads)")
    parser.add_argument("--wide-delay-us", type=int, help="bertwide's batching delay (make-repo --max-queue-delay-us)")
    parser.add_argument("--wide-batch-buckets", type=sizes, help="bertwide's graph batch sizes (--batch-buckets)")
    parser.add_argument("--shm-mib", default="0", help="the Python backend's shared memory per stub, MiB; A,B: both")
    parser.add_argument("--cpu-latency-us", default="none", help="serve --cpu-latency-us of each server; none,0: both")
    parser.add_argument("--idle-poll", default="off", help="serve --idle-poll of each server: on, off; off,on: both")
    parser.add_argument("--mps", default="off", help="serve --mps of each server: on, off; off,on: both")
    parser.add_argument("--single-instances", type=int, default=4, help="bertsm's instances (the single model)")
    parser.add_argument("--warm-s", type=float, default=0.0, help="c64 load (s) before each model's first c64 point")
    parser.add_argument("--smoke", action="store_true", help="tiny models, cpu profile: checks are reported only")
    parser.add_argument("--only", help="measure only these deployments' points, e.g. bert@64,bertwide: no checks")
    parser.add_argument("--rounds", type=int, default=1, help="measure the points this many times by turns per server")
    args = parser.parse_args()
    wide = tuple(int(n) for n in args.wide_instances.split(","))
    if len(wide) != 3:
        parser.error(f"--wide-instances {args.wide_instances}: give model, tokenizer and post counts, e.g. 4,8,2")
    try:
        settings = server_settings(args.shm_mib, args.cpu_latency_us, args.idle_poll, args.mps)
    except ValueError as exc:
        parser.error(str(exc))
    if args.rounds < 1:
        parser.error(f"--rounds {args.rounds}: give 1 or more")
    plan = selected(args.only)
    if not plan:
        parser.error(f"--only {args.only} names no point of the plan")
    args.out.mkdir(parents=True, exist_ok=True)
    gpu = "cpu" if args.smoke else args.gpu
    summary: dict = {"environment": environment(args)}
    bert = bert_base(args.work / "bert-base-cls", args.tokenizer, classifier=True, smoke=args.smoke)
    bertfe = bert_base(args.work / "bert-base", args.tokenizer, classifier=False, smoke=args.smoke)
    tiny = bert_base(args.work / "bert-tiny-cls", args.tokenizer, classifier=True, smoke=True)
    with holding([h for h in settings[0].holds if not isinstance(h, Mps)]):  # as the first server runs, MPS aside
        summary["in_process"] = baseline = in_process(bert, args.precision, args.kernels)
    print(json.dumps(baseline, indent=1), flush=True)
    repo = args.work / "repo"
    latency = ServingOptions(args.kernels, single_model=True, max_queue_delay_us=0)
    wider = ServingOptions(args.kernels, model_instances=wide[0], tokenizer_instances=wide[1], post_instances=wide[2],
                           host_threads=args.wide_host_threads, max_queue_delay_us=args.wide_delay_us,
                           batch_buckets=args.wide_batch_buckets)  # fmt: skip
    single = ServingOptions(args.kernels, single_model=True, model_instances=args.single_instances)
    deployments = (
        (bert, "text-classification", "bert", ServingOptions(args.kernels)),
        (bert, "text-classification", "bertwide", wider),
        (bertfe, "feature-extraction", "bertfe1", latency),
        (bert, "text-classification", "bertsm", single),
        (tiny, "text-classification", "bertfloor", ServingOptions(args.kernels)),
        (bert, "text-classification", "bertpow2", ServingOptions(args.kernels, batch_buckets=POWERS_OF_TWO)),
    )
    names = {deployment_of(p) for p in plan}
    ungated = FidelityOptions(enabled=False)  # random weights say nothing of fidelity: `gpu_run.sh gate` measures it
    for model, task, name, serving in (d for d in deployments if d[2] in names):
        make_repo(str(model), task, name, "python-torch", gpu, repo, force=True, trust_remote_code=False,
                  echo=print, precision=args.precision, serving=serving, fidelity=ungated)  # fmt: skip
    window = MeasurementConfig(window_s=args.window_s, stability_pct=10, stable_windows=3, max_trials=6, warmup_s=1.0)
    measure = functools.partial(serve_and_measure, repo, window=window, variant=args.precision, plan=plan,
                                warm_s=args.warm_s, rounds=args.rounds)  # fmt: skip
    by_round, censuses = measure(args.out, setting=settings[0])
    records = by_round[0]
    shutil.copy(args.out / "sweep" / "results.jsonl", args.out / "results.jsonl")
    print(markdown_table(records), flush=True)
    summary["census_c64"] = censuses
    if args.rounds > 1:  # one column per round of the first server
        summary["rounds"] = [{"setting": settings[0].label, "points": server_rows(r)} for r in by_round]
        print_servers(summary["rounds"], column="round")
    if len(settings) > 1:  # one column per server, in the order they ran (a setting may repeat)
        summary["servers"] = [{"setting": settings[0].label, "points": server_rows(records)}]
        for i, setting in enumerate(settings[1:], start=2):
            other, _ = measure(args.out / f"server{i}_{setting.folder}", setting=setting)
            summary["servers"].append({"setting": setting.label, "points": server_rows(other[0])})
        print_servers(summary["servers"])
    met = targets(records, baseline, wide, args.single_instances)
    summary["targets"] = [{"target": t, "measured": m, "met": ok} for t, m, ok in met]
    failures = [] if args.only else checks(records, baseline, args.min_served_ratio, args.max_step_ms)
    summary["failures"] = failures
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print_targets(summary["targets"])
    print_censuses(censuses)
    if failures:
        print("\nSERVED PATH BEHIND:\n  " + "\n  ".join(failures), flush=True)
        if not args.smoke:
            sys.exit(1)
    elif args.only:
        print("\nserved path checks: not run (--only measures part of the plan)")
    else:
        print("\nserved path checks: passed")


if __name__ == "__main__":
    main()
