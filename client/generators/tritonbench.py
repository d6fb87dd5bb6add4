"""tritonbench's own load generator: asyncio closed and open loops in this process, measured like perf_analyzer.

Over gRPC each distinct request is serialized once and sent as bytes (client.generators.raw_grpc); over HTTP
through tritonclient's aio client with inputs prepared before the load starts. The server's statistics and
GPU metrics are sampled at every window edge, so the record carries the server's own breakdown.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import numpy as np

from client.generators.base import Generator
from client.generators.load import PointRun, run_point
from client.generators.measure import summarize
from client.generators.raw_grpc import RawGrpcSender, serialize_request
from client.points import MIXED, Point
from client.records import Measured, Settings
from client.targets.target import Target
from client.transport.server_stats import average_gpu, counters, deltas, read_gpu_metrics
from client.transport.text_client import AsyncTextClient, ClientError

T = TypeVar("T")


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run the load on uvloop where it is installed: a faster event loop leaves more CPU to the server."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)


class Tritonbench(Generator):
    """Measures points with tritonbench's asyncio load; requests are built off the timed path."""

    name = "tritonbench"

    def _measure(self, point: Point, target: Target) -> Measured:
        arrays = self.requests.arrays(point, target)
        cpu = time.process_time()  # this process's threads: the event loop and gRPC's own
        run = run_async(self._run(point, arrays))
        return self.measured(point, run, time.process_time() - cpu)

    async def _sample(self, client: AsyncTextClient) -> dict[str, Any]:
        stats = counters(await client.statistics())
        gpu = await asyncio.to_thread(read_gpu_metrics, self.config.metrics_url)
        return {"stats": stats, "gpu": gpu}

    async def _run(self, point: Point, arrays: list[dict[str, np.ndarray]]) -> PointRun:
        config = self.config.client
        async with AsyncTextClient(config) as client:  # statistics, and HTTP requests
            if config.protocol == "grpc":
                sender = RawGrpcSender(config)
                wire = [serialize_request(config.model, a) for a in arrays]

                async def send(index: int) -> None:
                    await sender.send(wire[index % len(wire)])
            else:
                prepared = [client.prepare_arrays(a) for a in arrays]

                async def send(index: int) -> None:
                    await client.infer_inputs(prepared[index % len(prepared)])

            try:
                return await run_point(
                    send, point.load, self.config.measurement, lambda: self._sample(client), self.config.seed
                )
            finally:
                if config.protocol == "grpc":
                    await sender.close()

    def measured(self, point: Point, run: PointRun, cpu_s: float | None = None) -> Measured:
        """What a finished run measured: the last N windows merged, the server's deltas over them.

        `cpu_s`: the process's CPU time over the run, given per request sent.
        """
        m = self.config.measurement
        try:
            summary = summarize(run.windows, m)
        except ValueError:
            raise ClientError(
                f"no request succeeded at batch {point.batch_size}, "
                f"{'the given texts' if point.seq_len == MIXED else f'length {point.seq_len}'}: "
                f"{run.first_error or 'nothing finished in the window'}"
            ) from None
        n = min(m.stable_windows, len(run.windows))
        first, last = run.snapshots[-n - 1], run.snapshots[-1]
        return Measured(
            requests=summary.requests,
            errors=run.failures.errors,
            timeouts=run.failures.timeouts,
            duration_s=summary.duration_s,
            throughput_infer_per_s=summary.throughput_infer_per_s,
            latency=summary.latency,
            stable=run.stable,
            trials=len(run.windows),
            server=deltas(first["stats"], last["stats"]),
            gpu=average_gpu([s["gpu"] for s in run.snapshots[-n:]]),
            settings=Settings(
                url=self.config.client.url,
                window_s=m.window_s,
                window_requests=m.window_requests,
                stability_pct=m.stability_pct,
                stable_windows=m.stable_windows,
                max_trials=m.max_trials,
                warmup_s=m.warmup_s,
                client_cpu_us_per_request=cpu_s / run.sent * 1e6 if cpu_s is not None and run.sent else None,
            ),
        )
