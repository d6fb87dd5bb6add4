"""A server's process ends with the thread that started it, and no Python runs in the child before exec."""

from __future__ import annotations

import signal
import subprocess
import threading
import time

from builder.serving.processes import with_death_signal


def test_a_child_gets_sigterm_when_the_thread_that_started_it_ends():
    started: list[subprocess.Popen[bytes]] = []
    command, preexec = with_death_signal(["sleep", "60"])
    assert preexec is None and command[-2:] == ["sleep", "60"]  # setpriv is on this machine: nothing before exec

    def start_then_end() -> None:  # a starting thread lives on (TritonServer's callers, ReplicaSet's workers)
        started.append(subprocess.Popen(command, preexec_fn=preexec))
        time.sleep(1.0)  # setpriv arms the signal after exec: a thread gone before that leaves nothing to fire

    thread = threading.Thread(target=start_then_end)
    thread.start()
    thread.join()
    (child,) = started
    deadline = time.monotonic() + 10
    while child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert child.returncode == -signal.SIGTERM
