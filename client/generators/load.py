"""tritonbench's load: closed-loop concurrency or an open-loop request rate, and the windowed measurement of a point."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from client.generators.measure import (
    Completion,
    Failures,
    MeasurementConfig,
    Window,
    failures,
    is_stable,
    next_gap,
    window_of,
)
from client.points import Load
from client.transport.text_client import ClientError, RequestTimeout

# Errors that end a point: the server is gone or is unloading the model (a shutdown in progress).
_SERVER_GONE = ("cannot reach", "has no available versions", "unknown model")
Send = Callable[[int], Awaitable[Any]]  # sends request number i


@dataclass(frozen=True)
class BlockingSend:
    """Sends request number i and blocks its thread until answered: a closed loop runs one thread per slot."""

    send: Callable[[int], Any]


Sample = Callable[[], Awaitable[dict[str, Any]]]  # snapshots the server's counters


@dataclass
class Recorder:
    """Completions of one point, plus the first fatal error (the server is gone)."""

    completions: list[Completion] = field(default_factory=list)
    fatal: ClientError | None = None
    first_error: str = ""
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def timed(self, send: Send, index: int) -> None:
        """Send one request and record its outcome."""
        sent = time.perf_counter()
        try:
            await send(index)
            ok, timed_out = True, False
        except ClientError as exc:
            ok, timed_out = False, isinstance(exc, RequestTimeout)
            self.first_error = self.first_error or exc.message
            if self.fatal is None and any(sign in exc.message for sign in _SERVER_GONE):
                self.fatal = exc
                self.stop.set()
        self.completions.append(Completion(sent, time.perf_counter(), ok, timed_out))

    def timed_blocking(self, send: Callable[[int], Any], index: int, loop: asyncio.AbstractEventLoop) -> None:
        """`timed` for a send that blocks, from a worker thread (the stop event is the loop's to set)."""
        sent = time.perf_counter()
        try:
            send(index)
            ok, timed_out = True, False
        except ClientError as exc:
            ok, timed_out = False, isinstance(exc, RequestTimeout)
            self.first_error = self.first_error or exc.message
            if self.fatal is None and any(sign in exc.message for sign in _SERVER_GONE):
                self.fatal = exc
                loop.call_soon_threadsafe(self.stop.set)
        self.completions.append(Completion(sent, time.perf_counter(), ok, timed_out))  # atomic under the GIL

    def count_since(self, start: float) -> int:
        """Completions that finished after `start`."""
        return sum(1 for c in reversed(self.completions) if c.done >= start) if self.completions else 0


async def closed_loop(send: Send, concurrency: int, recorder: Recorder) -> None:
    """`concurrency` workers, each sending its next request as soon as the last one is answered."""

    async def worker(first: int) -> None:
        index = first
        while not recorder.stop.is_set():
            await recorder.timed(send, index)
            index += concurrency

    await asyncio.gather(*(worker(w) for w in range(concurrency)))


async def threaded_closed_loop(send: BlockingSend, concurrency: int, recorder: Recorder) -> None:
    """`concurrency` threads, each sending its next request as soon as the last one is answered.

    The answer wakes the thread that waits for it, with no hand-over to the event loop: at low concurrency
    that is less latency and CPU per request than grpc.aio's. The threads are exactly `concurrency`.
    """
    loop = asyncio.get_running_loop()

    def worker(first: int) -> None:
        index = first
        while not recorder.stop.is_set():
            recorder.timed_blocking(send.send, index, loop)
            index += concurrency

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="tritonbench-slot") as pool:
        await asyncio.gather(*(loop.run_in_executor(pool, worker, w) for w in range(concurrency)))


async def open_loop(send: Send, rate: float, arrival: str, seed: int, recorder: Recorder) -> None:
    """Send on a schedule regardless of answers (requests overlap as the server slows down)."""
    rng = random.Random(seed)
    start = time.perf_counter()
    due = next_gap(rate, arrival, rng)
    tasks: set[asyncio.Task[None]] = set()
    index = 0
    while not recorder.stop.is_set():
        delay = start + due - time.perf_counter()
        if delay > 0 and await _wait(recorder, delay):
            break
        task = asyncio.create_task(recorder.timed(send, index))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        index += 1
        due += next_gap(rate, arrival, rng)
    await asyncio.gather(*tasks)


async def _end_of_window(recorder: Recorder, start: float, config: MeasurementConfig) -> None:
    if config.window_requests <= 0:
        await _wait(recorder, config.window_s)
        return
    deadline = start + config.window_s * 10  # a count window that never fills still ends
    while recorder.count_since(start) < config.window_requests and time.perf_counter() < deadline:
        await _wait(recorder, 0.01)


async def _wait(recorder: Recorder, seconds: float) -> bool:
    """Sleep up to `seconds`, waking early when the point is stopped; True if it was."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(recorder.stop.wait(), seconds)
    return recorder.stop.is_set()


@dataclass
class PointRun:
    """What measuring one point produced: its windows, server snapshots at each window edge, every failure."""

    windows: list[Window]
    snapshots: list[dict[str, Any]]
    stable: bool
    first_error: str
    failures: Failures  # of the whole run: warm-up, every window, and what was in flight at the end
    sent: int = 0  # requests answered or failed over the whole run, warm-up included


async def run_point(
    send: Send | BlockingSend, load: Load, config: MeasurementConfig, sample: Sample, seed: int = 0
) -> PointRun:
    """Warm up, then measure windows until the last N agree (or max trials); raise if the server vanished.

    `seed` seeds an open loop's arrivals. A BlockingSend runs a closed loop on threads.
    """
    recorder = Recorder()
    if isinstance(send, BlockingSend):
        if load.concurrency is None:
            raise ValueError("a blocking send runs closed loops only")
        traffic = asyncio.create_task(threaded_closed_loop(send, load.concurrency, recorder))
    elif load.concurrency is not None:
        traffic = asyncio.create_task(closed_loop(send, load.concurrency, recorder))
    else:
        assert load.request_rate is not None and load.arrival is not None
        traffic = asyncio.create_task(open_loop(send, load.request_rate, load.arrival, seed, recorder))
    windows: list[Window] = []
    snapshots: list[dict[str, Any]] = []
    try:
        await _wait(recorder, config.warmup_s)
        snapshots.append(await sample())
        start = time.perf_counter()
        for _ in range(config.max_trials):
            await _end_of_window(recorder, start, config)
            if recorder.fatal:
                break
            end = time.perf_counter()
            snapshots.append(await sample())
            windows.append(window_of(recorder.completions, start, end))
            start = end
            if is_stable(windows, config):
                break
    finally:
        recorder.stop.set()
        await traffic
    if recorder.fatal:
        raise recorder.fatal
    stable = is_stable(windows, config)
    return PointRun(
        windows, snapshots, stable, recorder.first_error, failures(recorder.completions), len(recorder.completions)
    )
