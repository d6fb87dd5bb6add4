"""NVIDIA's own perf_analyzer binary as a load generator: one child process per point, its numbers as PointRecords.

perf_analyzer is the reference load generator for Triton; running it next to tritonbench on the same
points, with the same requests, lets a user check that our measurements agree with NVIDIA's. The binary
ships in the tritonclient 2.51.0 wheel (pinned in pyproject.toml) and links libcudart.so.12 (from the
nvidia-cuda-runtime-cu12 wheel, found here through importlib) and libb64.so.0d (apt: libb64-0d).

Facts about perf_analyzer 2.51 that shape this module (all observed on the bundled server):
- its "infer/sec" counts batch items: requests/s × batch size (it is our seq/s, not our infer/s);
- it writes the CSV only for a stable measurement; an unstable one exits with code 2 and
  "Failed to obtain stable measurement", so unstable points raise PerfAnalyzerUnstable;
- it aborts on the first failed request, so a finished run had no errors;
- it reports no maximum latency (stored as NaN) and prints request counts, passes and the
  per-model server breakdown only on stdout (-v), which is parsed alongside the CSV.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import os
import re
import resource
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib.metadata import PackageNotFoundError, files
from pathlib import Path
from typing import Any, NoReturn, TypedDict, cast

import numpy as np

from builder.common.errors import UserError
from client.generators.base import Generator
from client.points import Load, Point
from client.records import Measured, ModelTimes, Settings
from client.targets.target import Target

BINARY = "perf_analyzer"
STABLE_WINDOWS = 3  # perf_analyzer judges stability on its last three windows; no option changes that
UNSTABLE_MARK = "Failed to obtain stable measurement"
_LIBRARY_ERROR = re.compile(r"error while loading shared libraries: (\S+?):")
_PASS = re.compile(r"Pass \[(\d+)\] throughput: ([\d.]+) infer/sec\. (?:Avg|p\d+) latency: (\d+) usec")
_MODEL_HEADER = re.compile(r"^\s*(\S+), version: (\S+)\s*$")
_TIMES = re.compile(
    r"overhead (\d+) usec \+ queue (\d+) usec \+ compute input (\d+) usec \+ "
    r"compute infer (\d+) usec \+ compute output (\d+) usec"
)


class PerfAnalyzerError(UserError):
    """perf_analyzer could not produce a measurement."""


class PerfAnalyzerNotFound(PerfAnalyzerError):
    """The perf_analyzer binary is not installed."""


class PerfAnalyzerLibraryError(PerfAnalyzerError):
    """The binary is there but a shared library it links is missing."""


class PerfAnalyzerFailed(PerfAnalyzerError):
    """perf_analyzer exited with an error, timed out or wrote no report."""


class PerfAnalyzerUnstable(PerfAnalyzerError):
    """perf_analyzer measured, but its windows never agreed within the stability percentage."""

    def __init__(self, message: str, hint: str, passes: list[tuple[float, float]]) -> None:
        super().__init__(message, hint)
        self.passes = passes  # (infer/s, avg latency µs) of every window, as perf_analyzer printed them


# ── installation ────────────────────────────────────────────────────────────────────────────────


def find_binary() -> Path:
    """The perf_analyzer that pip installed (next to this Python, else listed in tritonclient's files), else on PATH.

    PATH covers a binary unpacked from a bundle (scripts/make_triton_bundle.sh) on a host without a registry.
    """
    candidates = [Path(sys.executable).parent / BINARY, Path(sysconfig.get_path("scripts")) / BINARY]
    try:
        listed = files("tritonclient") or []
        candidates += [Path(str(f.locate())) for f in listed if f.name == BINARY]
    except PackageNotFoundError:
        pass
    on_path = shutil.which(BINARY)
    if on_path:
        candidates.append(Path(on_path))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise PerfAnalyzerNotFound(
        "perf_analyzer is not installed (it ships in the tritonclient 2.51.0 wheel; 2.52+ wheels have none)",
        hint="run scripts/setup.sh, or pip install 'tritonclient[all]==2.51.0' nvidia-cuda-runtime-cu12",
    )


def cuda_runtime_lib() -> Path | None:
    """The folder holding libcudart.so.12 from the nvidia-cuda-runtime-cu12 wheel, if installed."""
    try:
        spec = importlib.util.find_spec("nvidia.cuda_runtime")
    except ModuleNotFoundError:
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        lib = Path(location) / "lib"
        if (lib / "libcudart.so.12").is_file():
            return lib
    return None


def build_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for perf_analyzer: `base` (default os.environ) with the CUDA runtime on LD_LIBRARY_PATH."""
    env = dict(os.environ if base is None else base)
    lib = cuda_runtime_lib()
    if lib is not None:
        parts = [str(lib), *[p for p in env.get("LD_LIBRARY_PATH", "").split(os.pathsep) if p]]
        env["LD_LIBRARY_PATH"] = os.pathsep.join(dict.fromkeys(parts))
    return env


def binary_version(binary: Path, env: Mapping[str, str]) -> str:
    """perf_analyzer's own version ("2.51.0"), which also proves that its libraries load."""
    result = _run([str(binary), "--version"], env, timeout_s=30)
    _raise_for_libraries(result.stderr, binary)
    match = re.search(r"Perf Analyzer Version (\S+)", result.stdout + result.stderr)
    if result.returncode != 0 or match is None:
        raise PerfAnalyzerFailed(f"{binary} --version failed (exit {result.returncode}):\n{error_tail(result)}")
    return match.group(1)


# ── the command line ────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class PerfPoint:
    """One load point for perf_analyzer: target, load, measurement rule and inputs."""

    url: str  # host:port of the gRPC or HTTP endpoint
    model: str
    load: Load
    protocol: str = "grpc"  # grpc | http
    batch_size: int = 1
    measurement_interval_ms: int = 5000  # time windows (perf_analyzer's default mode)
    measurement_request_count: int | None = None  # set → count windows of at least this many requests
    stability_pct: float = 10.0
    max_trials: int = 10
    percentile: int | None = None  # stabilise on this latency percentile instead of the average
    input_data: Path | None = None  # a JSON file from write_text_data / write_token_data
    shapes: Mapping[str, Sequence[int]] = field(default_factory=dict)  # for variable dims without JSON data

    def __post_init__(self) -> None:
        if self.protocol not in ("grpc", "http"):
            raise PerfAnalyzerError(f"unknown protocol '{self.protocol}'", hint="grpc or http")
        if self.batch_size < 1 or self.max_trials < 1 or self.measurement_interval_ms < 1:
            raise PerfAnalyzerError("batch size, max trials and the measurement interval must be at least 1")
        if self.percentile is not None and not 0 < self.percentile < 100:
            raise PerfAnalyzerError(f"percentile {self.percentile} is outside perf_analyzer's range (0, 100)")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _load_flags(load: Load) -> list[str]:
    if load.concurrency is not None:
        return ["--concurrency-range", f"{load.concurrency}:{load.concurrency}"]
    assert load.request_rate is not None and load.arrival is not None
    rate = _number(load.request_rate)
    return ["--request-rate-range", f"{rate}:{rate}", "--request-distribution", load.arrival]


def _measurement_flags(point: PerfPoint) -> list[str]:
    if point.measurement_request_count is not None:
        window = ["--measurement-mode", "count_windows", "--measurement-request-count"]
        window.append(str(point.measurement_request_count))
    else:
        window = ["--measurement-interval", str(point.measurement_interval_ms)]
    window += ["--stability-percentage", _number(point.stability_pct), "--max-trials", str(point.max_trials)]
    return window + (["--percentile", str(point.percentile)] if point.percentile is not None else [])


def _input_flags(point: PerfPoint) -> list[str]:
    flags = ["--input-data", str(point.input_data)] if point.input_data is not None else []
    for name, dims in point.shapes.items():
        flags += ["--shape", f"{name}:{','.join(str(d) for d in dims)}"]
    return flags


def build_command(binary: Path, point: PerfPoint, csv_path: Path) -> list[str]:
    """The perf_analyzer command line for one point; -v because passes and request counts are only on stdout."""
    return [
        str(binary),
        "-m",
        point.model,
        "-u",
        point.url,
        "-i",
        point.protocol,
        "-b",
        str(point.batch_size),
        *_load_flags(point.load),
        *_measurement_flags(point),
        *_input_flags(point),
        "-f",
        str(csv_path),
        "--verbose-csv",
        "-v",
    ]


# ── input data ──────────────────────────────────────────────────────────────────────────────────


def write_text_data(path: Path, texts: Sequence[str], input_name: str = "TEXT") -> Path:
    """perf_analyzer input data for an ensemble taking TEXT (TYPE_STRING, dims [1]).

    Each text is one batch-1 entry; perf_analyzer builds a request of -b entries from them.
    Empty texts are refused here because the tokenizer step rejects them and perf_analyzer stops.
    """
    if not texts:
        raise PerfAnalyzerError("no texts to send")
    for index, text in enumerate(texts):
        if not text.strip():
            raise PerfAnalyzerError(f"text {index} is empty or whitespace only; the tokenizer step rejects it")
    entries = [{input_name: {"content": [text], "shape": [1]}} for text in texts]
    return _write_json(path, entries)


def write_token_data(
    path: Path, input_ids: np.ndarray, attention_mask: np.ndarray, vocab_size: int | None = None
) -> Path:
    """perf_analyzer input data for a bare model taking input_ids and attention_mask (INT64).

    Rows of the [n, seq] arrays become batch-1 entries of shape [seq]. Ids are checked against
    `vocab_size` because perf_analyzer's own random ids crash embedding lookups.
    """
    ids, mask = np.asarray(input_ids), np.asarray(attention_mask)
    if ids.ndim != 2 or ids.shape != mask.shape or ids.shape[0] == 0 or ids.shape[1] == 0:
        raise PerfAnalyzerError(f"input_ids {ids.shape} and attention_mask {mask.shape} must be equal [n, seq]")
    if not (np.issubdtype(ids.dtype, np.integer) and np.issubdtype(mask.dtype, np.integer)):
        raise PerfAnalyzerError("token ids and the attention mask must be integers")
    if ids.min() < 0 or (vocab_size is not None and ids.max() >= vocab_size):
        raise PerfAnalyzerError(f"token ids must lie in [0, {vocab_size}); got {ids.min()}..{ids.max()}")
    if not np.isin(mask, (0, 1)).all() or (mask.sum(axis=1) == 0).any():
        raise PerfAnalyzerError("the attention mask must be 0/1 with at least one real token per row")
    seq = int(ids.shape[1])
    entries = [
        {
            "input_ids": {"content": [int(v) for v in row_ids], "shape": [seq]},
            "attention_mask": {"content": [int(v) for v in row_mask], "shape": [seq]},
        }
        for row_ids, row_mask in zip(ids, mask, strict=True)
    ]
    return _write_json(path, entries)


def tokenize(tokenizer_file: Path, texts: Sequence[str], seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Valid [n, seq_len] input_ids and attention_mask from real text, padded and truncated like a repository's."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    tokenizer.enable_truncation(max_length=seq_len)
    tokenizer.enable_padding(length=seq_len, pad_id=tokenizer.padding["pad_id"] if tokenizer.padding else 0)
    encodings = tokenizer.encode_batch(list(texts))
    ids = np.array([e.ids for e in encodings], dtype=np.int64)
    mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
    return ids, mask


def _write_json(path: Path, entries: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"data": entries}, ensure_ascii=False))
    return path


