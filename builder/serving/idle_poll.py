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
Nice 19 alone does not keep them out of the server's way: the scheduler counts a CPU that runs one as busy,
so it does not place a woken thread there. So a monitor thread watches how busy the CPUs are with everything
else (/proc/stat without the nice time, which is the pollers'): above PAUSE_ABOVE of all CPU time the nice-19
pollers block, until the load falls below RESUME_BELOW. Spinning pollers hide the load they take from others,
so they also stop for one interval every RECHECK_S, and the load is measured without them.

While they are blocked under load, a second set takes over (`under_load="idle-class"`): one SCHED_IDLE
spinner per CPU. The scheduler treats a CPU that runs only SCHED_IDLE tasks as idle, places woken threads on
it and preempts the spinner at once, so these never stand in the server's way, and still no CPU halts. They
wake less quickly than the nice-19 ones (a pipe round trip of 15.9 against 6.2 µs on an H200, 34.7 µs as
the host idles), which is why they do not serve at low load too.

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

UNDER_LOAD = ("idle-class", "none")  # what spins while the nice-19 pollers are blocked for load

# Runs in each poller: pin, lower the priority (argv[2] "idle": SCHED_IDLE as well), say so, block until b"r"
# if argv[3] says "wait", then spin, looking at stdin every few milliseconds: b"p" blocks it until b"r"; the
# end of the pipe (the parent is gone, or released it) ends it. Nice 19 either way: /proc/stat counts the
# time of every poller as nice, which the monitor leaves out of the load.
POLLER = """
import os, sys
os.sched_setaffinity(0, {int(sys.argv[1])})
os.nice(NICE)
if sys.argv[2] == "idle":
    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
print("polling", flush=True)
if sys.argv[3] == "wait" and os.read(0, 1) != b"r":
    sys.exit(0)
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

    The nice-19 pollers spin only while the CPUs are not busy with other work; meanwhile, with `under_load`
    "idle-class", SCHED_IDLE ones spin instead (the module's docstring says why).
    """

    def __init__(self, cpus: set[int] | None = None, under_load: str = "idle-class") -> None:
        if under_load not in UNDER_LOAD:
            raise ServerError(f"idle poll under load: {under_load!r} is not one of {', '.join(UNDER_LOAD)}")
        self.cpus = sorted(cpus if cpus is not None else os.sched_getaffinity(0))
        self.under_load = under_load
        self._pollers: list[subprocess.Popen[bytes]] = []
        self._idlers: list[subprocess.Popen[bytes]] = []  # the SCHED_IDLE set
        self._stop = threading.Event()
        self._monitor: threading.Thread | None = None
        self.paused = False  # the nice-19 pollers are blocked (and the SCHED_IDLE ones, if any, spin)
        self.pauses = 0  # how often load stopped them: reported by the benchmarks
        self.rechecks = 0  # how often they stopped to measure the load without them (RECHECK_S)

    @property
    def pids(self) -> list[int]:
        """The nice-19 pollers' process ids."""
        return [p.pid for p in self._pollers]

    @property
    def idle_class_pids(self) -> list[int]:
        """The SCHED_IDLE pollers' process ids (none with under_load "none")."""
        return [p.pid for p in self._idlers]

    def _sets(self) -> list[tuple[list[subprocess.Popen[bytes]], str, str]]:
        """(the list it goes in, its class, how it starts) of each set of pollers."""
        sets = [(self._pollers, "nice", "spin")]
        if self.under_load == "idle-class":
            sets.append((self._idlers, "idle", "wait"))
        return sets

    def _start(self, cpu: int, kind: str, start: str) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-S", "-c", POLLER, str(cpu), kind, start]
        return subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def acquire(self) -> IdlePoll:
        """Start the pollers, wait until each is pinned and lowered, then watch the load; refuses clearly."""
        if self._pollers:
            return self
        try:
            started = []
            for group, kind, start in self._sets():
                for cpu in self.cpus:
                    group.append(self._start(cpu, kind, start))
                    started.append((cpu, group[-1]))
            for cpu, poller in started:
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

    @staticmethod
    def _send(pollers: list[subprocess.Popen[bytes]], command: bytes) -> None:
        for poller in pollers:
            assert poller.stdin is not None
            with contextlib.suppress(BrokenPipeError):
                poller.stdin.write(command)
                poller.stdin.flush()

    def _hand_over(self, paused: bool) -> None:
        """Block the nice-19 pollers and start the SCHED_IDLE ones (paused), or the other way round."""
        self._send(self._pollers, b"p" if paused else b"r")
        self._send(self._idlers, b"r" if paused else b"p")
        self.paused = paused

    def _watch(self) -> None:
        """Pause the nice-19 pollers while other work keeps the CPUs busy, resume them when it stops.

        While they spin, other work gets less CPU than it would, so a share measured then reads low: every
        RECHECK_S they stop for one interval and the load is measured without them. SCHED_IDLE pollers take
        no CPU time that other work wants, so the share they spin beside reads true.
        """
        before, since = busy_ticks(), time.monotonic()
        while not self._stop.wait(INTERVAL_S):
            now = busy_ticks()
            share = (now[0] - before[0]) / max(1, now[1] - before[1])
            before = now
            if self.paused:
                if share < RESUME_BELOW:
                    self._hand_over(False)
                    since = time.monotonic()
            elif share > PAUSE_ABOVE:
                self._hand_over(True)
                self.pauses += 1
            elif time.monotonic() - since >= RECHECK_S:
                self._hand_over(True)
                self.rechecks += 1

    def release(self) -> None:
        """Stop the monitor, then every poller (closing its pipe ends it), and reap them."""
        self._stop.set()
        if self._monitor is not None:
            self._monitor.join()
            self._monitor = None
        pollers, self._pollers, self._idlers = [*self._pollers, *self._idlers], [], []
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
