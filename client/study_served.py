"""Served study points: every variant through one server, measured by tritonbench's sweep machinery.

One repository holds every variant, so one server (the bundled tritonserver, or a running one given
by --url) serves them all; each point is one sweep point (client.sweep.Sweeper) against the variant's
ensemble with texts of exactly the point's length, and also reads the variant's own GPU memory (NVML).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from builder.serving.server import TritonServer
from client.gpu_memory import compute_apps, model_gpu_mb
from client.inputs import find_tokenizer
from client.records import PointRecord
from client.study_config import Served, measurement_of
from client.sweep import Point, SweepConfig, Sweeper, Target, check_point, run_async
from client.text_client import ClientConfig


@dataclass(frozen=True)
class Endpoint:
    """Where the server answers."""

    url: str  # host:port for the configured protocol
    metrics_url: str | None


@contextmanager
def serving(repo: Path, served: Served, url: str | None, metrics_url: str | None, log: Path) -> Iterator[Endpoint]:
    """The running server at `url`, or the bundled one started on `repo` (stopped on the way out)."""
    if url is not None:
        yield Endpoint(url, metrics_url)
        return
    with TritonServer(repo, log_path=log, startup_timeout_s=900) as server:
        address = server.grpc_url if served.protocol == "grpc" else server.http_url
        yield Endpoint(address, server.metrics_url)


class ServedMeasurer:
    """Measures served points against one endpoint, one sweeper (and its texts) per variant."""

    def __init__(self, endpoint: Endpoint, repo: Path, served: Served) -> None:
        self.endpoint, self.repo, self.served = endpoint, repo, served
        self._sweepers: dict[str, tuple[Sweeper, Target]] = {}

    def _sweeper(self, name: str, point: Point) -> tuple[Sweeper, Target]:
        if name not in self._sweepers:
            s = self.served
            config = SweepConfig(
                ClientConfig(self.endpoint.url, name, s.protocol),
                (point.batch_size,),
                (point.seq_len,),
                concurrency=(point.concurrency or 1,),
                measurement=measurement_of(s),
                variant=name.rsplit("_", 1)[-1],
                engine=s.load_generator,
                metrics_url=self.endpoint.metrics_url,
            )
            sweeper = Sweeper(config, find_tokenizer(name, None, self.repo))
            self._sweepers[name] = (sweeper, asyncio.run(sweeper.discover()))
        return self._sweepers[name]

    def measure(self, name: str, batch: int, seq_len: int, concurrency: int) -> PointRecord | None:
        """One point of ensemble `name`; None when perf_analyzer found no stable window (a rerun retries it)."""
        point = Point(batch, seq_len, concurrency)
        sweeper, target = self._sweeper(name, point)
        check_point(point, target, name)
        if self.served.load_generator == "perf_analyzer":
            return sweeper.measure_with_perf_analyzer(point, target)
        record: PointRecord = run_async(sweeper.measure(point, target))
        return record


def variant_gpu_mb(repo: Path, name: str) -> float | None:
    """GPU memory held by the stubs of variant `name`'s model step (NVML), None without a GPU."""
    return model_gpu_mb(repo / f"{name}_model", compute_apps())
