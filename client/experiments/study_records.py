"""What a study stores: one StudyRecord per measured point, in one JSON Lines store (client.records.ResultStore).

A record's key is its plan point's key (kind, model, engine, precision, batch, length, concurrency), so a
rerun skips it. Each kind fills its own typed parts: latency for the CPU baseline and in-process points,
memory for a variant, fidelity metrics, or the served point's full sweep record.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from builder.precision.fidelity import OutputMetrics
from client.experiments.study_plan import StudyPoint, study_key
from client.records import PointRecord, ResultStore
from client.stats import summarize_latencies

STORE_FILE = "study.jsonl"


@dataclass(frozen=True)
class Latency:
    """Latency percentiles of one point, in milliseconds."""

    avg_ms: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Latency:
        """Percentiles of call times in seconds, by the nearest-rank method (client.stats)."""
        s = summarize_latencies(seconds)
        return cls(*(s[f"latency_{k}_ms"] for k in ("avg", "p50", "p90", "p95", "p99", "max")))


@dataclass(frozen=True)
class VariantMemory:
    """What one variant occupies: on disk, as weights at its precision, and on the GPU once captured."""

    disk_mb: float  # its model folder in the repository (python-torch keeps FP32 weights there)
    weights_mb: float  # parameters and buffers as the engine holds them, at its precision
    engine_mb: float | None  # CUDA memory allocated once the Runner captured its graphs; None on the CPU
    graphs: int  # CUDA graphs captured (0 on the CPU)


@dataclass
class StudyRecord:
    """One measured point of a study; `kind` says which of the optional parts it fills."""

    kind: str  # cpu | fidelity | memory | inprocess | served
    model: str
    engine: str
    precision: str
    batch_size: int | None
    seq_len: int | None
    concurrency: int | None
    device: str  # what ran it: "NVIDIA H200", "cpu (16 threads)"
    host: str = ""
    timestamp: str = ""
    seconds: float = 0.0  # how long measuring the point took
    latency: Latency | None = None  # cpu, inprocess: one call (host arrays in, host outputs out)
    calls: int = 0  # timed calls behind `latency`
    throughput_seq_per_s: float | None = None
    peak_allocated_mb: float | None = None  # inprocess on CUDA: one eager forward at this shape, weights included
    memory: VariantMemory | None = None  # memory
    fidelity: tuple[OutputMetrics, ...] = ()  # fidelity: every output on real text and on random ids
    fidelity_texts: int = 0
    served: PointRecord | None = None  # served: the sweep's record of the point
    served_gpu_mb: float | None = None  # served: GPU memory of this variant's model instances (NVML)
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> tuple[Any, ...]:
        """The plan point this record measured."""
        return study_key(
            self.kind, self.model, self.engine, self.precision, self.batch_size, self.seq_len, self.concurrency
        )

    def to_json(self) -> str:
        """One line of JSON."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def of(cls, point: StudyPoint, device: str, **parts: Any) -> StudyRecord:
        """A record for `point` with the measured `parts`."""
        return cls(
            point.kind,
            point.model,
            point.engine,
            point.precision,
            point.batch_size,
            point.seq_len,
            point.concurrency,
            device,
            **parts,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StudyRecord:
        """Rebuild a record from its JSON form (unknown keys are ignored)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if values.get("latency") is not None:
            values["latency"] = Latency(**values["latency"])
        if values.get("memory") is not None:
            values["memory"] = VariantMemory(**values["memory"])
        values["fidelity"] = tuple(OutputMetrics(**m) for m in values.get("fidelity", ()))
        if values.get("served") is not None:
            values["served"] = PointRecord.from_dict(values["served"])
        return cls(**values)


def study_store(folder: Path) -> ResultStore[StudyRecord]:
    """The study's store: OUT/study.jsonl."""
    return ResultStore(folder, STORE_FILE, StudyRecord.from_dict)
