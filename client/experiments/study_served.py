"""Served study points: every variant through one server, measured by the configured load generator.

One repository holds every variant, so one server (the bundled tritonserver, or a running one given
by --url) serves them all; each point is one sweep point (client.generators: tritonbench's own or
perf_analyzer) against the variant's ensemble with texts of exactly the point's length, and also reads the
variant's own GPU memory (NVML).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from builder.serving.server import TritonServer
from client.experiments.gpu_memory import compute_apps, model_gpu_mb
from client.experiments.study_config import Served, measurement_of
from client.generators import GENERATORS, Generator
from client.generators.base import GeneratorConfig
from client.points import Load, Point
from client.records import PointRecord
from client.targets.inputs import find_tokenizer
from client.targets.requests import Requests
from client.targets.target import Target, check_point, read_target
from client.transport.text_client import ClientConfig


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
    """Measures served points against one endpoint, one generator (and its requests) per variant."""

    def __init__(self, endpoint: Endpoint, repo: Path, served: Served) -> None:
        self.endpoint, self.repo, self.served = endpoint, repo, served
        self._generators: dict[str, tuple[Generator, Target]] = {}

    def _generator(self, name: str) -> tuple[Generator, Target]:
        if name not in self._generators:
            s = self.served
            config = GeneratorConfig(
                ClientConfig(self.endpoint.url, name, s.protocol),
                measurement_of(s),
                variant=name.rsplit("_", 1)[-1],
                metrics_url=self.endpoint.metrics_url,
            )
            requests = Requests(name, find_tokenizer(name, None, self.repo))
            self._generators[name] = (GENERATORS[s.load_generator](config, requests), read_target(config.client))
        return self._generators[name]

    def measure(self, name: str, batch: int, seq_len: int, concurrency: int) -> PointRecord | None:
        """One point of ensemble `name`; None when the generator found no stable window (a rerun retries it)."""
        point = Point(batch, seq_len, Load(concurrency=concurrency))
        generator, target = self._generator(name)
        check_point(point, target, name)
        return generator.measure(point, target)


def variant_gpu_mb(repo: Path, name: str) -> float | None:
    """GPU memory held by the stubs of variant `name`'s model step (NVML), None without a GPU."""
    return model_gpu_mb(repo / f"{name}_model", compute_apps())
