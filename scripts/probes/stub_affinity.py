"""Where the served stubs may run: every CPU, or each stub's main thread kept on a CPU of its own (issue 11).

On the H200 host each step's execute() costs far more per call than the same code on the 2-core CPU machine
(the post step 176 µs for one request against about 30), most of it fixed per call. One suspect is where a
stub wakes: its main thread sleeps between batches and the scheduler may wake it on any of the 16 vCPUs,
whose caches hold another process's data. Pinning each stub's main thread to a CPU of its own, from outside
and while the server runs, lets one server measure both layouts by turns.

Layouts: `float` (every thread of every stub on every CPU: how the server starts) and `main` (each stub's main
thread, the one that runs execute(), on its own CPU, one per physical core first; its other threads float).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

LAYOUTS = ("float", "main")
STUB = b"triton_python_backend_stub"


@dataclass(frozen=True)
class Stub:
    """A backend stub process serving one instance of a model in the repository."""

    pid: int
    model: str  # the model's folder name in the repository


def stubs(repo: Path, proc: Path = Path("/proc")) -> list[Stub]:
    """The stub processes serving models of `repo`, by model name and pid (their command line names model.py)."""
    prefix = str(repo.resolve()).encode() + b"/"
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # gone since it was listed
            continue
        if not args or not args[0].endswith(STUB):
            continue
        for arg in args[1:]:
            if arg.startswith(prefix):
                found.append(Stub(int(entry.name), arg[len(prefix) :].split(b"/")[0].decode()))
                break
    return sorted(found, key=lambda s: (s.model, s.pid))


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


def apply(layout: str, repo: Path) -> dict[str, list[int]]:
    """Set every stub thread's affinity for `layout`; returns each pinned stub's CPU by `model/pid`."""
    found = stubs(repo)
    cpus = cpu_order(os.sched_getaffinity(0))
    allowed = plan(layout, found, cpus)
    for tid, cpu_set in allowed.items():
        try:
            os.sched_setaffinity(tid, cpu_set)
        except ProcessLookupError:  # a thread that ended since it was listed
            continue
    return {f"{s.model}/{s.pid}": sorted(allowed[s.pid]) for s in found if len(allowed.get(s.pid, ())) == 1}
