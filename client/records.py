"""Sweep results: one typed record per measured point, appended to a JSON Lines store as it finishes.

The store is the source of truth for resuming a sweep, for reports and for comparisons: a point
already in the store (same key) is not measured again. Every load generator turns what it measured
(`Measured`, with its `Settings`) into a record through the one constructor, `PointRecord.of`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import types
import typing
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar, cast, overload

from builder.common.errors import OutputError
from builder.common.versions import package_versions
from client.points import Point

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


@dataclass(frozen=True)
class Settings:
    """How a point was measured, in one shape whichever generator measured it (PointRecord.settings).

    The window fields are the rule the generator applied: perf_analyzer's own fixed ones included (three
    stable windows, no warm-up), not what it was asked and ignored.
    """

    url: str  # where the requests went: several URLs comma-separated (round robin)
    window_s: float  # time windows of this length (count windows: the interval a window may last)
    window_requests: int  # > 0: count windows of at least this many requests
    stability_pct: float
    stable_windows: int
    max_trials: int
    warmup_s: float
    percentile: int | None = None  # stabilised on this latency percentile instead of the average
    command: str = ""  # the command line of a generator that runs one (perf_analyzer)
    input_data: str = ""  # the inputs file it read
    server_total_us: dict[str, float] = field(default_factory=dict)  # its own server totals (perf_analyzer's CSV)
    # CPU time (user + system, every thread) the load generator's process spent per request it sent, warm-up
    # included: what the generator takes from a machine it shares with the server (None: not measured)
    client_cpu_us_per_request: float | None = None
    stats_urls: tuple[str, ...] = ()  # the servers `server` adds up when not `url` itself (a balancer's replicas)


@dataclass(frozen=True)
class Measured:
    """What a generator measured at one point, in tritonbench's units, before it becomes a record.

    Plain values only, so a generator may measure in another process and hand this back.
    """

    requests: int  # successful requests in the windows the numbers come from
    errors: int  # every failed request of the whole measurement, warm-up included (timeouts too)
    timeouts: int
    duration_s: float
    throughput_infer_per_s: float  # requests/s
    latency: dict[str, float]  # latency_avg_ms ... latency_max_ms (client.stats.summarize_latencies)
    stable: bool
    trials: int
    server: dict[str, ModelTimes]
    gpu: dict[str, float]
    settings: Settings
    versions: dict[str, str] = field(default_factory=dict)  # the generator's own, beside the packages'
    replicas: dict[str, dict[str, ModelTimes]] = field(default_factory=dict)  # `server` by replica, when several


@dataclass
class PointRecord:
    """One measured point of a sweep, with everything needed to reproduce and compare it."""

    # what was measured (the key)
    model: str
    protocol: str  # grpc | http
    generator: str  # the load generator: tritonbench | perf_analyzer (stored as "engine" before)
    mode: str  # concurrency | request_rate
    batch_size: int
    seq_len: int
    concurrency: int | None
    request_rate: float | None  # requests/s, for mode request_rate
    arrival: str | None  # constant | poisson, for mode request_rate
    variant: str  # a label for comparisons: fp32, fp16, hybrid, an engine name ...
    # what came out
    requests: int  # successful requests in the windows the numbers come from
    errors: int  # every failed request of the whole measurement, warm-up included (timeouts too)
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
    timeouts: int = 0  # of the errors, those without an answer within the client's timeout
    server: dict[str, ModelTimes] = field(default_factory=dict)  # every server's together, when there are several
    # each server's own, by URL, when there are several (a balancer's replicas, or several --url); a server that
    # did not answer at both ends of the windows, or was restarted in between, is missing here and from `server`
    replicas: dict[str, dict[str, ModelTimes]] = field(default_factory=dict)
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
            self.generator,
            self.mode,
            self.batch_size,
            self.seq_len,
            self.concurrency,
            self.request_rate,
            self.arrival,
            self.variant,
        )

    @classmethod
    def of(
        cls,
        point: Point,
        measured: Measured,
        *,
        model: str,
        protocol: str,
        generator: str,
        variant: str,
        tokens_per_text: float | None = None,
        inputs: dict[str, Any] | None = None,
    ) -> PointRecord:
        """The record of `point` as `generator` measured it: the one constructor every generator uses.

        `tokens_per_text` (default: the point's length) gives tokens/s; `inputs` adds what the requests were to
        the settings (the given texts' count and digest).
        """
        load = point.load
        seq_per_s = measured.throughput_infer_per_s * point.batch_size
        return cls(
            model=model,
            protocol=protocol,
            generator=generator,
            mode=load.mode,
            batch_size=point.batch_size,
            seq_len=point.seq_len,
            concurrency=load.concurrency,
            request_rate=load.request_rate,
            arrival=load.arrival,
            variant=variant,
            requests=measured.requests,
            errors=measured.errors,
            timeouts=measured.timeouts,
            duration_s=measured.duration_s,
            throughput_infer_per_s=measured.throughput_infer_per_s,
            throughput_seq_per_s=seq_per_s,
            throughput_tokens_per_s=seq_per_s * (point.seq_len if tokens_per_text is None else tokens_per_text),
            stable=measured.stable,
            trials=measured.trials,
            server=dict(measured.server),
            replicas=dict(measured.replicas),
            gpu=dict(measured.gpu),
            host=platform.node(),
            timestamp=datetime.now(UTC).isoformat(timespec="seconds"),
            versions={**package_versions(), **measured.versions},
            settings={**asdict(measured.settings), **(inputs or {})},
            **measured.latency,
        )

    def to_json(self) -> str:
        """One line of JSON."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PointRecord:
        """Rebuild a record from its JSON form; DamagedRecord unless every field has its type.

        Unknown keys are ignored (forward compatibility); fields added later take their defaults. Records
        written before the load generator had its own word name it "engine".
        """
        if "generator" not in data and "engine" in data:
            data = {**data, "generator": data["engine"]}
        _check_fields(cls, data)
        values = {f.name: data[f.name] for f in fields(cls) if f.name in data}
        values["server"] = _model_times(values.get("server", {}))
        values["replicas"] = {url: _model_times(server) for url, server in values.get("replicas", {}).items()}
        return cls(**values)


def _model_times(server: dict[str, dict[str, Any]]) -> dict[str, ModelTimes]:
    return {name: ModelTimes(**times) for name, times in server.items()}


class DamagedRecord(ValueError):
    """A stored line that is not a record: torn by a crash, edited by hand, or not ours."""


def _conforms(value: Any, hint: Any) -> bool:
    """Whether a JSON value has the type of a record field (a bool is no number here)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_conforms(value, option) for option in typing.get_args(hint))
    if origin is dict:
        item = typing.get_args(hint)[1]
        return isinstance(value, dict) and all(isinstance(k, str) and _conforms(v, item) for k, v in value.items())
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    if hint in (int, float):
        return isinstance(value, int if hint is int else (int, float)) and not isinstance(value, bool)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return isinstance(value, dict) and not _field_problems(hint, value)
    return isinstance(value, hint)


def _field_problems(cls: type, data: dict[str, Any]) -> list[str]:
    hints = typing.get_type_hints(cls)
    problems = []
    for f in fields(cls):
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if f.name not in data:
            problems += [f"no {f.name}"] if required else []
        elif not _conforms(data[f.name], hints[f.name]):
            expected = getattr(hints[f.name], "__name__", str(hints[f.name]))  # int, or dict[str, float]
            problems.append(f"{f.name} is {type(data[f.name]).__name__}, not {expected}")
    return problems


def _check_fields(cls: type, data: dict[str, Any]) -> None:
    problems = _field_problems(cls, data)
    if problems:
        raise DamagedRecord(", ".join(problems[:3]) + (" ..." if len(problems) > 3 else ""))


def parse_line(line: bytes, decode: Callable[[dict[str, Any]], Any] | None = None) -> Any:
    """One stored line as a record (a PointRecord unless `decode` says otherwise); DamagedRecord says what is wrong."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise DamagedRecord("not UTF-8") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        raise DamagedRecord("not complete JSON (torn by a crash?)") from None
    if not isinstance(data, dict):
        raise DamagedRecord(f"a JSON {type(data).__name__}, not an object")
    if decode is None:
        return PointRecord.from_dict(data)
    try:
        return decode(data)
    except (TypeError, KeyError, ValueError) as exc:
        raise DamagedRecord(str(exc)) from None


def point_key(
    model: str,
    protocol: str,
    generator: str,
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
    return (model, protocol, generator, mode, batch_size, seq_len, concurrency, rate, arrival, variant)


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
        self.decode = cast("Callable[[dict[str, Any]], R] | None", decode)

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
        """Cut a last line without its newline (a kill mid-write): what a kill left before it was never a record.

        Returns whether anything was cut. `append` starts a line of its own after a torn one anyway.
        """
        with self.path.open("rb+") as store:
            size = store.seek(0, os.SEEK_END)
            if size == 0 or _ends_with_newline(store):
                return False
            store.seek(0)
            keep = store.read().rfind(b"\n") + 1
            store.truncate(keep)
        warnings.warn(f"{self.path}: dropped a torn last line ({size - keep} bytes)", stacklevel=2)
        return True

    def append(self, record: R) -> None:
        """Append one record on a line of its own and sync it to disk, so an interruption keeps it.

        A last line torn by a crash has no newline: the record starts on the next line instead of gluing
        itself onto the torn one (and being lost with it).
        """
        with self.path.open("a+b") as sink:
            torn = sink.seek(0, os.SEEK_END) > 0 and not _ends_with_newline(sink)
            sink.write((b"\n" if torn else b"") + record.to_json().encode() + b"\n")
            sink.flush()
            os.fsync(sink.fileno())

    def load(self) -> list[R]:
        """Every record in the store; damaged lines are skipped, with one warning that lists them."""
        if not self.path.is_file():
            return []
        records, damaged = [], []
        for number, line in enumerate(self.path.read_bytes().split(b"\n"), 1):
            if not line.strip():
                continue
            try:
                records.append(parse_line(line, self.decode))
            except DamagedRecord as exc:
                damaged.append(f"line {number}: {exc}")
        if damaged:
            listed = "; ".join(damaged[:5]) + ("; ..." if len(damaged) > 5 else "")
            warnings.warn(
                f"{self.path}: skipped {len(damaged)} damaged line(s), kept {len(records)} record(s) ({listed})",
                stacklevel=2,
            )
        return records

    def done_keys(self) -> set[tuple[Any, ...]]:
        """Keys of the points already measured."""
        return {r.key for r in self.load()}


def _ends_with_newline(sink: Any) -> bool:
    sink.seek(-1, os.SEEK_END)
    return bool(sink.read(1) == b"\n")


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
