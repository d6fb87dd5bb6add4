"""Keep idle CPUs awake while serving: a Linux PM QoS CPU-latency request, held as long as a file stays open.

Every request crosses several threads and processes (the frontend, the scheduler, a backend stub, the
client), and each hand-over wakes a thread on an idle CPU. On a virtual machine an idle vCPU halts and the
hypervisor has to wake it, which costs tens of microseconds per hand-over. A limit of 0 µs makes the
kernel poll on idle CPUs instead of halting them: on the 2-core Firecracker VM of CI, a Python-backend
model that does nothing answered in 0.55 ms p50 over gRPC without it and in 0.26 ms with it
(scripts/results/cpu_latency_2026-12-02/). The price is power and the host's CPU time: an idle CPU spins.

The kernel honours the lowest limit any process holds and drops a request when its file is closed, also
when the process dies, so nothing outlives the server. This is what tuned's `latency-performance`
profile does with its `force_latency`.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from types import TracebackType

from builder.common.errors import ServerError

PM_QOS_DEVICE = Path("/dev/cpu_dma_latency")
MAX_LIMIT_US = 2_000_000_000  # the kernel's "no limit" (PM_QOS_CPU_LATENCY_DEFAULT_VALUE)


def current_limit_us(device: Path = PM_QOS_DEVICE) -> int:
    """The limit the kernel applies now: the lowest any process holds, else MAX_LIMIT_US."""
    return struct.unpack("i", device.read_bytes()[:4])[0]


class CpuLatencyHold:
    """A PM QoS request for at most `limit_us` µs of CPU wake-up latency, from `acquire` until `release`."""

    def __init__(self, limit_us: int, device: Path = PM_QOS_DEVICE) -> None:
        if not 0 <= limit_us <= MAX_LIMIT_US:
            raise ServerError(f"a CPU latency limit of {limit_us} µs is outside 0..{MAX_LIMIT_US}")
        self.limit_us = limit_us
        self.device = device
        self._fd: int | None = None

    def acquire(self) -> CpuLatencyHold:
        """Open the PM QoS device and write the limit; refuses clearly where the host cannot take it."""
        if self._fd is not None:
            return self
        try:
            fd = os.open(self.device, os.O_WRONLY | os.O_CLOEXEC)
        except FileNotFoundError as exc:
            raise ServerError(
                f"this host has no {self.device}, through which Linux takes a CPU latency limit",
                hint="leave out --cpu-latency-us (it needs Linux with PM QoS)",
            ) from exc
        except PermissionError as exc:
            raise ServerError(
                f"{self.device} is not writable by this user",
                hint="serve as root, give the serving user write access to it (a udev rule), or leave out "
                "--cpu-latency-us",
            ) from exc
        try:
            os.write(fd, struct.pack("i", self.limit_us))
        except OSError as exc:
            os.close(fd)
            raise ServerError(f"{self.device} refused a limit of {self.limit_us} µs: {exc.strerror}") from exc
        self._fd = fd
        return self

    def release(self) -> None:
        """Close the file: the kernel drops the request."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def __enter__(self) -> CpuLatencyHold:
        return self.acquire()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
