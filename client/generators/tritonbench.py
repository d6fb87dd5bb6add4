"""tritonbench's own load generator: asyncio closed and open loops in this process, measured like perf_analyzer.

Each distinct request is serialized once before the load starts and sent as bytes: over gRPC on grpc's
channels (client.generators.raw_grpc), over HTTP on kept-alive connections of its own
(client.generators.raw_http). Requests may be spread over several URLs (round robin). Every server's
statistics (a balancer's replicas: client.transport.replicas) and the GPU metrics are sampled at every
window edge, so the record carries the servers' own breakdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Coroutine
from dataclasses import replace
from typing import Any, TypeVar

import numpy as np

from client.generators.base import Generator
from client.generators.load import BlockingSend, PointRun, Send, run_point
from client.generators.measure import summarize
from client.generators.raw_grpc import BlockingGrpcSender, RawGrpcSender, serialize_request
from client.generators.raw_http import RawHttpSender, serialize_http_request
from client.points import MIXED, Load, Point
from client.records import Measured, Settings
from client.targets.target import Target
from client.transport.server_stats import average_gpu, counters, read_gpu_metrics, replica_deltas
from client.transport.text_client import AsyncTextClient, ClientConfig, ClientError

T = TypeVar("T")
# gRPC closed loops up to this many requests in flight run one thread per slot (BlockingSend); more use asyncio
THREADED_SLOTS = 8


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
    spreads = True

    def _measure(self, point: Point, target: Target) -> Measured:
        arrays = self.requests.arrays(point, target)
        cpu = time.process_time()  # this process's threads: the event loop and gRPC's own
        run = run_async(self._run(point, arrays))
        return self.measured(point, run, time.process_time() - cpu)

    async def _sample(self, clients: dict[str, AsyncTextClient]) -> dict[str, Any]:
        """Every server's counters and the GPU metrics.

        A server that did not answer while another did (a replica killed under load) gets None; the error is
        raised when none answered.
        """
        answers = await asyncio.gather(*(c.statistics() for c in clients.values()), return_exceptions=True)
        errors = [a for a in answers if isinstance(a, BaseException)]
        if errors and (len(errors) == len(answers) or not all(isinstance(e, ClientError) for e in errors)):
            raise errors[0]
        stats = {
            url: None if isinstance(a, BaseException) else counters(a) for url, a in zip(clients, answers, strict=True)
        }
        gpu = await asyncio.to_thread(read_gpu_metrics, self.config.metrics_url)
        return {"stats": stats, "gpu": gpu}

    async def _run(self, point: Point, arrays: list[dict[str, np.ndarray]]) -> PointRun:
        config, servers = self.config.client, self.config.servers
        async with contextlib.AsyncExitStack() as stack:
            stats = {url: await stack.enter_async_context(_client(config, url)) for url in servers.stats}
            send = await _sender(config, servers.load, arrays, stack, point.load)
            return await run_point(
                send, point.load, self.config.measurement, lambda: self._sample(stats), self.config.seed
            )

    def measured(self, point: Point, run: PointRun, cpu_s: float | None = None) -> Measured:
        """What a finished run measured: the last N windows merged, the servers' deltas over them.

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
        servers = self.config.servers
        total, by_server = replica_deltas(first["stats"], last["stats"])
        return Measured(
            requests=summary.requests,
            errors=run.failures.errors,
            timeouts=run.failures.timeouts,
            duration_s=summary.duration_s,
            throughput_infer_per_s=summary.throughput_infer_per_s,
            latency=summary.latency,
            stable=run.stable,
            trials=len(run.windows),
            server=total,
            gpu=average_gpu([s["gpu"] for s in run.snapshots[-n:]]),
            settings=Settings(
                url=",".join(servers.load),
                window_s=m.window_s,
                window_requests=m.window_requests,
                stability_pct=m.stability_pct,
                stable_windows=m.stable_windows,
                max_trials=m.max_trials,
                warmup_s=m.warmup_s,
                client_cpu_us_per_request=cpu_s / run.sent * 1e6 if cpu_s is not None and run.sent else None,
                stats_urls=servers.stats if servers.stats != servers.load else (),
            ),
            replicas=by_server if servers.several else {},
        )


def _client(config: ClientConfig, url: str) -> AsyncTextClient:
    return AsyncTextClient(replace(config, url=url))


async def _sender(
    config: ClientConfig,
    urls: tuple[str, ...],
    arrays: list[dict[str, np.ndarray]],
    stack: contextlib.AsyncExitStack,
    load: Load,
) -> Send | BlockingSend:
    """Send request i (the i-th of `arrays`, cycling) to URL i mod len(urls); connections close with `stack`.

    Each distinct request is serialized once (over HTTP, as a whole HTTP/1.1 message per URL). A gRPC closed
    loop of at most THREADED_SLOTS requests in flight sends from that many threads on a synchronous channel.
    """
    if config.protocol == "grpc" and load.concurrency is not None and load.concurrency <= THREADED_SLOTS:
        blocking = [BlockingGrpcSender(replace(config, url=url)) for url in urls]
        for blocking_sender in blocking:
            stack.callback(blocking_sender.close)
        wire = [serialize_request(config.model, a) for a in arrays]
        return BlockingSend(lambda index: blocking[index % len(blocking)].send(wire[index % len(wire)]))
    if config.protocol == "grpc":
        senders = [RawGrpcSender(replace(config, url=url)) for url in urls]
        for sender in senders:
            stack.push_async_callback(sender.close)
        wire = [serialize_request(config.model, a) for a in arrays]

        async def send_grpc(index: int) -> None:
            await senders[index % len(senders)].send(wire[index % len(wire)])

        return send_grpc
    http = [RawHttpSender(replace(config, url=url)) for url in urls]
    for http_sender in http:
        stack.push_async_callback(http_sender.close)
    messages = [[serialize_http_request(url, config.model, a) for a in arrays] for url in urls]

    async def send_http(index: int) -> None:
        await http[index % len(http)].send(messages[index % len(http)][index % len(arrays)])

    return send_http
