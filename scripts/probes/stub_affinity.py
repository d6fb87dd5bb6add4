"""Where the served stubs may run: every CPU, or each stub's main thread kept on a CPU of its own (issue 11).

A served execute() costs 3–6 times the same call in process, most of it fixed per call. One suspect was where a
stub wakes: its main thread sleeps between batches and the scheduler may wake it on any of the host's vCPUs, whose
caches hold another process's data. Pinning each stub's main thread to a CPU of its own, from outside and while the
server runs, lets one server measure both layouts by turns. On an H100 host (scripts/results/h100_2026-12-07/) it
took 2–26 % off a step's execute() at concurrency 1 and moved concurrency 64 less than the host drifted.

Layouts: `float` (every thread of every stub on every CPU: how the server starts) and `main` (each stub's main
thread, the one that runs execute(), on its own CPU, one per physical core first; its other threads float).
"""

from __future__ import annotations

import os
from pathlib import Path

from builder.serving.stubs import Stub, stubs_of

LAYOUTS = ("float", "main")


def cpu_order(cpus: set[int], sys_cpu: Path = Path("/sys/devices/system/cpu")) -> list[int]:
    """`cpus` with one CPU of each physical core first, then their SMT siblings (as the kernel lists them)."""

    def sibling_rank(cpu: int) -> int:
        path = sys_cpu / f"cpu{cpu}" / "topology" / "thread_siblings_list"
        try:
            siblings = parse_cpu_list(path.read_text())
        except OSError:
            return 0
        return sorted(siblings).index(cpu) if cpu in siblings else 0

    return sorted(cpus, key=lambda cpu: (sibling_rank(cpu), cpu))


def parse_cpu_list(text: str) -> set[int]:
    """The CPUs of a kernel CPU list such as `0-3,8,10-11`."""
    cpus: set[int] = set()
    for part in text.strip().split(","):
        if not part:
            continue
        low, _, high = part.partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return cpus


def threads(pid: int, proc: Path = Path("/proc")) -> list[int]:
    """The thread ids of a process (none if it is gone)."""
    try:
        return sorted(int(t.name) for t in (proc / str(pid) / "task").iterdir())
    except OSError:
        return []


def plan(layout: str, found: list[Stub], cpus: list[int]) -> dict[int, set[int]]:
    """Thread id → allowed CPUs for every thread of every stub under `layout`; `cpus` in the order to hand out."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; one of {', '.join(LAYOUTS)}")
    every = set(cpus)
    allowed = {tid: every for stub in found for tid in threads(stub.pid)}
    if layout == "main":
        if len(found) > len(cpus):
            raise ValueError(f"{len(found)} stubs and {len(cpus)} CPUs: not one CPU each")
        for stub, cpu in zip(found, cpus, strict=False):
            allowed[stub.pid] = {cpu}  # the main thread's id is the process id
    return allowed


def apply(layout: str, server_pid: int, repo: Path) -> dict[str, list[int]]:
    """Set the affinity of every thread of the server's stubs for `layout`; returns each pinned stub's CPU.

    The stubs are taken by model name, then pid, so the same layout pins the same model's stubs to the same CPUs.
    """
    found = sorted(stubs_of(server_pid, repo), key=lambda s: (s.model, s.pid))
    cpus = cpu_order(os.sched_getaffinity(0))
    allowed = plan(layout, found, cpus)
    for tid, cpu_set in allowed.items():
        try:
            os.sched_setaffinity(tid, cpu_set)
        except ProcessLookupError:  # a thread that ended since it was listed
            continue
    return {f"{s.model}/{s.pid}": sorted(allowed[s.pid]) for s in found if len(allowed.get(s.pid, ())) == 1}