# ── running and parsing ─────────────────────────────────────────────────────────────────────────


class PerfNumbers(TypedDict):
    """What perf_analyzer reported for one point (µs as it reports them; infer/s counts batch items)."""

    infer_per_s: float
    latency_avg_us: float
    latency_p50_us: float
    latency_p90_us: float
    latency_p95_us: float
    latency_p99_us: float
    server_queue_us: float
    server_compute_input_us: float
    server_compute_infer_us: float
    server_compute_output_us: float
    stable: bool


@dataclass
class PerfRun:
    """One finished perf_analyzer run: its numbers and what only its stdout tells."""

    point: PerfPoint
    numbers: PerfNumbers
    requests: int  # requests in the reported windows
    passes: list[tuple[float, float]]  # (infer/s, latency µs) of every window measured
    server: dict[str, ModelTimes]  # per model, where perf_analyzer printed the full breakdown
    command: list[str]
    version: str
    cpu_s: float | None = None  # perf_analyzer's own CPU time (user + system), start-up included

    def cpu_us_per_request(self) -> float | None:
        """Its CPU time per request sent; the requests estimated from every time window's throughput."""
        p = self.point
        if self.cpu_s is None or p.measurement_request_count is not None:
            return None
        sent = sum(ips for ips, _ in self.passes) / p.batch_size * p.measurement_interval_ms / 1000
        return self.cpu_s / sent * 1e6 if sent > 0 else None


