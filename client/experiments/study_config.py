"""`tritonbench study` configuration: a TOML file, checked key by key into typed dataclasses.

The commented example (`EXAMPLE`, printed by `tritonbench study --example`) is the default study and
reproduces the first seed's design: BERT-base and GPT-2 × batch 1–32 × length 32–512 × fp32, fp16,
hybrid and bf16, a CPU FP32 baseline at the same shapes, a served subset. A misspelt key is an error,
not a silently ignored setting.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from builder.common.errors import UserError

if TYPE_CHECKING:
    from client.generators.measure import MeasurementConfig

STUDY_ENGINES = ("python-torch",)  # engines with an in-process Runner to measure against the served path
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,40}")  # leaves room for "_<precision>_tokenizer" in 64

EXAMPLE = """\
# tritonbench study: the first seed's experiment (arXiv:2603.28708) as one command.
# Each point is appended to OUT/study.jsonl as soon as it is measured; the same command again skips
# finished points, so a killed or budgeted (--max-minutes) study resumes where it stopped.
# Relative paths are read from this file's folder.

[study]
name = "seed-000"
gpu = "h200"                      # GPU profile of the repositories (tritonbuild gpus); "cpu" without a GPU
engines = ["python-torch"]        # the engine with an in-process Runner (CUDA graphs per shape)
kernels = "fused"                 # python-torch kernels: fused | fused-tanh-gelu | hf
precisions = ["fp32", "fp16", "hybrid", "bf16"]   # bf16 is left out where the GPU profile has none
batch_sizes = [1, 2, 4, 8, 16, 32]
seq_lens = [32, 64, 128, 256, 512]
vocab = ""                        # BERT's uncased tokenizer folder for built-in BERT models ("": bundled MiniLM's)

# A model is a built-in full-size config with random weights (bert-base, gpt2, distilbert, minilm-sized)
# or a Hugging Face model folder; name labels it in the store, the report and the repository.
[[models]]
name = "bert-base"
source = "bert-base"
task = "text-classification"      # label agreement is its task metric

[[models]]
name = "gpt2"
source = "gpt2"
task = "causal-lm"                # top-1 next-token agreement

# In process: the python-torch Runner the server runs, on this host's GPU (on the CPU, eagerly, without one).
# Per point: `warmup` calls, then calls until `seconds` have passed and at least `min_repeats`, at most
# `max_repeats`. batch_sizes / seq_lens here would replace the study's.
[inprocess]
enabled = true
warmup = 10
min_repeats = 20
max_repeats = 300
seconds = 0.25

# The CPU FP32 baseline: the fp32 variant's engine on the CPU at the study's shapes (threads = 0: every core).
[cpu]
enabled = true
threads = 0
warmup = 1
min_repeats = 2
max_repeats = 5
seconds = 0.5

# Served: every variant from one repository and one server (the bundled one, or --url), over the network
# path, with texts of exactly seq_len tokens. Windows as perf_analyzer measures them.
[served]
enabled = true
batch_sizes = [1, 32]
seq_lens = [128]
concurrency = [1, 4]
protocol = "grpc"                 # grpc | http
load_generator = "tritonbench"    # tritonbench | perf_analyzer
single_model = false              # true: tokenizer, model and post-processing in one Python model
window_s = 0.5
warmup_s = 0.5
stable_windows = 3
max_trials = 6
stability_pct = 10.0

# Fidelity against PyTorch FP32 (TF32 off) on the same device: real text cut to exactly each length, and
# random ids of the same shapes. Per-token and pooled cosine, NaN/Inf rate, task agreement.
[fidelity]
enabled = true
texts = 64                        # cut from Python's own documentation, each exactly seq_len tokens
batch_size = 16
# seq_lens = [...]                # default: the study's

