"""How much shared memory each Python-backend stub gets: sized from the host's /dev/shm, not the backend's 1 MiB.

Every request's inputs and every response's outputs pass through its stub's region in /dev/shm. The 2.51
backend starts each region at `shm-default-byte-size` (1 MiB) and grows it in 1 MiB steps; its pages are
allocated when the stub starts (asked for 256 MiB, /dev/shm showed 256 MiB used), so the size is real memory
and a container's small /dev/shm (Docker's default is 64 MB) must still hold every stub's region. Pure
planning here; TritonServer applies it unless the caller sets the size itself.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from builder.repository.modelconfig import parse_config

MIB = 1 << 20
BACKEND_DEFAULT = MIB  # the Python backend's own shm-default-byte-size
REGION_CAP = 64 * MIB  # per stub: above this the measured gain stopped mattering (a request's tensors are KBs)
SHARE = 4  # the regions of one server take at most a quarter of the free /dev/shm
SETTING = "shm-default-byte-size"


def region_bytes(stubs: int, free_bytes: int) -> int:
    """Bytes per stub for `stubs` stubs when /dev/shm has `free_bytes` free: whole MiB, within the cap.

    Never below the backend's default: where /dev/shm is too small for more, the backend's own size stays.
    """
    if stubs < 1:
        return BACKEND_DEFAULT
    share = free_bytes // (SHARE * stubs) // MIB * MIB
    return max(BACKEND_DEFAULT, min(REGION_CAP, share))


def python_stubs(repo: Path, models: Iterable[str]) -> int:
    """How many stub processes the Python-backend models among `models` start (one per instance)."""
    count = 0
    for name in models:
        path = repo / name / "config.pbtxt"
        config = parse_config(path.read_text(), str(path))
        if config.backend == "python":
            count += sum(group.count or 1 for group in config.instance_group) or 1
    return count


def shm_free_bytes(path: str = "/dev/shm") -> int:
    """Free bytes of the shared-memory file system (0 when there is none)."""
    try:
        stats = os.statvfs(path)
    except OSError:
        return 0
    return stats.f_bavail * stats.f_frsize


def python_backend_settings(repo: Path, models: Iterable[str], given: tuple[str, ...]) -> tuple[str, ...]:
    """`given` "key=value" Python-backend settings, plus the region size unless `given` sets it or it is the default."""
    if any(setting.startswith(f"{SETTING}=") for setting in given):
        return given
    size = region_bytes(python_stubs(repo, models), shm_free_bytes())
    return given if size == BACKEND_DEFAULT else (*given, f"{SETTING}={size}")
