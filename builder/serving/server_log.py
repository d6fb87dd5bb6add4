"""What of a tritonserver log to show when the server fails: its error lines and its last lines, minus the noise.

The reason a server died is often in its last lines (a crash's stack, the shutdown) and not on an `E` line;
the reason a model failed to load is on an `E` line far above the shutdown. On a host without a GPU the
bundled server also logs CUDA, NVML and DCGM complaints that mean nothing there: they are left out.
"""

from __future__ import annotations

import re
from pathlib import Path

# Lines the bundled 2.51 server writes on every start (and at some requests) on a machine without a GPU.
HARMLESS_WITHOUT_GPU = (
    "CUDA driver version is insufficient",
    "CudaDriverHelper has not been initialized",
    "Failed to initialize NVML",
    "DCGM unable to start",
    "failed to allocate pinned system memory",
    "Unable to allocate pinned system memory",
)
_ERROR = re.compile(r"^E\d{4} ")
_TABLE = re.compile(r"^[|+]")  # the model and settings tables: long, and never the reason


def has_gpu() -> bool:
    """Whether an NVIDIA driver is present (its control device); without one the CUDA lines are noise."""
    return Path("/dev/nvidiactl").exists()


def meaningful(lines: list[str], gpu: bool) -> list[str]:
    """The lines worth showing: no blank or table lines, and on a host without a GPU none of the CUDA noise."""
    kept = [line for line in lines if line.strip() and not _TABLE.match(line)]
    if gpu:
        return kept
    return [line for line in kept if not any(noise in line for noise in HARMLESS_WITHOUT_GPU)]


def log_tail(text: str, gpu: bool, last: int = 12, errors: int = 5) -> str:
    """The last `last` meaningful lines, after up to `errors` error lines from above them; each cut to 400 chars."""
    lines = meaningful(text.splitlines(), gpu)
    tail = lines[-last:]
    above = [line for line in lines[: len(lines) - len(tail)] if _ERROR.match(line)][-errors:]
    shown = [*above, "...", *tail] if above else tail
    return "\n".join(line[:400] for line in shown) or "(the log is empty)"
