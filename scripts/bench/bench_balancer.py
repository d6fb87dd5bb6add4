"""The balancer of `tritonbuild serve --replicas` measured (not a timed test): its latency cost and a killed replica.

1. p50 overhead at concurrency 1: one replica, asked directly and through nginx by turns, request by request (so
   drift on a shared machine hits both alike), over gRPC and HTTP, for a tiny identity model (the proxy's cost alone)
   and the bundled MiniLM ensemble (what a user sees), in --rounds rounds on new connections: the verdict is the
   median round's, beside the range. Target: <= 0.3 ms.
2. Killed replica: two MiniLM replicas behind nginx, concurrency 4 for --kill-seconds, one replica SIGKILLed a
   third of the way in; every request counted. Target: < 1 % failed, none timed out.

Prints a table and writes results.json and README.md (machine, versions, commit, date, command) to OUT:
    python -m scripts.bench.bench_balancer --out scripts/results/cpu_balancer_<date>   (from the repository's root)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from builder.common.versions import package_versions
from builder.repository.pipeline import make_repo
from builder.serving.nginx import find_nginx
from builder.serving.replicas import ReplicaSet
from client.generators.raw_grpc import RawGrpcSender, serialize_request
from client.stats import percentile
from client.transport.text_client import AsyncTextClient, ClientConfig, ClientError, RequestTimeout

ROOT = Path(__file__).resolve().parents[2]
IDENTITY = """
import os, sys
if os.environ.get("TRITONBUILD_SITE_PACKAGES"):
    sys.path[:0] = os.environ["TRITONBUILD_SITE_PACKAGES"].split(os.pathsep)
import triton_python_backend_utils as pb_utils

class TritonPythonModel:
    def execute(self, requests):
        return [pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(
            "Y", pb_utils.get_input_tensor_by_name(r, "X").as_numpy())]) for r in requests]
