"""What waking an idle thread costs on this host: as it idles, with a CPU latency limit held (serve --cpu-latency-us),
and with every idle CPU kept busy by a nice-19 poller (serve --idle-poll). Two controls say why the pollers help:
the same with SCHED_IDLE spinners (which the kernel counts as idle CPUs when it places a woken thread), and both
processes pinned to one CPU with nothing else running (a hand-over that needs no other CPU at all).

Two processes pass one byte back and forth through pipes, with a pause after each round trip so that both go
idle, as between requests at concurrency 1; the round trip is two wake-ups. Run from the repository's root:
  python -m scripts.probes.wake_latency_probe OUT.json [ROUND_TRIPS]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from builder.serving.cpu_latency import CpuLatencyHold, current_limit_us
from builder.serving.idle_poll import IdlePoll

SCHED_IDLE_SPINNER = (
    "import os, sys\nos.sched_setaffinity(0, {int(sys.argv[1])})\n"
    "os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))\nwhile True: pass"
)


def round_trips(count: int, pause_s: float = 0.0005, cpu: int | None = None) -> dict[str, float]:
    """p50 and p90 of `count` pipe round trips to a child process, µs; both on `cpu` if one is given."""
    ping_r, ping_w = os.pipe()
    pong_r, pong_w = os.pipe()
    allowed = os.sched_getaffinity(0)
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    child = os.fork()
    if child == 0:
        while (byte := os.read(ping_r, 1)) != b"q":
            os.write(pong_w, byte)
        os._exit(0)
    times = []
    for _ in range(count):
        start = time.perf_counter_ns()
        os.write(ping_w, b"x")
        os.read(pong_r, 1)
        times.append((time.perf_counter_ns() - start) / 1000)
        time.sleep(pause_s)
    os.write(ping_w, b"q")
    os.waitpid(child, 0)
    os.sched_setaffinity(0, allowed)
    for fd in (ping_r, ping_w, pong_r, pong_w):
        os.close(fd)
    times.sort()
    return {"p50_us": times[count // 2], "p90_us": times[count * 9 // 10]}


def main() -> None:
    out, count = Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 5000
    idle = Path("/sys/devices/system/cpu/cpuidle/current_driver")
    result = {
        "cpus": os.cpu_count(),
        "cpuidle_driver": idle.read_text().strip() if idle.exists() else None,
        "kernel": os.uname().release,
        "limit_before_us": current_limit_us(),
        "host": round_trips(count),
    }
    with CpuLatencyHold(0):
        result["cpu latency 0 us"] = round_trips(count)
    with IdlePoll():
        result["idle poll"] = round_trips(count)
    spinners = [
        subprocess.Popen([sys.executable, "-S", "-c", SCHED_IDLE_SPINNER, str(cpu)]) for cpu in os.sched_getaffinity(0)
    ]
    time.sleep(0.2)
    result["SCHED_IDLE spinners"] = round_trips(count)
    for spinner in spinners:
        spinner.kill()
        spinner.wait()
    result["both on one CPU"] = round_trips(count, cpu=min(os.sched_getaffinity(0)))
    result["host again"] = round_trips(count)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
