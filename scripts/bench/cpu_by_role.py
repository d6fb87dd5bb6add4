"""CPU time by role while a load point runs: tritonserver itself, each model's stubs, the load generator, the host.

The census (scripts/bench/timing.py) names the busiest threads; this adds them up by role and divides by the
requests served, so that servers, commits and hosts compare per request: at c64 on the H100 of 2026-12-07, for
instance, tritonserver's own threads used 3.1 cores and no thread more than 0.77 (`h100_2026-12-07/full_2112/`).
Ticks are /proc's utime + stime of every thread of a process (1/CLK_TCK s each).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from builder.serving.stubs import stubs_of
from scripts.bench.timing import CLK_TCK, read_cpu

CLIENT = "perf_analyzer"
NICE, IDLE, IOWAIT = 1, 3, 4  # fields of /proc/stat's cpu line (read_cpu)


def process_ticks(pid: int) -> int:
    """CPU ticks (user + system, every thread) process `pid` has used; 0 once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    fields = stat.rpartition(")")[2].split()  # the name in parentheses may hold spaces
    return int(fields[11]) + int(fields[12])


def clients() -> list[int]:
    """The pids of the running load generators (perf_analyzer)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == CLIENT:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def roles(server_pid: int, repo: Path) -> dict[str, list[int]]:
    """Role → pids: "server", each served model's name (its stubs), "client" (perf_analyzer)."""
    found: dict[str, list[int]] = {"server": [server_pid]}
    for stub in stubs_of(server_pid, repo):
        found.setdefault(stub.model, []).append(stub.pid)
    found["client"] = clients()
    return found


@dataclass(frozen=True)
class Snapshot:
    """Each role's processes and their ticks, and the host's /proc/stat cpu line, at one moment."""

    ticks: dict[str, dict[int, int]]
    host: list[int]

    @classmethod
    def take(cls, server_pid: int, repo: Path) -> Snapshot:
        """Read every role's processes now."""
        ticks = {role: {pid: process_ticks(pid) for pid in pids} for role, pids in roles(server_pid, repo).items()}
        return cls(ticks, read_cpu())


def per_request(before: Snapshot, after: Snapshot, requests: float) -> dict[str, float]:
    """µs of CPU per request of each role between two snapshots, and the host's busy and nice cores.

    Only processes present in both count (a stub restarted in between is left out), and a role without any is
    left out (no perf_analyzer when tritonbench loads from its own process). `requests`: how many the point
    served between the snapshots.
    """
    result: dict[str, float] = {}
    for role, pids in after.ticks.items():
        earlier = before.ticks.get(role, {})
        both = [pid for pid in pids if pid in earlier]
        if both:
            used = sum(pids[pid] - earlier[pid] for pid in both)
            result[f"{role}_us"] = used / CLK_TCK / max(requests, 1) * 1e6
    delta = [b - a for a, b in zip(before.host, after.host, strict=True)]
    total = sum(delta) or 1
    cores = os.cpu_count() or 1  # /proc/stat's first line sums every CPU of the host
    result["host_busy_cores"] = (total - delta[IDLE] - delta[IOWAIT] - delta[NICE]) / total * cores
    result["host_nice_cores"] = delta[NICE] / total * cores  # the idle pollers (builder/serving/idle_poll.py)
    return result