[report]
reference_seq_len = 128           # the length charts and the best-per-budget table are read at
latency_budgets_ms = [1, 2, 5, 10]   # best configuration per in-process p99 budget
fp16_pays_at = 1.1                # FP16 "pays" where it is at least this much faster than FP32
"""


class StudyConfigError(UserError):
    """The study configuration is unreadable or inconsistent."""


@dataclass(frozen=True)
class ModelEntry:
    """One model of the study: a built-in random-weight config or a folder, with its task."""

    name: str
    source: str
    task: str


@dataclass(frozen=True)
class Repeats:
    """How often a point is timed: warm-up calls, then until `seconds` and `min_repeats`, at most `max_repeats`."""

    warmup: int
    min_repeats: int
    max_repeats: int
    seconds: float


@dataclass(frozen=True)
class Shapes:
    """Batch sizes × sequence lengths."""

    batch_sizes: tuple[int, ...]
    seq_lens: tuple[int, ...]


@dataclass(frozen=True)
class InProcess:
    """The in-process points: the Runner at every precision and shape."""

    enabled: bool
    repeats: Repeats
    shapes: Shapes


@dataclass(frozen=True)
class CpuBaseline:
    """The CPU FP32 baseline: the fp32 engine on the CPU."""

    enabled: bool
    threads: int  # 0: every core this process may use
    repeats: Repeats
    shapes: Shapes


@dataclass(frozen=True)
class Served:
    """The served points: each variant through the server at these shapes and loads."""

    enabled: bool
    shapes: Shapes
    concurrency: tuple[int, ...]
    protocol: str
    load_generator: str
    single_model: bool
    window_s: float
    warmup_s: float
    stable_windows: int
    max_trials: int
    stability_pct: float


@dataclass(frozen=True)
class FidelitySettings:
    """What fidelity is measured on."""

    enabled: bool
    texts: int
    batch_size: int
    seq_lens: tuple[int, ...]
    seed: int = 0


@dataclass(frozen=True)
class ReportSettings:
    """What the report's findings are read at."""

    reference_seq_len: int
    latency_budgets_ms: tuple[float, ...]
    fp16_pays_at: float


@dataclass(frozen=True)
class StudyConfig:
    """A whole study: models × engines × precisions × shapes, and which kinds of point run."""

    name: str
    gpu: str
    engines: tuple[str, ...]
    kernels: str
    precisions: tuple[str, ...]
    models: tuple[ModelEntry, ...]
    vocab: Path | None
    inprocess: InProcess
    cpu: CpuBaseline
    served: Served
    fidelity: FidelitySettings
    report: ReportSettings


class _Table:
    """One TOML table read key by key; unknown keys are errors naming the table."""

    def __init__(self, raw: Mapping[str, Any], where: str, base: Path) -> None:
        if not isinstance(raw, Mapping):
            raise StudyConfigError(f"[{where}] must be a table")
        self.raw, self.where, self.base = raw, where, base
        self.used: set[str] = set()

    def get(self, key: str, kind: type, default: Any = None) -> Any:
        """The value of `key` checked against `kind` (a float also takes an integer), or `default`."""
        self.used.add(key)
        if key not in self.raw:
            if default is None:
                raise StudyConfigError(f"[{self.where}] needs {key}", hint="see tritonbench study --example")
            return default
        value = self.raw[key]
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            raise StudyConfigError(f"[{self.where}] {key} = {value!r} is not a {kind.__name__}")
        return value

    def positive_ints(self, key: str, default: tuple[int, ...] | None = None) -> tuple[int, ...]:
        """A non-empty list of positive integers."""
        values = self.get(key, list, list(default) if default is not None else None)
        if not values or any(not isinstance(v, int) or isinstance(v, bool) or v <= 0 for v in values):
            raise StudyConfigError(f"[{self.where}] {key} = {values!r}: give a non-empty list of positive integers")
        return tuple(dict.fromkeys(values))

    def strings(self, key: str, default: tuple[str, ...] | None = None) -> tuple[str, ...]:
        """A non-empty list of strings."""
        values = self.get(key, list, list(default) if default is not None else None)
        if not values or any(not isinstance(v, str) for v in values):
            raise StudyConfigError(f"[{self.where}] {key} = {values!r}: give a non-empty list of strings")
        return tuple(dict.fromkeys(values))

    def path(self, key: str) -> Path | None:
        """A path relative to the config file's folder; "" is None."""
        value = self.get(key, str, "")
        return (self.base / value).resolve() if value else None

    def choice(self, key: str, choices: tuple[str, ...], default: str | None = None) -> str:
        """One of `choices`."""
        value = self.get(key, str, default)
        if value not in choices:
            raise StudyConfigError(f"[{self.where}] {key} = {value!r}", hint=f"choose {' or '.join(choices)}")
        return str(value)

    def done(self) -> None:
        """Refuse keys nobody read: a misspelt setting must not pass for a default."""
        unknown = sorted(set(self.raw) - self.used)
        if unknown:
            raise StudyConfigError(
                f"[{self.where}] has unknown keys: {', '.join(unknown)}", hint="see tritonbench study --example"
            )


