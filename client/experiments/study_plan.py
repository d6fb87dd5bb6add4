"""Plan a study: a pure function from its configuration to the list of points, each with a time estimate.

Nothing here builds, loads or measures. The plan fixes the order points run in (the CPU baseline first,
before any CUDA graph exists in the process; then fidelity, in-process, served), what each needs set up
once (a repository variant, a loaded engine, the server), and what the host or the GPU profile cannot do.
`within_budget` keeps a prefix of the pending points that fits `--max-minutes`: a rerun of the same
command measures the rest, since the store skips finished points.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from builder.gpus import get_profile
from builder.sources.archs import ModelDims
from client.experiments.study_config import ModelEntry, Repeats, StudyConfig, StudyConfigError

KINDS = ("cpu", "fidelity", "memory", "inprocess", "served")  # the order points run in
MEASURED = ("inprocess", "cpu", "served", "fidelity")  # configurations; "memory" is one record per variant


def study_key(
    kind: str,
    model: str,
    engine: str,
    precision: str,
    batch_size: int | None,
    seq_len: int | None,
    concurrency: int | None,
) -> tuple[Any, ...]:
    """The identity of a study point in the store: a rerun skips points whose key is there."""
    return (kind, model, engine, precision, batch_size, seq_len, concurrency)


@dataclass(frozen=True)
class HostFacts:
    """What planning needs to know of the machine: a CUDA device, cores, and whether a server runs here."""

    gpu: bool
    cores: int
    local_server: bool = True  # False with --url: the server runs elsewhere


@dataclass(frozen=True)
class Variant:
    """One deployment of a model: engine and precision, served under `name` (its ensemble)."""

    model: ModelEntry
    engine: str
    precision: str

    @property
    def name(self) -> str:
        """The ensemble's name in the study's repository."""
        return f"{self.model.name}_{self.precision}"


@dataclass(frozen=True)
class StudyPoint:
    """One point to measure, what it needs set up first (shared with others), and its estimated seconds."""

    kind: str
    model: str
    engine: str
    precision: str
    batch_size: int | None = None
    seq_len: int | None = None
    concurrency: int | None = None
    estimate_s: float = 0.0
    setups: tuple[str, ...] = ()

    @property
    def key(self) -> tuple[Any, ...]:
        """The store key this point's record will have."""
        return study_key(
            self.kind, self.model, self.engine, self.precision, self.batch_size, self.seq_len, self.concurrency
        )

    @property
    def label(self) -> str:
        """Short, for progress lines: "inprocess bert-base fp16 b8 s128"."""
        parts = [self.kind, self.model, self.precision]
        parts += [f"{p}{v}" for p, v in (("b", self.batch_size), ("s", self.seq_len), ("c", self.concurrency)) if v]
        return " ".join(parts)


@dataclass(frozen=True)
class Speeds:
    """Rates the estimates are made with: rough, from this project's H100/H200 and CPU runs (FACTS.md).

    A plan's minutes say how long to expect, not what was measured; the progress bar corrects its ETA
    with the ratio of measured to estimated time as points finish.
    """

    gpu_tflops: Mapping[str, float] = field(
        default_factory=lambda: {"fp32": 50.0, "fp16": 400.0, "hybrid": 380.0, "bf16": 400.0}
    )
    graph_floor_ms: float = 0.45  # a Runner call at a small shape (BERT-base 1 × 128: 0.48 ms on an H200)
    eager_floor_ms: float = 8.0  # an eager forward on a GPU: launch-bound (5-11 ms whatever the shape)
    cpu_gflops_per_core: float = 30.0  # BERT-base 1 × 128 in 42 ms on 16 cores
    cpu_floor_ms: float = 1.0
    load_s: float = 3.0  # load a model from disk and cast it
    compile_s: float = 8.0  # torch.compile of the fused norms, per variant on a GPU
    build_s: float = 3.0  # make-repo of one variant (save_pretrained of its weights)
    make_model_s: float = 5.0  # a built-in random-weight model: init, save, a tokenizer
    server_start_s: float = 20.0
    server_variant_s: float = 8.0  # per served variant: stubs start, graphs captured in parallel


