"""The Python backend's stub processes of a running tritonserver, read from /proc.

The 2.51 backend starts one `triton_python_backend_stub` per model instance, as a child of the server, with
the model file as its first argument (`REPO/MODEL/VERSION/model.py`) and the instance name as its eighth.
When a stub dies the server neither notices nor restarts it: every request to that instance fails while the
model's ready endpoint stays 200. Watching the processes is how `TritonServer` notices (supervisor.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

STUB = "triton_python_backend_stub"
_PROC = Path("/proc")


@dataclass(frozen=True)
class Stub:
    """One stub process: which model and instance it runs."""

    pid: int
    model: str
    instance: str

    def alive(self) -> bool:
        """True while the stub runs."""
        return alive(self.pid)

    def rss_bytes(self) -> int:
        """Resident memory of the process (0 once it is gone)."""
        try:
            for line in (_PROC / str(self.pid) / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0


def alive(pid: int) -> bool:
    """True while process `pid` exists and is neither a zombie nor dead (killed, not yet reaped)."""
    return _state(pid) not in ("", "Z", "X")


def _state(pid: int) -> str:
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return ""
    return stat.rpartition(")")[2].split()[0]  # the name in parentheses may hold spaces


def _parent(pid: int) -> int:
    try:
        return int((_PROC / str(pid) / "stat").read_text().rpartition(")")[2].split()[1])
    except (OSError, ValueError, IndexError):
        return -1


def _candidates(server_pid: int) -> list[Path]:
    """The server's children from /proc/PID/task/*/children; every process where the kernel lacks that file.

    The supervisor asks twice a second, often in the load generator's process: reading a few children
    instead of every process's cmdline keeps that off the measurement.
    """
    children: list[Path] = []
    tasks = list((_PROC / str(server_pid) / "task").glob("*/children"))
    for task in tasks:
        try:
            children += [_PROC / pid for pid in task.read_text().split()]
        except OSError:
            continue
    if tasks:
        return children
    return [entry for entry in _PROC.iterdir() if entry.name.isdigit()]


def stubs_of(server_pid: int, repo: Path) -> list[Stub]:
    """The live stubs that the server `server_pid` started for models of `repo`, by pid."""
    found = []
    for entry in _candidates(server_pid):
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if len(argv) < 9 or not argv[0].endswith(STUB.encode()) or _parent(int(entry.name)) != server_pid:
            continue
        model_file = Path(argv[1].decode(errors="replace"))
        if model_file.parent.parent.parent != repo:
            continue
        stub = Stub(int(entry.name), model_file.parent.parent.name, argv[8].decode(errors="replace"))
        if stub.alive():
            found.append(stub)
    return sorted(found, key=lambda s: s.pid)
