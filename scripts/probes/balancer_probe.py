"""What nginx does per proxied request (issue 17): its CPU time and its system calls, gRPC against HTTP.

One replica of a tiny identity model behind the balancer of `tritonbuild serve --replicas`; per protocol, at
concurrency 1: the p50 overhead over a direct connection (scripts.bench.bench_balancer's alternating requests),
the nginx processes' CPU time per request through it, and `strace -c` of the nginx worker over --traced
requests (system calls per request, by name). Prints JSON lines and writes OUT/balancer_probe.json:
  python -m scripts.probes.balancer_probe --out DIR   (from the repository's root; strace optional)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from builder.serving.replicas import ReplicaSet
from scripts.bench.bench_balancer import identity_repo, overhead, sender

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def nginx_pids(prefix: Path) -> tuple[int, list[int]]:
    """The master's pid (from its pid file) and its workers'."""
    master = int((prefix / "nginx.pid").read_text())
    workers = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2 :].split()[1]) == master:
            workers.append(int(pid))
    return master, workers


def cpu_seconds(pids: list[int]) -> float:
    """User + system time of these processes."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


def syscalls(workers: list[int], url: str, protocol: str, requests: int) -> dict[str, float]:
    """System calls per request of the nginx workers while `requests` sequential requests pass, by name."""
    if not shutil.which("strace"):
        return {}
    with tempfile.NamedTemporaryFile(suffix=".txt") as report:

        async def traced() -> None:
            send, close = await sender(url, "identity", protocol)
            for _ in range(20):
                await send()
            attach = [arg for pid in workers for arg in ("-p", str(pid))]
            tracer = subprocess.Popen(["strace", "-f", "-c", "-o", report.name, *attach], stderr=subprocess.DEVNULL)
            await asyncio.sleep(1.0)  # attached
            for _ in range(requests):
                await send()
            tracer.terminate()
            tracer.wait()
            await close()

        asyncio.run(traced())
        counts: dict[str, float] = {}
        for line in Path(report.name).read_text().splitlines():
            parts = line.split()
            if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] != "total":
                counts[parts[-1]] = round(int(parts[3]) / requests, 2)
        return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--pairs", type=int, default=1800, help="requests per path")
    parser.add_argument("--traced", type=int, default=500, help="requests under strace")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory() as work, ReplicaSet(identity_repo(Path(work) / "identity"), 1) as one:
        master, workers = nginx_pids(one.prefix)
        for protocol in ("grpc", "http"):
            direct = one.replicas[0].ports.address(protocol)
            balanced = one.grpc_url if protocol == "grpc" else one.http_url
            before = cpu_seconds([master, *workers])
            row = asyncio.run(overhead(direct, balanced, "identity", protocol, args.pairs))
            sent = args.pairs + 50  # overhead() warms each path with 50 requests
            row["nginx_cpu_us_per_request"] = (cpu_seconds([master, *workers]) - before) / sent * 1e6
            row["nginx_syscalls_per_request"] = syscalls(workers, balanced, protocol, args.traced)
            rows.append(row)
            print(json.dumps(row), flush=True)
    (args.out / "balancer_probe.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
