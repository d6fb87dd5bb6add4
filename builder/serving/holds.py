"""What a server or replica set holds while it runs, besides its processes: each acquired at start, released at stop.

`--cpu-latency-us` (cpu_latency.py) and `--idle-poll` (idle_poll.py) keep idle CPUs from halting; `--mps`
(mps.py) shares the GPU between the server's processes. Each hold's `acquire` and `release` are idempotent.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from builder.serving.cpu_latency import CpuLatencyHold
from builder.serving.idle_poll import IdlePoll
from builder.serving.mps import Mps

Hold = CpuLatencyHold | IdlePoll | Mps


def server_holds(cpu_latency_us: int | None, idle_poll: bool, mps: bool = False) -> list[Hold]:
    """The holds for `--cpu-latency-us`, `--idle-poll` and `--mps` (none: nothing held)."""
    holds: list[Hold] = []
    if cpu_latency_us is not None:
        holds.append(CpuLatencyHold(cpu_latency_us))
    if idle_poll:
        holds.append(IdlePoll())
    if mps:
        holds.append(Mps())
    return holds


def holds_env(holds: list[Hold]) -> dict[str, str]:
    """What the server's environment needs from its holds (MPS's folders)."""
    env: dict[str, str] = {}
    for hold in holds:
        if isinstance(hold, Mps):
            env |= hold.env
    return env


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
