"""Keep idle CPUs out of the hypervisor's halt while serving: one lowest-priority busy process per CPU.

Where the guest kernel has no cpuidle driver (`/sys/devices/system/cpu/cpuidle/current_driver` reads
`none`, as on the lent H200 VMs), an idle vCPU executes HLT whatever PM QoS limit is held (cpu_latency.py),
and waking a thread on it costs the hypervisor's wake-up: about 45 µs per pipe round trip there, against
about 7 µs on CI's VM, whose haltpoll driver polls first. A CPU that is running something never halts, so
each poller is a process at nice 19 that spins on one CPU: a woken server thread preempts it at once (the
kernel favours the woken task over a nice-19 one), and it gets about 1.5 % of a CPU where anything else
wants it. This is `idle=poll` done from user space, and costs what that costs: every idle CPU busy.

Each poller watches its parent and exits when the parent is gone, however it ended, so none outlives the
server.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from types import TracebackType

from builder.common.errors import ServerError
from builder.serving.cpu_latency import CpuLatencyHold

# The lowest priority of the normal class. Not SCHED_IDLE: with such pollers a pipe round trip took 51 µs
# instead of 6 on CI's VM (kernel 6.18), as if the woken thread waited for the poller's slice to end.
NICE = 19

# Runs in each poller: pin, lower the priority, say so on stdout, then spin until the parent is gone.
POLLER = """
import os, sys
parent, cpu = int(sys.argv[1]), int(sys.argv[2])
os.sched_setaffinity(0, {cpu})
os.nice(NICE)
print("polling", flush=True)
while os.getppid() == parent:
    for _ in range(200_000):
        pass
""".replace("NICE", str(NICE))


class IdlePoll:
    """One spinning process per CPU this process may run on (or per CPU in `cpus`), from `acquire` to `release`."""

    def __init__(self, cpus: set[int] | None = None) -> None:
        self.cpus = sorted(cpus if cpus is not None else os.sched_getaffinity(0))
        self._pollers: list[subprocess.Popen[bytes]] = []

    @property
    def pids(self) -> list[int]:
        """The running pollers' process ids."""
        return [p.pid for p in self._pollers]

    def acquire(self) -> IdlePoll:
        """Start the pollers and wait until each is pinned and lowered; refuses clearly if one cannot start."""
        if self._pollers:
            return self
        command = [sys.executable, "-S", "-c", POLLER, str(os.getpid())]
        try:
            for cpu in self.cpus:
                self._pollers.append(
                    subprocess.Popen([*command, str(cpu)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
                )
            for cpu, poller in zip(self.cpus, self._pollers, strict=True):
                assert poller.stdout is not None
                if poller.stdout.readline() != b"polling\n":
                    raise ServerError(
                        f"the idle poller for CPU {cpu} exited before it polled (code {poller.wait()})",
                        hint="leave out --idle-poll, or check that this user may pin processes to that CPU",
                    )
        except BaseException:
            self.release()
            raise
        return self

    def release(self) -> None:
        """Stop every poller and reap it."""
        pollers, self._pollers = self._pollers, []
        for poller in pollers:
            poller.kill()
        deadline = time.monotonic() + 10
        for poller in pollers:
            poller.wait(timeout=max(0.1, deadline - time.monotonic()))
            if poller.stdout is not None:
                poller.stdout.close()

    def __enter__(self) -> IdlePoll:
        return self.acquire()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


Hold = CpuLatencyHold | IdlePoll  # acquire() and release(), each idempotent


def idle_holds(cpu_latency_us: int | None, idle_poll: bool) -> list[Hold]:
    """What a server or replica set holds while it runs, for `--cpu-latency-us` and `--idle-poll` (none: neither)."""
    holds: list[Hold] = []
    if cpu_latency_us is not None:
        holds.append(CpuLatencyHold(cpu_latency_us))
    if idle_poll:
        holds.append(IdlePoll())
    return holds


def acquire_all(holds: list[Hold]) -> None:
    """Acquire each hold in turn; on a refusal, release those already held and raise it."""
    try:
        for hold in holds:
            hold.acquire()
    except BaseException:
        release_all(holds)
        raise


def release_all(holds: list[Hold]) -> None:
    """Release every hold (releasing one not held does nothing)."""
    for hold in reversed(holds):
        hold.release()


@contextlib.contextmanager
def holding(holds: list[Hold]) -> Iterator[None]:
    """Hold them for a block (a benchmark's in-process part, under the setting its server will run with)."""
    acquire_all(holds)
    try:
        yield
    finally:
        release_all(holds)