@dataclass(frozen=True)
class StudyPlan:
    """The points in running order, the setups they share, and what was left out and why."""

    points: tuple[StudyPoint, ...]
    setup_s: Mapping[str, float]
    skipped: tuple[str, ...]  # what the configuration asked for that this host or GPU profile cannot do
    device: str  # where in-process points run: "cuda" or "cpu"
    variants: tuple[Variant, ...]

    def estimate_s(self, points: Iterable[StudyPoint] | None = None) -> float:
        """Seconds for `points` (default: all) with each setup they need counted once."""
        chosen = list(self.points if points is None else points)
        setups = {s for p in chosen for s in p.setups}
        return sum(p.estimate_s for p in chosen) + sum(self.setup_s[s] for s in setups)

    def counts(self, points: Iterable[StudyPoint] | None = None) -> Counter[str]:
        """Points per kind."""
        return Counter(p.kind for p in (self.points if points is None else points))


def _timed(repeats: Repeats, call_s: float) -> float:
    """Seconds to time one point: warm-up, then calls until `seconds` and `min_repeats`, at most `max_repeats`."""
    calls = min(repeats.max_repeats, max(repeats.min_repeats, int(repeats.seconds / call_s) + 1))
    return (repeats.warmup + calls) * call_s


class _Costs:
    """Estimated seconds of each kind of point for one configuration on one host."""

    def __init__(self, config: StudyConfig, dims: Mapping[str, ModelDims], host: HostFacts, speeds: Speeds) -> None:
        self.config, self.dims, self.host, self.speeds = config, dims, host, speeds
        threads = config.cpu.threads or host.cores
        self.cpu_flops = speeds.cpu_gflops_per_core * 1e9 * threads

    def _flops(self, model: ModelEntry, batch: int, seq: int) -> float:
        return self.dims[model.name].forward_flops(batch, seq, batch if model.task == "causal-lm" else 0)

    def call_s(self, model: ModelEntry, precision: str, batch: int, seq: int, device: str) -> float:
        """One forward at this shape: the Runner on a GPU (graphs), or eager on the CPU."""
        flops = self._flops(model, batch, seq)
        if device == "cuda":
            return max(self.speeds.graph_floor_ms / 1e3, flops / (self.speeds.gpu_tflops[precision] * 1e12))
        return max(self.speeds.cpu_floor_ms / 1e3, flops / self.cpu_flops)

    def inprocess(self, model: ModelEntry, precision: str, batch: int, seq: int, device: str) -> float:
        call = self.call_s(model, precision, batch, seq, device)
        peak = max(self.speeds.eager_floor_ms / 1e3, call) if device == "cuda" else 0.0  # the memory forward
        return _timed(self.config.inprocess.repeats, call) + peak

    def cpu(self, model: ModelEntry, batch: int, seq: int) -> float:
        return _timed(self.config.cpu.repeats, self.call_s(model, "fp32", batch, seq, "cpu"))

    def fidelity(self, model: ModelEntry, precision: str, seq: int, device: str) -> float:
        """Real text and random ids × task and trunk views × the FP32 reference and the candidate, eagerly."""
        f = self.config.fidelity
        rows = min(f.batch_size, f.texts)
        batches = -(-f.texts // rows)
        per_batch = sum(self.call_s(model, p, rows, seq, device) for p in ("fp32", precision))
        floor = 2 * self.speeds.eager_floor_ms / 1e3 if device == "cuda" else 0.0
        return 2 * 2 * batches * (per_batch + floor)

    def capture_s(self, model: ModelEntry, precision: str, device: str) -> float:
        """Loading a variant's engine, and on a GPU capturing one graph per shape (twice for encoders)."""
        if device != "cuda":
            return self.speeds.load_s
        shapes = self.config.inprocess.shapes
        per_shape = 3 * (1 if model.task == "causal-lm" else 2)  # 2 warm-up forwards + capture; masked and full
        capture = sum(
            per_shape * max(self.speeds.eager_floor_ms / 1e3, self.call_s(model, precision, b, s, device))
            for b in shapes.batch_sizes
            for s in shapes.seq_lens
        )
        return self.speeds.load_s + self.speeds.compile_s + capture

    def served(self) -> float:
        s = self.config.served
        return s.warmup_s + s.window_s * (s.stable_windows + 1) + 0.3


def _check_shapes(config: StudyConfig, dims: Mapping[str, ModelDims]) -> None:
    profile = get_profile(config.gpu)
    batches = config.inprocess.shapes.batch_sizes + config.cpu.shapes.batch_sizes + config.served.shapes.batch_sizes
    if max(batches) > profile.max_batch_size:
        raise StudyConfigError(
            f"batch size {max(batches)} exceeds the {profile.max_batch_size} of GPU profile {profile.name}",
            hint="lower the batch sizes, or choose a profile with a larger max_batch_size",
        )
    lengths = (
        config.inprocess.shapes.seq_lens
        + config.cpu.shapes.seq_lens
        + config.served.shapes.seq_lens
        + config.fidelity.seq_lens
    )
    for model in config.models:
        limit = dims[model.name].max_positions
        if max(lengths) > limit:
            raise StudyConfigError(
                f"sequence length {max(lengths)} exceeds the {limit} positions of {model.name}",
                hint=f"keep seq_lens at or below {limit}",
            )


def _variants(config: StudyConfig, skipped: list[str]) -> list[Variant]:
    profile = get_profile(config.gpu)
    precisions = list(config.precisions)
    if "bf16" in precisions and not profile.bf16:
        precisions.remove("bf16")
        skipped.append(f"bf16: GPU profile {profile.name} has no BF16")
    return [Variant(m, e, p) for m in config.models for e in config.engines for p in precisions]


class _Planner:
    """Points of each kind for one configuration, and the setups they share (each estimated once)."""

    def __init__(self, config: StudyConfig, costs: _Costs, built: frozenset[str], variants: list[Variant]) -> None:
        self.config, self.costs, self.built, self.variants = config, costs, built, variants
        self.setup_s: dict[str, float] = {}

    def setup(self, name: str, seconds: float) -> str:
        self.setup_s[name] = 0.0 if name in self.built else seconds
        return name

    def build(self, variant: Variant) -> tuple[str, ...]:
        """A variant's repository (and its built-in model first)."""
        sp = self.costs.speeds
        made = (self.setup(f"model:{variant.model.name}", sp.make_model_s),) if _is_builtin(variant.model) else ()
        return (*made, self.setup(f"build:{variant.name}", sp.build_s))

    def cpu(self) -> list[StudyPoint]:
        points = []
        for model in self.config.models:
            fp32 = Variant(model, self.config.engines[0], "fp32")  # the baseline is FP32 whatever is studied
            needs = (*self.build(fp32), self.setup(f"cpu:{model.name}", self.costs.speeds.load_s))
            s = self.config.cpu.shapes
            points += [
                StudyPoint("cpu", model.name, fp32.engine, "fp32", b, n, None, self.costs.cpu(model, b, n), needs)
                for n in s.seq_lens
                for b in s.batch_sizes
            ]
        return points

    def fidelity(self, device: str) -> list[StudyPoint]:
        points = []
        for v in self.variants:
            reference = self.setup(f"reference:{v.model.name}", self.costs.speeds.load_s)
            needs = (*self.build(v), reference, self.setup(f"fidelity:{v.name}", self.costs.speeds.load_s))
            points += [
                StudyPoint("fidelity", v.model.name, v.engine, v.precision, None, n, None,
                           self.costs.fidelity(v.model, v.precision, n, device), needs)
                for n in self.config.fidelity.seq_lens
            ]  # fmt: skip
        return points

    def inprocess(self, device: str) -> list[StudyPoint]:
        points = []
        s = self.config.inprocess.shapes
        for v in self.variants:
            engine = self.setup(f"inprocess:{v.name}", self.costs.capture_s(v.model, v.precision, device))
            needs = (*self.build(v), engine)
            points.append(StudyPoint("memory", v.model.name, v.engine, v.precision, None, None, None, 0.1, needs))
            points += [
                StudyPoint("inprocess", v.model.name, v.engine, v.precision, b, n, None,
                           self.costs.inprocess(v.model, v.precision, b, n, device), needs)
                for n in s.seq_lens
                for b in s.batch_sizes
            ]  # fmt: skip
        return points

    def served(self, local_server: bool) -> list[StudyPoint]:
        sp, s = self.costs.speeds, self.config.served
        start = sp.server_start_s + sp.server_variant_s * len(self.variants)
        server = self.setup("server", start if local_server else 0.0)
        return [
            StudyPoint("served", v.model.name, v.engine, v.precision, b, n, c, self.costs.served(),
                       (*self.build(v), server))
            for v in self.variants
            for n in s.shapes.seq_lens
            for b in s.shapes.batch_sizes
            for c in s.concurrency
        ]  # fmt: skip


def plan_study(
    config: StudyConfig,
    dims: Mapping[str, ModelDims],
    host: HostFacts,
    built: frozenset[str] = frozenset(),
    speeds: Speeds | None = None,
) -> StudyPlan:
    """Every point of `config` in running order, with estimates for `host`.

    `dims` gives each model's sizes (by name); `built` names setups already done (a variant's repository,
    a built-in model), which then cost nothing.
    """
    _check_shapes(config, dims)
    skipped: list[str] = []
    variants = _variants(config, skipped)
    profile = get_profile(config.gpu)
    if config.served.enabled and profile.is_gpu and not host.gpu and host.local_server:
        raise StudyConfigError(
            f"GPU profile {profile.name} places the served models on a GPU, and this host has none",
            hint='set gpu = "cpu" in [study], disable [served], or measure a GPU server with --url',
        )
    device = "cuda" if host.gpu else "cpu"
    if profile.is_gpu and not host.gpu:
        skipped.append(f"no GPU here: in-process points of GPU profile {profile.name} run on the CPU")
    planner = _Planner(config, _Costs(config, dims, host, speeds or Speeds()), built, variants)
    points = [
        *(planner.cpu() if config.cpu.enabled else []),
        *(planner.fidelity(device) if config.fidelity.enabled else []),
        *(planner.inprocess(device) if config.inprocess.enabled else []),
        *(planner.served(host.local_server) if config.served.enabled else []),
    ]
    return StudyPlan(tuple(points), planner.setup_s, tuple(skipped), device, tuple(variants))


def _is_builtin(model: ModelEntry) -> bool:
    from builder.sources.random_models import RANDOM_MODELS

    return model.source in RANDOM_MODELS


def pending(plan: StudyPlan, done: set[tuple[Any, ...]]) -> list[StudyPoint]:
    """The plan's points not yet in the store, in running order."""
    return [p for p in plan.points if p.key not in done]


def point_costs(plan: StudyPlan, points: Sequence[StudyPoint]) -> list[float]:
    """Each point's estimate plus the setups it is the first of `points` to need, in order."""
    seen: set[str] = set()
    costs = []
    for point in points:
        new = [s for s in point.setups if s not in seen]
        seen.update(new)
        costs.append(point.estimate_s + sum(plan.setup_s[s] for s in new))
    return costs


def within_budget(
    plan: StudyPlan, points: Sequence[StudyPoint], minutes: float | None
) -> tuple[list[StudyPoint], list[StudyPoint]]:
    """The longest prefix of `points` whose estimate (setups included, once each) fits `minutes`, and the rest.

    A prefix, not a selection: what is dropped is what a rerun of the same command measures next.
    """
    if minutes is None:
        return list(points), []
    spent = 0.0
    for index, cost in enumerate(point_costs(plan, points)):
        if spent + cost > minutes * 60:
            return list(points[:index]), list(points[index:])
        spent += cost
    return list(points), []


def eta_s(estimated_done: float, real_done: float, estimated_left: float) -> float:
    """Seconds left: the estimate of what is left, scaled by how measured time compared with the estimate so far."""
    if estimated_done <= 0 or real_done <= 0:
        return max(estimated_left, 0.0)
    return max(estimated_left, 0.0) * real_done / estimated_done


def describe(plan: StudyPlan, points: Sequence[StudyPoint]) -> str:
    """How many points of each kind `points` are, and their estimated minutes."""
    if not points:
        return "nothing"
    counts = plan.counts(points)
    kinds = ", ".join(f"{counts[k]} {k}" for k in KINDS if counts[k])
    configurations = sum(counts[k] for k in MEASURED)
    return (
        f"{len(points)} points ({kinds}; {configurations} configurations), about {plan.estimate_s(points) / 60:.1f} min"
    )