_CSV_FIELDS = {
    "infer_per_s": "Inferences/Second",
    "latency_avg_us": "Avg latency",
    "latency_p50_us": "p50 latency",
    "latency_p90_us": "p90 latency",
    "latency_p95_us": "p95 latency",
    "latency_p99_us": "p99 latency",
    "server_queue_us": "Server Queue",
    "server_compute_input_us": "Server Compute Input",
    "server_compute_infer_us": "Server Compute Infer",
    "server_compute_output_us": "Server Compute Output",
}


def parse_csv(path: Path, stdout: str = "") -> PerfNumbers:
    """The numbers of a --verbose-csv report of one point; `stdout` tells whether it was stable."""
    with path.open(newline="") as source:
        rows = list(csv.DictReader(source))
    if len(rows) != 1:
        raise PerfAnalyzerFailed(f"{path} has {len(rows)} result rows; one point gives one")
    row = rows[0]
    missing = [column for column in _CSV_FIELDS.values() if column not in row]
    if missing:
        raise PerfAnalyzerFailed(f"{path} lacks columns {missing}", hint="perf_analyzer must run with --verbose-csv")
    values = {key: float(row[column]) for key, column in _CSV_FIELDS.items()}
    return cast(PerfNumbers, {**values, "stable": UNSTABLE_MARK not in stdout})


