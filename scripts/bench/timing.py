"""How the benchmarks and probes time and observe, shared so that each measures the same way.

- `time_gpu`: the median of CUDA-event timings after a warm-up;
  `time_cpu`: the median of perf_counter timings (for calls that synchronise, such as the engine's Runner);
  `graph_of`: a CUDA graph of a forward at one shape, replayed as a timing target without launch overhead;
  `kernel_table`: the GPU kernels of a forward by time per call, from the profiler.
- `census`: every thread's CPU time on the host over a few seconds, from /proc (busy cores, steal, the top
  threads and processes), taken while a server idles or runs under load.

These lived in scripts/gpu_bench.py and scripts/host_stall_probe.py, which the other scripts put on sys.path to
import them; they moved here unchanged. They stay in scripts/, not in the packages: only scripts use them, and
the results under scripts/results/ were measured with exactly this code. The package's own in-process timing,
client/experiments/study_engine.time_calls, answers another question (every sample, for `tritonbench study`'s
percentiles), so the two are not merged. torch is imported inside the functions that use it: a script may import
this module before torch loads (scripts/probes/host_stall_probe.py sets the pools' sizes first).
"""

from __future__ import annotations

import os
import statistics
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

CLK_TCK = os.sysconf("SC_CLK_TCK")


def time_gpu(fn: object, repeats: int, warmup: int = 10) -> float:
    """Median milliseconds of `fn()` over `repeats` runs, timed with CUDA events."""
    import torch

    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def time_cpu(fn: object, repeats: int) -> float:
    """Median milliseconds on the CPU (perf_counter)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def graph_of(fn: object, ids: torch.Tensor, mask: torch.Tensor, *extra: object) -> object:
    """A CUDA graph of `fn(ids, mask, *extra)` at one shape, returned as a replay function (device time only)."""
    import torch

    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream), torch.inference_mode():
        for _ in range(3):
            fn(ids, mask, *extra)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph), torch.inference_mode():
        fn(ids, mask, *extra)
    return graph.replay


def kernel_table(fn: object, ids: torch.Tensor, mask: torch.Tensor, steps: int = 5, top: int = 15) -> list[dict]:
    """The GPU kernels of `fn(ids, mask)` (run eagerly: the same kernels a graph replays), by time per call."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    with torch.inference_mode():
        for _ in range(3):
            fn(ids, mask)
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for _ in range(steps):
                fn(ids, mask)
            torch.cuda.synchronize()
    kernels = [e for e in prof.key_averages() if e.self_device_time_total > 0]
    kernels.sort(key=lambda e: -e.self_device_time_total)
    rows = [
        {"kernel": e.key[:100], "ms_per_call": e.self_device_time_total / 1000 / steps, "launches": e.count // steps}
        for e in kernels
    ]
    total = sum(r["ms_per_call"] for r in rows)
    return [
        {"kernel": "(all kernels)", "ms_per_call": total, "launches": sum(r["launches"] for r in rows)},
        *rows[:top],
    ]


def read_threads() -> dict[tuple[int, int], tuple[str, str, int]]:
    """(pid, tid) → (thread name, process command, CPU ticks) for every thread on the host."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                command = f.read().replace(b"\0", b" ").decode(errors="replace")[:160]
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/stat") as f:
                    stat = f.read()
                fields = stat[stat.rindex(")") + 2 :].split()
                found[(int(pid), int(tid))] = (
                    stat[stat.index("(") + 1 : stat.rindex(")")],
                    command,
                    int(fields[11]) + int(fields[12]),
                )
        except (OSError, ValueError):
            continue
    return found


def read_cpu() -> list[int]:
    """The aggregate /proc/stat cpu line: user nice system idle iowait irq softirq steal."""
    with open("/proc/stat") as f:
        return [int(v) for v in f.readline().split()[1:9]]


def census(seconds: float, top: int = 15) -> dict:
    """CPU used by every thread on the host over `seconds`: busy cores, steal, the top threads and processes."""
    t0, c0 = read_threads(), read_cpu()
    time.sleep(seconds)
    t1, c1 = read_threads(), read_cpu()
    total = sum(c1) - sum(c0) or 1
    cpu = [b - a for a, b in zip(c0, c1, strict=True)]
    used = {k: (v[0], v[1], v[2] - t0[k][2]) for k, v in t1.items() if k in t0}
    threads = sorted(used.items(), key=lambda kv: -kv[1][2])[:top]
    per_process: dict[int, list] = {}
    for (pid, _), (_, command, ticks) in used.items():
        entry = per_process.setdefault(pid, [command, 0, 0])
        entry[1] += ticks
        entry[2] += 1
    processes = sorted(per_process.items(), key=lambda kv: -kv[1][1])[:top]
    cores = os.cpu_count() or 1
    return {
        "seconds": seconds,
        "busy_cores": round((total - cpu[3] - cpu[4]) / total * cores, 2),
        "steal_pct": round(cpu[7] / total * 100, 2),
        "threads_on_host": len(t1),
        "top_threads": [
            {
                "pid": pid,
                "tid": tid,
                "name": name,
                "cpu_pct": round(ticks / CLK_TCK / seconds * 100, 1),
                "process": cmd[:80],
            }
            for (pid, tid), (name, cmd, ticks) in threads
        ],
        "top_processes": [
            {"pid": pid, "cpu_pct": round(t / CLK_TCK / seconds * 100, 1), "threads": n, "process": cmd[:100]}
            for pid, (cmd, t, n) in processes
        ],
    }
