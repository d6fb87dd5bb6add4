"""Sweep results: one typed record per measured point, appended to a JSON Lines store as it finishes.

The store is the source of truth for resuming a sweep, for reports and for comparisons: a point
already in the store (same key) is not measured again. The store holds any record type with a key and
a JSON form (`Record`): sweeps keep PointRecords, `tritonbench study` its StudyRecords.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar, cast, overload

from builder.common.errors import OutputError

RESULTS_FILE = "results.jsonl"


@dataclass(frozen=True)
class ModelTimes:
    """The server's own breakdown for one model over a point (statistics extension deltas)."""

    inference_count: int
    execution_count: int
    queue_us: float  # average per request
    compute_input_us: float
    compute_infer_us: float
    compute_output_us: float


@dataclass
class PointRecord:
    """One measured point of a sweep, with everything needed to reproduce and compare it."""

    # what was measured (the key)
    model: str
    protocol: str  # grpc | http
    engine: str  # tritonbench | perf_analyzer
    mode: str  # concurrency | request_rate
    batch_size: int
    seq_len: int
    concurrency: int | None
    request_rate: float | None  # requests/s, for mode request_rate
    arrival: str | None  # constant | poisson, for mode request_rate
    variant: str  # a label for comparisons: fp32, fp16, hybrid, an engine name ...
    # what came out
    requests: int
    errors: int
    duration_s: float
    throughput_infer_per_s: float
    throughput_seq_per_s: float
    throughput_tokens_per_s: float
    latency_avg_ms: float
    latency_p50_ms: float
    latency_p90_ms: float
    latency_p95_ms: float
    latency_p99_ms: float
    latency_max_ms: float
    stable: bool
    trials: int
    server: dict[str, ModelTimes] = field(default_factory=dict)
    gpu: dict[str, float] = field(default_factory=dict)  # utilization, memory_used_mb, power_w (if a GPU)
    # where and how
    host: str = ""
    timestamp: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[Any, ...]:
        """Identity of the point: a resumed sweep skips records with the same key."""
        return point_key(
            self.model,
            self.protocol,
            self.engine,
            self.mode,
            self.batch_size,
            self.seq_len,
            self.concurrency,
            self.request_rate,
            self.arrival,
            self.variant,
        )

    def to_json(self) -> str:
        """One line of JSON."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PointRecord:
        """Rebuild a record from its JSON form (unknown keys are ignored, for forward compatibility)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["server"] = {name: ModelTimes(**times) for name, times in values.get("server", {}).items()}
        return cls(**values)


def point_key(
    model: str,
    protocol: str,
    engine: str,
    mode: str,
    batch_size: int,
    seq_len: int,
    concurrency: int | None,
    request_rate: float | None,
    arrival: str | None,
    variant: str,
) -> tuple[Any, ...]:
    """The key of a point, built from its parts (used before a record exists)."""
    rate = None if request_rate is None else round(float(request_rate), 6)
    return (model, protocol, engine, mode, batch_size, seq_len, concurrency, rate, arrival, variant)


class Record(Protocol):
    """What a store keeps: a key that identifies the point, and one line of JSON."""

    @property
    def key(self) -> tuple[Any, ...]:
        """Identity of the point."""
        ...

    def to_json(self) -> str:
        """One line of JSON."""
        ...


R = TypeVar("R", bound=Record)


class ResultStore(Generic[R]):
    """Append-only JSON Lines file of records in a results folder (PointRecords unless `decode` says otherwise)."""

    @overload
    def __init__(self: ResultStore[PointRecord], folder: Path, file_name: str = RESULTS_FILE) -> None: ...

    @overload
    def __init__(self, folder: Path, file_name: str, decode: Callable[[dict[str, Any]], R]) -> None: ...

    def __init__(self, folder: Path, file_name: str = RESULTS_FILE, decode: Callable[..., Any] | None = None) -> None:
        self.folder = folder
        self.path = folder / file_name
        self.decode = cast("Callable[[dict[str, Any]], R]", decode or PointRecord.from_dict)

    def ensure_writable(self) -> None:
        """Create the folder, drop a torn last line, and check that the store can be appended to."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with self.path.open("a"):
                pass
            self.repair()
        except OSError as exc:
            raise OutputError(
                f"cannot write results to {self.folder}: {exc.strerror}", hint="choose a writable --out"
            ) from exc

    def repair(self) -> bool:
        """Cut a last line without its newline (a kill mid-write), so the next record starts a line of its own.

        A record is complete only with its newline: what a kill left before it was never a record.
        Returns whether anything was cut.
        """
        with self.path.open("rb+") as store:
            size = store.seek(0, os.SEEK_END)
            if size == 0:
                return False
            store.seek(size - 1)
            if store.read(1) == b"\n":
                return False
            store.seek(0)
            keep = store.read().rfind(b"\n") + 1
            store.truncate(keep)
        warnings.warn(f"{self.path}: dropped a torn last line ({size - keep} bytes)", stacklevel=2)
        return True

    def append(self, record: R) -> None:
        """Append one record and flush it to disk, so an interruption keeps it."""
        with self.path.open("a") as sink:
            sink.write(record.to_json() + "\n")
            sink.flush()
            os.fsync(sink.fileno())

    def load(self) -> list[R]:
        """Every complete record; an unreadable line (a kill mid-write) is skipped with a warning."""
        if not self.path.is_file():
            return []
        records = []
        for number, line in enumerate(self.path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                records.append(self.decode(json.loads(line)))
            except (json.JSONDecodeError, TypeError, KeyError) as exc:
                warnings.warn(f"{self.path}:{number}: skipped an unreadable record ({exc})", stacklevel=2)
        return records

    def done_keys(self) -> set[tuple[Any, ...]]:
        """Keys of the points already measured."""
        return {r.key for r in self.load()}


def load_records(paths: list[Path]) -> list[PointRecord]:
    """Records from results folders (their results.jsonl) or JSON Lines files, in order."""
    records: list[PointRecord] = []
    for path in paths:
        store = ResultStore(path.parent, path.name) if path.is_file() else ResultStore(path)
        if not store.path.is_file():
            raise OutputError(
                f"no {RESULTS_FILE} in {path}", hint="point at the --out folder of a sweep or a .jsonl file"
            )
        records += store.load()
    return records