def parse_passes(stdout: str) -> list[tuple[float, float]]:
    """(infer/s, latency µs) of each measurement window, from -v output."""
    return [(float(m.group(2)), float(m.group(3))) for m in _PASS.finditer(stdout)]


def parse_request_count(stdout: str) -> int:
    """The client's request count over the reported windows."""
    match = re.search(r"Client:\s*\n\s*Request count: (\d+)", stdout)
    if match is None:
        raise PerfAnalyzerFailed("perf_analyzer printed no client request count", hint="run it with -v")
    return int(match.group(1))


def parse_server(stdout: str, model: str) -> dict[str, ModelTimes]:
    """Per-model server times from stdout: the model itself and each composing model of an ensemble.

    A model whose line has no compute split (an ensemble's own line) is left out rather than guessed.
    """
    found: dict[str, ModelTimes] = {}
    name: str | None = None
    counts: dict[str, int] = {}
    for line in stdout.splitlines():
        header = _MODEL_HEADER.match(line)
        if line.strip() == "Server:" or header:
            name, counts = (header.group(1) if header else model), {}
        elif name and (count := re.match(r"\s*(Inference|Execution) count: (\d+)", line)):
            counts[count.group(1)] = int(count.group(2))
        elif name and (times := _TIMES.search(line)):
            _, queue, c_in, c_infer, c_out = (float(v) for v in times.groups())
            found[name] = ModelTimes(
                counts.get("Inference", 0), counts.get("Execution", 0), queue, c_in, c_infer, c_out
            )
            name = None
    return found