"""
IDENTITY_CONFIG = """name: "identity"
backend: "python"
max_batch_size: 8
input { name: "X" data_type: TYPE_FP32 dims: [ 4 ] }
output { name: "Y" data_type: TYPE_FP32 dims: [ 4 ] }
"""
Send = Callable[[], Awaitable[object]]


def identity_repo(folder: Path) -> Path:
    (folder / "identity" / "1").mkdir(parents=True)
    (folder / "identity" / "config.pbtxt").write_text(IDENTITY_CONFIG)
    (folder / "identity" / "1" / "model.py").write_text(IDENTITY)
    return folder


def inputs(model: str) -> dict[str, np.ndarray]:
    if model == "identity":
        return {"X": np.ones((1, 4), dtype=np.float32)}
    return {"TEXT": np.array([[b"The quick brown fox jumps over the lazy dog."]], dtype=object)}


async def sender(url: str, model: str, protocol: str, timeout_s: float = 10.0) -> tuple[Send, Callable]:
    """A function sending one request to `url`, and one closing its connection."""
    config = ClientConfig(url, model, protocol, timeout_s)
    if protocol == "grpc":
        raw = RawGrpcSender(config)
        wire = serialize_request(model, inputs(model))
        return (lambda: raw.send(wire)), raw.close
    client = AsyncTextClient(config)
    prepared = client.prepare_arrays(inputs(model))
    return (lambda: client.infer_inputs(prepared)), client.close


def turns(names: list[str], pairs: int) -> list[str]:
    """Which path each request takes: both in every pair, the order reversed every other pair (AB BA AB ...)."""
    return [name for pair in range(pairs) for name in (names if pair % 2 == 0 else names[::-1])]


async def overhead(direct: str, balanced: str, model: str, protocol: str, pairs: int) -> dict:
    """p50 of each path over `pairs` pairs of sequential requests; the difference is the balancer's cost.

    The paths alternate request by request, in the order AB BA AB ..., so that drift at any time scale on a
    shared machine, and whatever the request before leaves behind (caches, a CPU waking), hit both alike.
    """
    paths = {"direct": await sender(direct, model, protocol), "balancer": await sender(balanced, model, protocol)}
    latencies: dict[str, list[float]] = {name: [] for name in paths}
    for send, _ in paths.values():  # warm both connections
        for _ in range(50):
            await send()
    for name in turns(list(paths), pairs):
        start = time.perf_counter()
        await paths[name][0]()
        latencies[name].append(time.perf_counter() - start)
    for _, close in paths.values():
        await close()
    p50 = {name: percentile(sorted(values), 50) * 1000 for name, values in latencies.items()}
    diffs = [(b - d) * 1000 for b, d in zip(latencies["balancer"], latencies["direct"], strict=True)]
    return {
        "model": model,
        "protocol": protocol,
        "requests_per_path": pairs,
        "direct_p50_ms": p50["direct"],
        "balancer_p50_ms": p50["balancer"],
        "overhead_p50_ms": p50["balancer"] - p50["direct"],
        "overhead_median_of_pairs_ms": statistics.median(diffs),
    }


def median_round(rounds: list[dict]) -> dict:
    """The round whose p50 overhead is the median (the lower middle one of an even count), with every round's."""
    ordered = sorted(rounds, key=lambda r: r["overhead_p50_ms"])
    return {**ordered[(len(ordered) - 1) // 2], "rounds_ms": [r["overhead_p50_ms"] for r in rounds]}


async def killed_replica(replicas: ReplicaSet, protocol: str, seconds: float, concurrency: int) -> dict:
    """Closed loop through the balancer; replica 1 SIGKILLed at a third of `seconds`; every request counted."""
    url = replicas.grpc_url if protocol == "grpc" else replicas.http_url
    counts = {"sent": 0, "failed": 0, "timeouts": 0}
    errors: dict[str, int] = {}
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        send, close = await sender(url, "minilm", protocol)
        while time.perf_counter() < deadline:
            counts["sent"] += 1
            try:
                await send()
            except RequestTimeout:
                counts["timeouts"] += 1
                counts["failed"] += 1
            except ClientError as exc:
                counts["failed"] += 1
                errors[exc.message[:100]] = errors.get(exc.message[:100], 0) + 1
        await close()

    async def kill() -> None:
        await asyncio.sleep(seconds / 3)
        victim = replicas.replicas[1].server
        assert victim is not None and victim.pid is not None
        os.kill(victim.pid, signal.SIGKILL)

    await asyncio.gather(kill(), *(worker() for _ in range(concurrency)))
    return {"protocol": protocol, **counts, "failed_fraction": counts["failed"] / counts["sent"], "errors": errors}


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--pairs", type=int, default=2000, help="requests per path and round (MiniLM: a quarter)")
    parser.add_argument("--kill-seconds", type=float, default=15.0)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3, help="overhead measurements per model and protocol")
    parser.add_argument(
        "--cpu-latency-us", type=int, help="serve --cpu-latency-us of every replica set [default: none]"
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-balancer-"))
    minilm = work / "minilm"
    make_repo("minilm", "feature-extraction", "minilm", "python-onnxruntime", "cpu", minilm, force=False,
              trust_remote_code=False, echo=lambda _: None)  # fmt: skip
    rows = []
    for model, repo, pairs in (("identity", identity_repo(work / "identity"), args.pairs),
                               ("minilm", minilm, max(100, args.pairs // 4))):  # fmt: skip
        with ReplicaSet(repo, 1, cpu_latency_us=args.cpu_latency_us) as one:
            for protocol in ("grpc", "http"):
                direct = one.replicas[0].ports.address(protocol)
                balanced = one.grpc_url if protocol == "grpc" else one.http_url
                rounds = []
                for _ in range(args.rounds):
                    rounds.append(asyncio.run(overhead(direct, balanced, model, protocol, pairs)))
                    print(json.dumps(rounds[-1]), flush=True)
                rows.append(median_round(rounds))
    kills = []
    for protocol in ("grpc", "http"):
        with ReplicaSet(minilm, 2, cpu_latency_us=args.cpu_latency_us) as two:
            kills.append(asyncio.run(killed_replica(two, protocol, args.kill_seconds, args.concurrency)))
            print(json.dumps(kills[-1]), flush=True)
    table = [f"| model | protocol | direct p50 ms | balancer p50 ms | overhead p50 ms (median of {args.rounds} rounds) "
             "| rounds' range ms | median of paired diffs ms |", "|---|---|---:|---:|---:|---|---:|"]  # fmt: skip
    table += [f"| {r['model']} | {r['protocol']} | {r['direct_p50_ms']:.3f} | {r['balancer_p50_ms']:.3f} | "
              f"{r['overhead_p50_ms']:+.3f} | {min(r['rounds_ms']):+.3f} to {max(r['rounds_ms']):+.3f} | "
              f"{r['overhead_median_of_pairs_ms']:+.3f} |" for r in rows]  # fmt: skip
    table += ["", "| killed replica | protocol | requests | failed | timeouts | failed fraction |",
              "|---|---|---:|---:|---:|---:|"]  # fmt: skip
    table += [f"| 1 of 2, at {args.kill_seconds / 3:.0f} s of {args.kill_seconds:.0f} s, c{args.concurrency} | "
              f"{k['protocol']} | {k['sent']} | {k['failed']} | {k['timeouts']} | {100 * k['failed_fraction']:.2f} % |"
              for k in kills]  # fmt: skip
    print("\n".join(table))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                           text=True).stdout.strip()  # fmt: skip
    nginx = subprocess.run([str(find_nginx()), "-v"], capture_output=True, text=True).stderr.strip()
    facts = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": commit.strip() + (" + working tree" if dirty else ""),
        "command": " ".join(["python", *sys.argv]),
        "machine": {"cpu": _cpu(), "cores": os.cpu_count(), "python": platform.python_version()},
        "versions": {**package_versions(), "nginx": nginx},
        "cpu_latency_us": args.cpu_latency_us,
        "overhead": rows,
        "killed_replica": kills,
    }
    (args.out / "results.json").write_text(json.dumps(facts, indent=2) + "\n")
    (args.out / "README.md").write_text(
        "# The balancer of `tritonbuild serve --replicas` on the CPU\n\n"
        f"- command: `{facts['command']}`\n- commit: {facts['commit']}; date: {facts['date']}\n"
        f"- machine: {facts['machine']}\n- versions: {facts['versions']}\n"
        f"- CPU latency limit held (serve --cpu-latency-us): {args.cpu_latency_us}\n\n" + "\n".join(table) + "\n"
    )


if __name__ == "__main__":
    main()
