"""The idle pollers of `serve --idle-poll`: real processes on this host's CPUs, paused by real load."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from builder.common.errors import ServerError
from builder.serving.idle_poll import NICE, RECHECK_S, IdlePoll


def state(pid: int) -> str:
    """A process's scheduler state letter (R running, S sleeping, Z exited), or "gone"."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "gone"


def eventually(condition: Callable[[], bool], within_s: float = 5.0) -> bool:
    """Whether `condition` holds within `within_s` (the monitor looks ten times a second)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def busy_everywhere() -> list[subprocess.Popen[bytes]]:
    """One normal-priority busy process per CPU: load that the pollers must make way for."""
    return [subprocess.Popen([sys.executable, "-S", "-c", "while True: pass"]) for _ in os.sched_getaffinity(0)]


def test_one_poller_per_cpu_spins_pinned_at_nice_19_and_none_is_left_after_release():
    with IdlePoll() as polls:
        pids = polls.pids
        assert len(pids) == len(os.sched_getaffinity(0))
        for cpu, pid in zip(sorted(os.sched_getaffinity(0)), pids, strict=True):
            assert os.sched_getaffinity(pid) == {cpu}
            assert os.getpriority(os.PRIO_PROCESS, pid) == NICE
        assert eventually(lambda: all(state(pid) == "R" for pid in pids))
        polls.acquire()  # a second acquire starts no second set
        assert polls.pids == pids
    assert all(state(pid) == "gone" for pid in pids)


def test_load_pauses_the_pollers_and_its_end_resumes_them():
    with IdlePoll() as polls:
        load = busy_everywhere()
        try:
            assert eventually(lambda: polls.paused and all(state(pid) == "S" for pid in polls.pids))
            assert polls.pauses >= 1
            time.sleep(RECHECK_S)
            assert polls.paused  # still loaded: no recheck lets them spin again
        finally:
            for process in load:
                process.kill()
                process.wait()
        assert eventually(lambda: not polls.paused and all(state(pid) == "R" for pid in polls.pids))


def test_spinning_pollers_stop_now_and_then_to_measure_the_load_without_them():
    with IdlePoll() as polls:
        assert eventually(lambda: polls.rechecks >= 1, within_s=RECHECK_S + 2)
        assert eventually(lambda: not polls.paused)  # the host is idle: they spin again


def test_pollers_exit_when_the_process_that_holds_them_is_killed():
    holder = subprocess.Popen(
        [sys.executable, "-c", "from builder.serving.idle_poll import IdlePoll\nimport sys\n"
         "print(*IdlePoll().acquire().pids, flush=True); sys.stdin.read()"],  # blocks until killed
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None
        pids = [int(pid) for pid in holder.stdout.readline().split()]
        assert pids and all(state(pid) == "R" for pid in pids)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert eventually(lambda: all(state(pid) in ("Z", "gone") for pid in pids))  # Z: exited, not yet reaped


def test_a_cpu_the_poller_may_not_run_on_is_refused_with_what_to_do_and_nothing_is_left():
    polls = IdlePoll(cpus={min(os.sched_getaffinity(0)), 4095})
    refused = "the idle poller for CPU 4095 exited before it polled .code 1: OSError"
    with pytest.raises(ServerError, match=refused) as error:
        polls.acquire()
    assert "--idle-poll" in error.value.hint
    assert polls.pids == []