def error_tail(result: subprocess.CompletedProcess[str], lines: int = 8) -> str:
    """perf_analyzer's own error lines: stderr (without the usage text it prints) and stdout's failures."""
    stderr = result.stderr.split("Usage:", 1)[0].strip().splitlines()
    failures = [line for line in result.stdout.splitlines() if re.search(r"error|failed", line, re.IGNORECASE)]
    tail = [line.strip() for line in failures + stderr if line.strip()][-lines:]
    return "\n".join(tail) or f"(no output; exit code {result.returncode})"


def _run(
    command: list[str], env: Mapping[str, str], timeout_s: float, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    # cwd: perf_analyzer may write per-model CSVs beside the report, so it runs in a private folder
    try:
        return subprocess.run(
            command, env=dict(env), cwd=cwd, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise PerfAnalyzerFailed(
            f"perf_analyzer did not finish within {timeout_s:.0f} s",
            hint="shorten --measurement-interval or --max-trials, or raise the timeout",
        ) from exc
    except OSError as exc:
        raise PerfAnalyzerNotFound(f"cannot run {command[0]}: {exc.strerror}", hint="run scripts/setup.sh") from exc


def _raise_for_libraries(stderr: str, binary: Path) -> None:
    match = _LIBRARY_ERROR.search(stderr)
    if match is None:
        return
    library = match.group(1)
    hint = {
        "libb64.so.0d": "install the Debian/Ubuntu package libb64-0d (scripts/setup.sh does it as root)",
        "libcudart.so.12": "pip install nvidia-cuda-runtime-cu12 (this module puts its lib folder on LD_LIBRARY_PATH)",
    }.get(library, "install the library that provides it")
    raise PerfAnalyzerLibraryError(f"{binary} cannot start: {library} is missing", hint=hint)


def default_timeout_s(point: PerfPoint) -> float:
    """Generous wall-clock limit: every trial window plus start-up; count windows get ten minutes."""
    if point.measurement_request_count is not None:
        return 600.0
    return 60.0 + 2.0 * point.max_trials * point.measurement_interval_ms / 1000.0


def run_point(point: PerfPoint, timeout_s: float | None = None, binary: Path | None = None) -> PerfRun:
    """Run perf_analyzer on one point and return what it reported; raises a PerfAnalyzerError otherwise."""
    binary = binary or find_binary()
    if not binary.is_file():
        raise PerfAnalyzerNotFound(f"no perf_analyzer at {binary}", hint="run scripts/setup.sh")
    if point.input_data is not None:  # perf_analyzer runs in a temporary folder: make the path absolute
        point = replace(point, input_data=point.input_data.resolve())
    env = build_env()
    version = binary_version(binary, env)
    with tempfile.TemporaryDirectory(prefix="perf-analyzer-") as folder:
        csv_path = Path(folder) / "report.csv"
        command = build_command(binary, point, csv_path)
        before = _children_cpu_s()
        result = _run(command, env, timeout_s or default_timeout_s(point), cwd=Path(folder))
        cpu_s = _children_cpu_s() - before
        _raise_for_libraries(result.stderr, binary)
        passes = parse_passes(result.stdout)
        unstable = UNSTABLE_MARK in result.stdout + result.stderr
        if not csv_path.is_file() or (result.returncode != 0 and not unstable):
            _raise_no_report(point, result, passes)
        numbers = parse_csv(csv_path, result.stdout + result.stderr)
    return PerfRun(
        point=point,
        numbers=numbers,
        requests=parse_request_count(result.stdout),
        passes=passes,
        server=parse_server(result.stdout, point.model),
        command=command,
        version=version,
        cpu_s=cpu_s,
    )


def _children_cpu_s() -> float:
    """User + system CPU of this process's finished children (perf_analyzer runs one at a time)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _raise_no_report(
    point: PerfPoint, result: subprocess.CompletedProcess[str], passes: list[tuple[float, float]]
) -> NoReturn:
    where = f"{point.model} at {point.url} ({point.protocol})"
    if UNSTABLE_MARK in result.stdout + result.stderr:
        seen = ", ".join(f"{ips:.1f} infer/s {lat / 1000:.1f} ms" for ips, lat in passes)
        raise PerfAnalyzerUnstable(
            f"perf_analyzer found no stable measurement of {where} in {point.max_trials} windows: {seen}",
            hint="lengthen --measurement-interval, raise --max-trials or widen --stability-percentage",
            passes=passes,
        )
    raise PerfAnalyzerFailed(
        f"perf_analyzer failed on {where} (exit {result.returncode}):\n{error_tail(result)}",
        hint="check the URL, protocol, model name and input data",
    )


# ── the generator ───────────────────────────────────────────────────────────────────────────────


def measured(run: PerfRun) -> Measured:
    """What perf_analyzer measured, in tritonbench's units.

    perf_analyzer's infer/s counts batch items, so infer/s here is that ÷ batch (requests/s); the window
    duration follows from its formula (requests × batch ÷ infer/s). It reports no maximum latency (NaN) and
    stops at the first error (errors = 0).
    """
    p, n = run.point, run.numbers
    seq_per_s = n["infer_per_s"]
    ms = 1e-3
    return Measured(
        requests=run.requests,
        errors=0,
        timeouts=0,
        duration_s=run.requests * p.batch_size / seq_per_s if seq_per_s > 0 else 0.0,
        throughput_infer_per_s=seq_per_s / p.batch_size,
        latency={
            "latency_avg_ms": n["latency_avg_us"] * ms,
            "latency_p50_ms": n["latency_p50_us"] * ms,
            "latency_p90_ms": n["latency_p90_us"] * ms,
            "latency_p95_ms": n["latency_p95_us"] * ms,
            "latency_p99_ms": n["latency_p99_us"] * ms,
            "latency_max_ms": math.nan,
        },
        stable=n["stable"],
        trials=len(run.passes),
        server=dict(run.server),
        gpu={},
        settings=Settings(
            url=p.url,
            window_s=p.measurement_interval_ms / 1000,
            window_requests=p.measurement_request_count or 0,
            stability_pct=p.stability_pct,
            stable_windows=STABLE_WINDOWS,
            max_trials=p.max_trials,
            warmup_s=0.0,
            percentile=p.percentile,
            command=" ".join(run.command),
            input_data=str(p.input_data) if p.input_data else "",
            client_cpu_us_per_request=run.cpu_us_per_request(),
            # the CSV's server columns as perf_analyzer wrote them (for an ensemble, its own mix of its members)
            server_total_us={k: cast(float, v) for k, v in n.items() if k.startswith("server_")},
        ),
        versions={"perf_analyzer": run.version},
    )


class PerfAnalyzer(Generator):
    """Measures each point with one perf_analyzer run on the sweep's own requests (written as its input data)."""

    name = "perf_analyzer"

    def _measure(self, point: Point, target: Target) -> Measured | None:
        c, m = self.config, self.config.measurement
        with tempfile.TemporaryDirectory(prefix="tritonbench-pa-") as tmp:
            data = Path(tmp) / "input.json"
            if target.text_input:  # perf_analyzer builds each batch from [1]-shaped entries
                write_text_data(data, [t for batch in self.requests.texts(point) for t in batch])
            else:
                arrays = self.requests.tokens(point)
                write_token_data(
                    data,
                    np.concatenate([a["input_ids"] for a in arrays]),
                    np.concatenate([a["attention_mask"] for a in arrays]),
                )
            spec = PerfPoint(
                url=c.client.url,
                model=c.client.model,
                load=point.load,
                protocol=c.client.protocol,
                batch_size=point.batch_size,
                measurement_interval_ms=int(m.window_s * 1000),
                measurement_request_count=m.window_requests or None,
                stability_pct=m.stability_pct,
                max_trials=m.max_trials,
                input_data=data,
            )
            try:
                return measured(run_point(spec))
            except PerfAnalyzerUnstable:
                return None
