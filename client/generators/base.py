"""The one interface every load generator implements: measure a point of a served model, get its record.

A generator is built for one model and one measurement rule (`GeneratorConfig`) with the requests it sends
(`client.targets.requests.Requests`); `measure(point, target)` runs one point and returns its PointRecord,
made by `PointRecord.of` from what the generator measured. The sweep and the study call it without knowing
which generator it is. Points, targets and `Measured` are plain frozen values, so a generator may measure
in a child process (perf_analyzer already does: one process per point) and hand back only `Measured`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

from client.generators.measure import MeasurementConfig
from client.points import Point
from client.records import Measured, PointRecord
from client.targets.requests import Requests
from client.targets.target import Target
from client.transport.replicas import Endpoints
from client.transport.text_client import ClientConfig


@dataclass(frozen=True)
class GeneratorConfig:
    """What every point shares, whichever generator measures it: the model, the windows, the label, GPU metrics."""

    client: ClientConfig
    measurement: MeasurementConfig = field(default_factory=MeasurementConfig)
    variant: str = ""
    metrics_url: str | None = None
    seed: int = 0  # of open-loop arrivals
    endpoints: Endpoints | None = None  # several URLs or a balancer's replicas; None: the one server at client.url

    @property
    def servers(self) -> Endpoints:
        """Where requests go and whose statistics count."""
        return self.endpoints or Endpoints.single(self.client.url)


class Generator(ABC):
    """A load generator; subclasses name themselves (`name`, the records' `generator`) and implement `_measure`."""

    name: ClassVar[str]
    spreads: ClassVar[bool] = False  # sends to several URLs and reads several servers' statistics (Endpoints)

    def __init__(self, config: GeneratorConfig, requests: Requests) -> None:
        self.config = config
        self.requests = requests

    def measure(self, point: Point, target: Target) -> PointRecord | None:
        """The record of `point`, or None when the generator found no settled measurement (a rerun retries it)."""
        found = self._measure(point, target)
        return None if found is None else self.record(point, found, self.requests.tokens_per_text(point, target))

    def record(self, point: Point, measured: Measured, tokens_per_text: float | None = None) -> PointRecord:
        """What this generator measured at `point`, as the stored record (tokens per text: the point's length)."""
        c = self.config
        return PointRecord.of(
            point,
            measured,
            model=c.client.model,
            protocol=c.client.protocol,
            generator=self.name,
            variant=c.variant,
            tokens_per_text=tokens_per_text,
            inputs=self.requests.settings(),
        )

    @abstractmethod
    def _measure(self, point: Point, target: Target) -> Measured | None:
        """Send `point`'s load to the target and return what was measured; None if it never settled."""
