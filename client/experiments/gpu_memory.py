"""GPU memory per process from NVML (through nvidia-smi), attributed to the Triton models whose stubs hold it.

Triton's metrics give the whole GPU's memory in use; a study serving several variants from one server
wants each variant's share. Every Python-backend instance is a stub process whose command line names
its model folder, so NVML's per-process figures can be summed per model.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path

QUERY = ["--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"]


def parse_compute_apps(text: str) -> dict[int, float]:
    """nvidia-smi's `pid, used_memory` CSV (MiB) as {pid: MB}; lines it could not measure are left out."""
    found: dict[int, float] = {}
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 2 and parts[0].isdigit() and parts[1].replace(".", "", 1).isdigit():
            found[int(parts[0])] = found.get(int(parts[0]), 0.0) + float(parts[1]) * 1.048576  # MiB → MB
    return found


def compute_apps() -> dict[int, float]:
    """GPU memory of every process using a GPU here, by pid; empty without nvidia-smi or a GPU."""
    binary = shutil.which("nvidia-smi")
    if binary is None:
        return {}
    try:
        result = subprocess.run([binary, *QUERY], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    return parse_compute_apps(result.stdout) if result.returncode == 0 else {}


def command_line(pid: int) -> str:
    """A process's command line, or "" once it has gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def model_gpu_mb(
    model_dir: Path, apps: Mapping[int, float], cmdline: Callable[[int], str] = command_line
) -> float | None:
    """The GPU memory of the stub processes serving the model in `model_dir`; None when none holds any."""
    needle = f"{model_dir.resolve()}/"
    held = [mb for pid, mb in apps.items() if needle in cmdline(pid)]
    return sum(held) if held else None
