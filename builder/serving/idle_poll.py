"""Keep idle CPUs from halting while a server runs at low load: one lowest-priority busy process per CPU.

Where the guest kernel has no cpuidle driver (`/sys/devices/system/cpu/cpuidle/current_driver` reads
`none`, as on the lent H200 VMs), an idle vCPU executes HLT whatever PM QoS limit is held (cpu_latency.py),
and every hand-over between the server's threads and its stubs pays the hypervisor's wake-up: a pipe round
trip between two idle processes took 35–45 µs there, and 6–11 µs with these pollers running. Each poller
is a process at nice 19 that spins on one CPU, so no CPU halts; a woken server thread takes the CPU from it.
This is `idle=poll` done from user space. On an H200 it took the 3-step ensemble's batch-1 p50 from
2.68–2.75 ms to 1.63–1.74 ms (scripts/results/h200_2026-12-02/idle_poll_ab_1750/).

Under load they cost more than they save: with pollers spinning throughout, the ensemble at concurrency 64
lost 29 % on an H200, and in another run the pollers, once spinning under load, kept 73–90 % of every CPU.
Nice 19 alone does not keep them out of the server's way. So a monitor thread watches how busy the CPUs are
with everything else (/proc/stat without the nice time, which is the pollers'): above PAUSE_ABOVE of all
CPU time the pollers block, until the load falls below RESUME_BELOW. Spinning pollers hide the load they
take from others, so they also stop for one interval every RECHECK_S, and the load is measured without them.

Nothing spins while they are paused. SCHED_IDLE spinners in their place under load (the scheduler counts a
CPU that runs only SCHED_IDLE tasks as idle and preempts them at once) were tried and cost more than they
gave: on an H200 the tokenizer step's compute at concurrency 64 rose from 1.3–1.7 to 2.1–3.1 ms per
execution and the ensemble fell to 6,092 and 6,992 texts/s, against 8,376 with the pollers paused and
6,989–7,477 without pollers (scripts/results/h200_2026-12-02/mps_idle_2144/).

Each poller is driven through its stdin and exits when that pipe closes, however the server's process
ended, so none outlives it.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from types import TracebackType

from builder.common.errors import ServerError

# The lowest priority of the normal class. Not SCHED_IDLE: with such pollers a pipe round trip took 51 µs
# instead of 6 on CI's VM (kernel 6.18), and 15.9 against 6.2 µs on an H200 VM.
NICE = 19
PAUSE_ABOVE = 1 / 3  # share of all CPU time busy with other work at which the pollers stop
RESUME_BELOW = 1 / 4  # ... and below which they spin again
INTERVAL_S = 0.1  # how often the monitor looks
RECHECK_S = 2.0  # how often spinning pollers stop for one interval, to measure the load without them
BUSY_FIELDS = (0, 2, 5, 6)  # /proc/stat's user, system, irq, softirq: not nice, idle, iowait or steal

# Runs in each poller: pin, lower the priority, say so, then spin, looking at stdin every few milliseconds:
# b"p" blocks it until b"r"; the end of the pipe (the parent is gone, or released it) ends it.
POLLER = """
import os, sys
os.sched_setaffinity(0, {int(sys.argv[1])})
os.nice(NICE)
print("polling", flush=True)
os.set_blocking(0, False)
while True:
    for _ in range(100_000):
        pass
    try:
        command = os.read(0, 1)
    except BlockingIOError:
        continue
    if command != b"p":
        break
    os.set_blocking(0, True)
    if os.read(0, 1) != b"r":
        break
    os.set_blocking(0, False)
""".replace("NICE", str(NICE))


def busy_ticks() -> tuple[int, int]:
    """(ticks busy with work other than nice processes, all ticks) of every CPU, from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:9]]
    return sum(values[i] for i in BUSY_FIELDS), sum(values)


class IdlePoll:
    """One spinning process per CPU this process may run on (or per CPU in `cpus`), from `acquire` to `release`.

    The pollers spin only while the CPUs are not busy with other work (the module's docstring says why).
    """

    def __init__(self, cpus: set[int] | None = None) -> None:
        self.cpus = sorted(cpus if cpus is not None else os.sched_getaffinity(0))
        self._pollers: list[subprocess.Popen[bytes]] = []
        self._stop = threading.Event()
        self._monitor: threading.Thread | None = None
        self.paused = False
        self.pauses = 0  # how often load stopped them: reported by the benchmarks
        self.rechecks = 0  # how often they stopped to measure the load without them (RECHECK_S)

    @property
    def pids(self) -> list[int]:
        """The pollers' process ids."""
        return [p.pid for p in self._pollers]

    def acquire(self) -> IdlePoll:
        """Start the pollers, wait until each is pinned and lowered, then watch the load; refuses clearly."""
        if self._pollers:
            return self
        command = [sys.executable, "-S", "-c", POLLER]
        try:
            for cpu in self.cpus:
                self._pollers.append(
                    subprocess.Popen(
                        [*command, str(cpu)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
                    )
                )
            for cpu, poller in zip(self.cpus, self._pollers, strict=True):
                assert poller.stdout is not None and poller.stderr is not None
                if poller.stdout.readline() != b"polling\n":
                    code = poller.wait()
                    why = (poller.stderr.read().decode(errors="replace").strip().splitlines() or ["no message"])[-1]
                    raise ServerError(
                        f"the idle poller for CPU {cpu} exited before it polled (code {code}: {why})",
                        hint="leave out --idle-poll, or check that this user may pin processes to that CPU",
                    )
        except BaseException:
            self.release()
            raise
        self._stop.clear()
        self._monitor = threading.Thread(target=self._watch, name="tritonbuild-idle-poll", daemon=True)
        self._monitor.start()
        return self

    def _send(self, command: bytes) -> None:
        for poller in self._pollers:
            assert poller.stdin is not None
            with contextlib.suppress(BrokenPipeError):
                poller.stdin.write(command)
                poller.stdin.flush()

    def _watch(self) -> None:
        """Pause the pollers while other work keeps the CPUs busy, resume them when it stops.

        While they spin, other work gets less CPU than it would, so a share measured then reads low: every
        RECHECK_S the pollers stop for one interval and the load is measured without them.
        """
        before, since = busy_ticks(), time.monotonic()
        while not self._stop.wait(INTERVAL_S):
            now = busy_ticks()
            share = (now[0] - before[0]) / max(1, now[1] - before[1])
            before = now
            if self.paused:
                if share < RESUME_BELOW:
                    self._send(b"r")
                    self.paused, since = False, time.monotonic()
            elif share > PAUSE_ABOVE:
                self._send(b"p")
                self.paused, self.pauses = True, self.pauses + 1
            elif time.monotonic() - since >= RECHECK_S:
                self._send(b"p")
                self.paused, self.rechecks = True, self.rechecks + 1

    def release(self) -> None:
        """Stop the monitor, then every poller (closing its pipe ends it), and reap them."""
        self._stop.set()
        if self._monitor is not None:
            self._monitor.join()
            self._monitor = None
        pollers, self._pollers = self._pollers, []
        for poller in pollers:
            for pipe in (poller.stdin, poller.stdout, poller.stderr):
                if pipe is not None:
                    with contextlib.suppress(BrokenPipeError):
                        pipe.close()
        deadline = time.monotonic() + 5
        for poller in pollers:
            try:
                poller.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                poller.kill()
                poller.wait()
        self.paused = False

    def __enter__(self) -> IdlePoll:
        return self.acquire()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