def _repeats(table: _Table, warmup: int, low: int, high: int, seconds: float) -> Repeats:
    repeats = Repeats(
        table.get("warmup", int, warmup),
        table.get("min_repeats", int, low),
        table.get("max_repeats", int, high),
        table.get("seconds", float, seconds),
    )
    if repeats.warmup < 0 or not 1 <= repeats.min_repeats <= repeats.max_repeats or repeats.seconds < 0:
        raise StudyConfigError(
            f"[{table.where}] {repeats}", hint="warmup >= 0, 1 <= min_repeats <= max_repeats, seconds >= 0"
        )
    return repeats


def _models(raw: Any, base: Path) -> tuple[ModelEntry, ...]:
    from builder.sources.tasks import TASKS

    if not isinstance(raw, list) or not raw:
        raise StudyConfigError("the study names no [[models]]", hint="see tritonbench study --example")
    entries = []
    for index, item in enumerate(raw):
        table = _Table(item, f"models #{index + 1}", base)
        name, source = table.get("name", str), table.get("source", str)
        entry = ModelEntry(name, source, table.choice("task", tuple(TASKS)))
        table.done()
        if not _NAME.fullmatch(name):
            raise StudyConfigError(f"model name {name!r}", hint="letters, digits, '.' and '-', at most 41 characters")
        if "/" in source or source.startswith((".", "~")):  # a folder, relative to the config file
            entry = ModelEntry(name, str((base / source).expanduser().resolve()), entry.task)
        entries.append(entry)
    names = [e.name for e in entries]
    if len(set(names)) != len(names):
        raise StudyConfigError(f"model names repeat: {names}", hint="give every model its own name")
    return tuple(entries)


def _study(table: _Table) -> dict[str, Any]:
    from builder.common.errors import ConfigError
    from builder.engines.python_torch import KERNELS as TORCH_KERNELS
    from builder.engines.python_torch import PRECISIONS as TORCH_PRECISIONS
    from builder.gpus import get_profile

    engines = table.strings("engines", STUDY_ENGINES)
    if set(engines) - set(STUDY_ENGINES):
        raise StudyConfigError(
            f"[study] engines = {list(engines)}: the study measures {', '.join(STUDY_ENGINES)} only",
            hint="it times the engine's own Runner in process; measure other engines with tritonbench sweep",
        )
    precisions = table.strings("precisions")
    unknown = set(precisions) - set(TORCH_PRECISIONS)
    if unknown:
        raise StudyConfigError(f"[study] unknown precisions {sorted(unknown)}", hint=f"choose {TORCH_PRECISIONS}")
    gpu = table.get("gpu", str)
    try:
        get_profile(gpu)
    except ConfigError as exc:
        raise StudyConfigError(f"[study] {exc.message}", hint=exc.hint) from None
    return {
        "name": table.get("name", str, "study"),
        "gpu": gpu,
        "engines": engines,
        "kernels": table.choice("kernels", TORCH_KERNELS, "fused"),
        "precisions": precisions,
        "vocab": table.path("vocab"),
    }


