"""The closed loop on threads: exactly one thread per slot, every request recorded, stopped with the point."""

from __future__ import annotations

import asyncio
import threading
import time

from client.generators.load import BlockingSend, run_point
from client.generators.measure import MeasurementConfig
from client.points import Load

FAST = MeasurementConfig(window_s=0.2, stability_pct=100, stable_windows=2, max_trials=3, warmup_s=0.1)


async def _nothing() -> dict:
    return {"stats": {}, "gpu": {}}


def test_a_blocking_send_runs_one_thread_per_slot_and_every_request_is_counted():
    threads: set[str] = set()
    in_flight, most = [0], [0]
    lock = threading.Lock()

    def send(index: int) -> None:
        with lock:
            threads.add(threading.current_thread().name)
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        time.sleep(0.005)
        with lock:
            in_flight[0] -= 1

    run = asyncio.run(run_point(BlockingSend(send), Load(concurrency=3), FAST, _nothing))
    assert len(threads) == 3 and all(name.startswith("tritonbench-slot") for name in threads)
    assert most[0] == 3 and in_flight[0] == 0  # three in flight at once, none left running after the point
    measured = sum(len(w.latencies) for w in run.windows)
    assert 0 < measured < run.sent and run.failures.errors == 0  # the warm-up's requests are sent, not measured
