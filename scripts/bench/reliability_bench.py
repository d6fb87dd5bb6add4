"""Reliability benchmark (not a timed test): hostile input, poisoning, head-of-line, warm-up errors, ports, stub kill,
server kill, publish under injected failures, concurrent make-repo and a damaged results store, against a fresh
MiniLM repository on the bundled server.

Prints a table (case, expected, observed, pass/fail, recovery time) and writes it with the machine, versions,
commit, date and command. From the repository's root:
  python -m scripts.bench.reliability_bench [--out scripts/results]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as grpcaio
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

import builder.repository.repo_writer as repo_writer
from builder.common.corpus import corpus_sentences
from builder.common.versions import package_versions
from builder.gpus import get_profile
from builder.repository.layout import RepoPlan
from builder.repository.pipeline import make_repo
from builder.repository.plan import plan_repository
from builder.serving.server import TritonServer, free_port
from builder.serving.stubs import stubs_of
from builder.sources.source import inspect_model
from client.generators.load import PointRun, run_point
from client.generators.measure import MeasurementConfig
from client.generators.tritonbench import Tritonbench
from client.points import Load, Point
from client.records import PointRecord, ResultStore
from client.sweep import SweepConfig
from client.targets.requests import Requests
from client.transport.server_stats import counters
from client.transport.text_client import AsyncTextClient, ClientConfig
from tests.hostile import HOSTILE, Served, inputs  # the reliability tests' hostile cases and serve process

ROOT = Path(__file__).resolve().parents[2]
SENTENCES = corpus_sentences()
EMPTY = np.array([[b""]], dtype=object)


@dataclass(frozen=True)
class Row:
    """One line of the table."""

    case: str
    expected: str
    observed: str
    passed: bool
    recovery_s: float | None = None


# every hostile case of the tests that this repository has, and bad text through the ensemble
CASES = {
    f"{case} → {model}": (model, arrays)
    for case, (model, arrays, _) in {**HOSTILE, "empty text": ("minilm", {"TEXT": EMPTY}, "")}.items()
    if model.startswith("minilm")
}


def hostile(server: TritonServer) -> list[Row]:
    """Each hostile request over gRPC and HTTP: the status code and the message the client sees."""
    rows = []
    for case, (model, arrays) in CASES.items():
        seen = []
        for module, url in ((grpcclient, server.grpc_url), (httpclient, server.http_url)):
            try:
                module.InferenceServerClient(url).infer(model, inputs(module, arrays))
                seen.append(("answered", ""))
            except InferenceServerException as exc:
                seen.append((str(exc.status()).removeprefix("StatusCode."), exc.message()))
        short = all(len(m) < 200 and "Traceback" not in m and ".py" not in m for _, m in seen)
        passed = [s for s, _ in seen] == ["INVALID_ARGUMENT", "400"] and short
        message = seen[0][1].removeprefix("in ensemble 'minilm', ")
        observed = f"{seen[0][0]} / {seen[1][0]}: “{message[:90]}”"
        rows.append(Row(case, "INVALID_ARGUMENT / 400, short message", observed, passed))
    return rows


def poisoning(server: TritonServer, good: int = 1000) -> Row:
    """Bad requests to every member model at full rate beside good ensemble requests (8 in flight)."""
    poison = [(m, a) for m, a in CASES.values() if m != "minilm"]

    async def attacker(stop: asyncio.Event, refused: list[bool]) -> None:
        client = grpcaio.InferenceServerClient(server.grpc_url)
        index = 0
        while not stop.is_set():
            model, arrays = poison[index % len(poison)]
            index += 1
            try:
                await client.infer(model, inputs(grpcaio, arrays))
                refused.append(False)
            except InferenceServerException as exc:
                refused.append(str(exc.status()) == "StatusCode.INVALID_ARGUMENT")
        await client.close()

    async def go() -> tuple[int, list[bool]]:
        stop, refused = asyncio.Event(), []
        attackers = [asyncio.create_task(attacker(stop, refused)) for _ in range(6)]
        client = grpcaio.InferenceServerClient(server.grpc_url)
        texts = [inputs(grpcaio, {"TEXT": np.array([[f"good request {i}".encode()]], dtype=object)}) for i in range(8)]
        ok = 0
        for _ in range(good // 8):
            results = await asyncio.gather(*(client.infer("minilm", t) for t in texts), return_exceptions=True)
            ok += sum(not isinstance(r, BaseException) for r in results)
        stop.set()
        await asyncio.gather(*attackers)
        await client.close()
        return ok, refused

    ok, refused = asyncio.run(go())
    sent = good // 8 * 8
    observed = f"{ok}/{sent} good ({100 * ok / sent:.2f} %); {sum(refused)}/{len(refused)} bad refused"
    return Row(
        "poisoning: bad requests to every member at full rate",
        "≥ 99.9 % of good ensemble requests succeed",
        observed,
        ok / sent >= 0.999 and all(refused),
    )


def head_of_line(server: TritonServer) -> Row:
    """Small requests every 10 ms while two maximal in-limits requests (32 texts of ~1 MB) run one after another."""
    megabyte = (" ".join(SENTENCES) * 3).encode()[:999_000]
    big = inputs(grpcclient, {"TEXT": np.array([[megabyte]] * 32, dtype=object)})
    small = inputs(grpcclient, {"TEXT": np.array([[b"a small request"]], dtype=object)})
    client = grpcclient.InferenceServerClient(server.grpc_url)
    client.infer("minilm", small)
    rss = sum(s.rss_bytes() for s in stubs_of(server.pid, server.repo) if s.model == "minilm_tokenizer")
    done, big_s = threading.Event(), []

    def send_big() -> None:
        other = grpcclient.InferenceServerClient(server.grpc_url)
        for _ in range(2):
            start = time.perf_counter()
            other.infer("minilm", big, client_timeout=300)
            big_s.append(time.perf_counter() - start)
        done.set()

    thread = threading.Thread(target=send_big)
    thread.start()
    latencies = []
    while not done.is_set():
        start = time.perf_counter()
        client.infer("minilm", small, client_timeout=60)
        latencies.append(time.perf_counter() - start)
        time.sleep(0.01)
    thread.join()
    growth = sum(s.rss_bytes() for s in stubs_of(server.pid, server.repo) if s.model == "minilm_tokenizer") - rss
    p50, p99 = (float(np.percentile(latencies, q)) * 1000 for q in (50, 99))
    observed = (
        f"small p50 {p50:.0f} ms, p99 {p99:.0f} ms (n={len(latencies)}) beside 2 maximal requests of "
        f"{big_s[0]:.1f}/{big_s[1]:.1f} s; tokenizer stubs {growth / 1e6:+.0f} MB"
    )
    return Row(
        "head-of-line: 32 × 1 MB texts beside small requests",
        "small p99 < 100 ms, memory flat",
        observed,
        p99 < 100 and growth < 200e6,
    )


def _ok(client, request) -> bool:
    try:
        client.infer("minilm", request, client_timeout=10)
        return True
    except InferenceServerException:
        return False


def stub_kill(repo: Path) -> list[Row]:
    """kill -9 of one stub of each member, one after another, under steady requests to the ensemble."""
    served = Served(repo)
    rows = []
    try:
        served.wait_for("ready:")
        client = grpcclient.InferenceServerClient(served.grpc_url)
        request = inputs(grpcclient, {"TEXT": np.array([[b"still serving?"]], dtype=object)})
        for model in ("minilm_tokenizer", "minilm_model", "minilm_post"):
            stubs = [s for s in stubs_of(served.server_pid(), repo.resolve()) if s.model == model]
            killed = time.monotonic()
            os.kill(stubs[0].pid, signal.SIGKILL)
            outcomes = []  # (when the answer came, whether it was one)
            while time.monotonic() - killed < 15:
                ok = _ok(client, request)
                outcomes.append((time.monotonic(), ok))
                time.sleep(0.02)
            failed = [at for at, ok in outcomes if not ok]
            answered = [at for at, ok in outcomes if ok and (not failed or at > failed[-1])]
            recovered = answered[0] - killed if answered else None
            again = served.wait_for(f"supervisor: {model}: serving again", timeout_s=30) - killed
            said = any(f"supervisor: {model}: 1 of its" in line and "reloading" in line for _, line in served.seen)
            observed = (
                f"{len(failed)} of {len(outcomes)} requests failed, the last one answered "
                f"{(failed[-1] - killed) if failed else 0:.1f} s after the kill; serve printed "
                f"{'“… died; reloading”, then ' if said else ''}“serving again” at {again:.1f} s"
            )
            rows.append(
                Row(
                    f"kill -9 of a {model.removeprefix('minilm_')} stub ({len(stubs)} running)",
                    "serving again within 10 s, serve says so",
                    observed,
                    said and recovered is not None and recovered < 10 and again < 10,
                    recovered,
                )
            )
    finally:
        served.process.send_signal(signal.SIGINT)
        served.finish(timeout_s=60)
    return rows


def server_kill(repo: Path) -> Row:
    """kill -9 of tritonserver under serve."""
    served = Served(repo)
    served.wait_for("ready:")
    killed = time.monotonic()
    os.kill(served.server_pid(), signal.SIGKILL)
    output = served.finish(timeout_s=60)
    exited = time.monotonic() - killed
    tail = output.split("its log ends:", 1)[-1]
    noise = "CUDA driver version is insufficient" in tail or "NVML" in tail
    passed = served.process.returncode == 1 and "Started HTTPService" in tail and not noise
    observed = (
        f"serve exited {served.process.returncode} after {exited:.1f} s showing the log's last "
        f"{len(tail.strip().splitlines())} lines{', with CUDA noise' if noise else ', no CUDA/NVML noise'}"
    )
    return Row(
        "kill -9 of tritonserver under serve", "serve exits 1 with the log's last lines", observed, passed, exited
    )


def port_taken(repo: Path, server: TritonServer) -> Row:
    """serve on the gRPC port of a server already running."""
    served = Served(repo, free_port(), server.grpc_port, free_port())
    output = served.finish(timeout_s=120)
    passed = served.process.returncode == 1 and "is in use" in output and "ready:" not in output
    observed = f"exit {served.process.returncode}: “{output.strip().splitlines()[0][:90]}”"
    return Row("serve on a port another server owns", "refused before starting, no “ready:”", observed, passed)


def _snapshot(folder: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


def _staged_copy(plan: RepoPlan, out: Path) -> Path:
    """A staging folder holding a new version of the repository in `out`: the same, but another model.onnx."""
    stage = Path(tempfile.mkdtemp(prefix=repo_writer.STAGING_PREFIX, dir=out))
    for model in plan.models:
        shutil.copytree(out / model.config.name, stage / model.config.name)
    (stage / "minilm_model" / "1" / "model.onnx").write_bytes(b"new")
    return stage


def publish_injection(repo: Path) -> Row:
    """Replace a copy of the fresh repository, failing once at each rename of the publish; then without failure."""
    plan = plan_repository(
        inspect_model("minilm", "feature-extraction"), "minilm", "python-onnxruntime", get_profile("cpu")
    )
    out = Path(tempfile.mkdtemp(prefix="reliability-publish-")) / "repo"
    shutil.copytree(repo, out)
    old = _snapshot(out)
    real_replace = os.replace
    renames, intact = 2 * len(plan.models), 0
    for step in range(renames):
        stage, calls = _staged_copy(plan, out), []

        def replace(source: Path, dest: Path, step: int = step, calls: list = calls) -> None:
            calls.append(source)
            if len(calls) == step + 1:
                raise OSError("injected failure")
            real_replace(source, dest)

        repo_writer.os.replace = replace  # type: ignore[assignment]
        try:
            repo_writer.publish(plan, stage, out, force=True)
        except OSError:
            pass
        finally:
            repo_writer.os.replace = real_replace
        shutil.rmtree(stage)
        intact += _snapshot(out) == old
    stage = _staged_copy(plan, out)
    repo_writer.publish(plan, stage, out, force=True)
    shutil.rmtree(stage)
    new = (out / "minilm_model" / "1" / "model.onnx").read_bytes() == b"new"
    observed = f"old repository byte for byte after {intact} of {renames} failures; new one whole without: {new}"
    return Row(
        "publish with a failure at each rename",
        "output is the old or the new repository",
        observed,
        intact == renames and new,
    )


def concurrent_make_repo() -> Row:
    """Two make-repo runs into one new folder at the same time, without --force."""
    out = Path(tempfile.mkdtemp(prefix="reliability-twice-")) / "repo"
    command = [sys.executable, "-m", "builder", "make-repo", "--output", str(out), "--no-validate"]
    runs = [
        subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(2)
    ]
    results = sorted((run.wait(timeout=900), run.stdout.read() if run.stdout else "") for run in runs)
    codes = [code for code, _ in results]
    refused = "already has minilm_tokenizer" in results[-1][1] and "is unchanged" in results[-1][1]
    models = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    observed = f"exit codes {codes}; the second: “already has …, pass --force”; {len(models)} model folders"
    return Row(
        "two make-repo runs into one folder",
        "one publishes, the other fails without --force",
        observed,
        codes == [0, 1] and refused and len(models) == 4,
    )


def warm_up_errors(server: TritonServer) -> Row:
    """A point whose first 5 requests are refused (during warm-up): what its record says."""
    config = SweepConfig(
        ClientConfig(server.grpc_url, "minilm"),
        (1,),
        (16,),
        concurrency=(1,),
        measurement=MeasurementConfig(0.5, 0, 50, 2, 4, warmup_s=1.0),
    )

    async def go() -> PointRun:
        async with AsyncTextClient(config.client) as client:

            async def send(index: int) -> None:
                await client.infer([""] if index < 5 else [f"good text {index}"])

            async def sample() -> dict:
                return {"stats": {config.client.url: counters(await client.statistics())}, "gpu": {}}

            return await run_point(send, Load(concurrency=1), config.measurement, sample)

    point = Point(1, 16, Load(concurrency=1))
    generator = Tritonbench(config.generator_config(), Requests("minilm", None))
    record = generator.record(point, generator.measured(point, asyncio.run(go())))
    observed = f"errors {record.errors}, timeouts {record.timeouts}, {record.requests} good requests measured"
    return Row("5 failed requests during a point's warm-up", "the record counts all 5", observed, record.errors == 5)


def _record(batch: int) -> PointRecord:
    return PointRecord(
        model="minilm",
        protocol="grpc",
        generator="tritonbench",
        mode="concurrency",
        batch_size=batch,
        seq_len=16,
        concurrency=1,
        request_rate=None,
        arrival=None,
        variant="",
        requests=100,
        errors=0,
        duration_s=1.0,
        throughput_infer_per_s=100.0,
        throughput_seq_per_s=100.0,
        throughput_tokens_per_s=1600.0,
        latency_avg_ms=10.0,
        latency_p50_ms=10.0,
        latency_p90_ms=11.0,
        latency_p95_ms=12.0,
        latency_p99_ms=13.0,
        latency_max_ms=20.0,
        stable=True,
        trials=3,
    )


def store_damage() -> Row:
    """A torn last line, then a new record; hostile lines; what loading keeps and says."""
    store = ResultStore(Path(tempfile.mkdtemp(prefix="reliability-store-")))
    store.append(_record(1))
    with store.path.open("ab") as f:
        f.write(b'{"model": "torn')
    store.append(_record(2))
    wrong_type = json.dumps({**dataclasses.asdict(_record(3)), "errors": "x"}).encode()
    with store.path.open("ab") as f:
        f.write(b'[1]\n\xff\xfe\n{"model": 3}\n' + wrong_type + b"\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kept = store.load()
    passed = (
        [r.batch_size for r in kept] == [1, 2] and len(caught) == 1 and "skipped 5 damaged" in str(caught[0].message)
    )
    said = str(caught[0].message).split(": ", 1)[1].split(" (", 1)[0] if caught else "no warning"
    observed = f"{len(kept)} records loaded (the one after the torn line too); {len(caught)} warning: “{said}”"
    return Row(
        "results store: torn last line + 4 hostile lines",
        "new record kept, damaged lines skipped, one warning",
        observed,
        passed,
    )


def table(rows: list[Row]) -> str:
    lines = ["| case | expected | observed | result | recovery |", "|---|---|---|---|---|"]
    for r in rows:
        recovery = "–" if r.recovery_s is None else f"{r.recovery_s:.1f} s"
        lines.append(f"| {r.case} | {r.expected} | {r.observed} | {'pass' if r.passed else 'FAIL'} | {recovery} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "scripts" / "results")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="reliability-"))
    repo = work / "repo"
    print(f"building a fresh repository in {repo} ...", flush=True)
    make_repo(
        "minilm",
        "feature-extraction",
        "minilm",
        "python-onnxruntime",
        "cpu",
        repo,
        force=False,
        trust_remote_code=False,
        echo=lambda _: None,
    )
    with TritonServer(repo) as server:  # the scenarios that leave the server serving share one
        rows = [*hostile(server), poisoning(server), head_of_line(server), warm_up_errors(server)]
        rows.append(port_taken(repo, server))
    rows += [*stub_kill(repo), server_kill(repo), publish_injection(repo), concurrent_make_repo(), store_damage()]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    versions = package_versions()
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown",
    )
    header = [
        "# Reliability benchmark",
        "",
        f"- machine: {platform.node()}, {cpu}, {len(os.sched_getaffinity(0))} cores, {platform.platform()}",
        f"- versions: Python {platform.python_version()}, tritonserver 2.51 "
        f"(nvidia-pytriton {version('nvidia-pytriton')}), "
        + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())),
        f"- commit: {commit.strip()}; date: {datetime.now(UTC).isoformat(timespec='seconds')}",
        f"- command: {' '.join(sys.orig_argv)}",
        "- repository: bundled all-MiniLM-L6-v2, python-onnxruntime, cpu profile (2 model, 2 tokenizer instances)",
        "",
    ]
    text = "\n".join([*header, table(rows), ""])
    print("\n" + table(rows))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"reliability_cpu_{datetime.now(UTC):%Y-%m-%d}.md"
    path.write_text(text)
    print(f"wrote {path}; {sum(r.passed for r in rows)}/{len(rows)} pass")


if __name__ == "__main__":
    main()