def _served(table: _Table) -> Served:
    from client.generators import GENERATORS

    served = Served(
        enabled=table.get("enabled", bool, True),
        shapes=Shapes(table.positive_ints("batch_sizes", (1, 32)), table.positive_ints("seq_lens", (128,))),
        concurrency=table.positive_ints("concurrency", (1,)),
        protocol=table.choice("protocol", ("grpc", "http"), "grpc"),
        load_generator=table.choice("load_generator", tuple(GENERATORS), "tritonbench"),
        single_model=table.get("single_model", bool, False),
        window_s=table.get("window_s", float, 0.5),
        warmup_s=table.get("warmup_s", float, 0.5),
        stable_windows=table.get("stable_windows", int, 3),
        max_trials=table.get("max_trials", int, 6),
        stability_pct=table.get("stability_pct", float, 10.0),
    )
    try:
        measurement_of(served)
    except ValueError as exc:
        raise StudyConfigError(f"[served] {exc}") from None
    return served


def measurement_of(served: Served) -> MeasurementConfig:
    """The served points' measurement windows."""
    from client.generators.measure import MeasurementConfig

    return MeasurementConfig(
        window_s=served.window_s,
        stability_pct=served.stability_pct,
        stable_windows=served.stable_windows,
        max_trials=served.max_trials,
        warmup_s=served.warmup_s,
    )


def parse_config(text: str, base: Path, source: str = "study config") -> StudyConfig:
    """A StudyConfig from TOML text; relative paths are read from `base`."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise StudyConfigError(f"{source} is not valid TOML: {exc}", hint="see tritonbench study --example") from None
    top = _Table(raw, source, base)
    study_table = _Table(top.get("study", dict), "study", base)
    study = _study(study_table)
    shapes = Shapes(study_table.positive_ints("batch_sizes"), study_table.positive_ints("seq_lens"))
    study_table.done()
    models = _models(top.get("models", list), base)
    sections = {name: _Table(top.get(name, dict, {}), name, base) for name in ("inprocess", "cpu", "served")}
    sections |= {name: _Table(top.get(name, dict, {}), name, base) for name in ("fidelity", "report")}
    inp, cpu, fid, rep = (sections[n] for n in ("inprocess", "cpu", "fidelity", "report"))

    def shapes_of(table: _Table) -> Shapes:
        return Shapes(
            table.positive_ints("batch_sizes", shapes.batch_sizes), table.positive_ints("seq_lens", shapes.seq_lens)
        )

    config = StudyConfig(
        **study,
        models=models,
        inprocess=InProcess(inp.get("enabled", bool, True), _repeats(inp, 10, 20, 300, 0.25), shapes_of(inp)),
        cpu=CpuBaseline(cpu.get("enabled", bool, True), cpu.get("threads", int, 0), _repeats(cpu, 1, 2, 5, 0.5),
                        shapes_of(cpu)),
        served=_served(sections["served"]),
        fidelity=FidelitySettings(
            enabled=fid.get("enabled", bool, True),
            texts=fid.get("texts", int, 64),
            batch_size=fid.get("batch_size", int, 16),
            seq_lens=fid.positive_ints("seq_lens", shapes.seq_lens),
        ),
        report=ReportSettings(
            reference_seq_len=rep.get("reference_seq_len", int, 128),
            latency_budgets_ms=tuple(float(b) for b in rep.get("latency_budgets_ms", list, [1, 2, 5, 10])),
            fp16_pays_at=rep.get("fp16_pays_at", float, 1.1),
        ),
    )  # fmt: skip
    for table in (top, *sections.values()):
        table.done()
    if config.cpu.threads < 0 or config.fidelity.texts < 2 or config.fidelity.batch_size < 1:
        raise StudyConfigError("[cpu] threads >= 0, [fidelity] texts >= 2 and batch_size >= 1, please")
    return config


def load_config(path: Path) -> StudyConfig:
    """The study configured in the TOML file at `path`."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise StudyConfigError(
            f"cannot read {path}: {exc.strerror}", hint="tritonbench study --example > study.toml writes one"
        ) from None
    return parse_config(text, path.resolve().parent, str(path))


def default_config(base: Path | None = None) -> StudyConfig:
    """The example: the first seed's design."""
    return parse_config(EXAMPLE, base or Path.cwd(), "the example config")
