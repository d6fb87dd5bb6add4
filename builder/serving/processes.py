"""Child processes that end with the one that serves: the death signal, and stopping a process group."""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
from collections.abc import Callable

# Loaded here, not in the child: a dlopen between fork and exec in a process with other threads (grpc's,
# a load generator's) can find the loader's lock held by a thread that no longer exists, and crash or hang.
_LIBC = ctypes.CDLL("libc.so.6", use_errno=True)
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In a child before exec: PR_SET_PDEATHSIG, so it gets SIGTERM if the Python process that started it dies.

    Linux sends it when the *thread* that started the child ends: start servers from threads that outlive them.
    """
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


_SETPRIV = shutil.which("setpriv")


def with_death_signal(command: list[str]) -> tuple[list[str], Callable[[], None] | None]:
    """`command` made to get SIGTERM when the thread that starts it ends, and the preexec_fn that takes (or None).

    util-linux's setpriv sets the signal and execs the command, so no Python runs in the child between fork
    and exec: with a preexec_fn, CPython runs its after-fork hooks there, which crashed children forked while
    other threads ran (servers started in parallel by ReplicaSet). setpriv arms the signal just after exec, so
    a starting thread must outlive that instant, as every caller's does. Without setpriv, a preexec_fn does it.
    """
    if _SETPRIV:
        return [_SETPRIV, "--pdeathsig", "TERM", "--", *command], None
    return command, die_with_parent


def stop_group(process: subprocess.Popen[bytes], sig: signal.Signals, timeout_s: float) -> None:
    """Send `sig` to a process started with start_new_session, kill it after `timeout_s`, then what is left.

    The process leads its own group; children it leaves behind stay in that group (the 2.51 backend stubs of a
    server killed under load were seen running for minutes), so whatever is left of the group is killed last.
    """
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    with contextlib.suppress(ProcessLookupError):  # nothing left of the group
        os.killpg(process.pid, signal.SIGKILL)
