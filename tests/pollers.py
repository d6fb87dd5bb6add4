"""What the tests of `--idle-poll` look at: the poller processes running on this host, found by their code."""

from __future__ import annotations

import os
import time

from builder.serving.idle_poll import POLLER


def pollers_on_host() -> list[int]:
    """Process ids of every running idle poller (exited ones waiting to be reaped are not counted)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                command = f.read()
            with open(f"/proc/{pid}/stat") as f:
                exited = f.read().rsplit(")", 1)[1].split()[0] == "Z"
        except OSError:
            continue
        if POLLER.encode() in command and not exited:
            found.append(int(pid))
    return found


def no_pollers_within(seconds: float = 5.0) -> bool:
    """Whether every poller has exited within `seconds` (closing their pipes ends them at once)."""
    deadline = time.monotonic() + seconds
    while pollers_on_host() and time.monotonic() < deadline:
        time.sleep(0.05)
    return not pollers_on_host()
