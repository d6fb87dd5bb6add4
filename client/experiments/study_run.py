"""Run a planned study: build each variant with make-repo, measure its points, append each to the one store.

Side effects live here, in phases that hold their resources only as long as their points need them:
the CPU baseline (the fp32 engine on the CPU, before any CUDA graph exists in this process), fidelity
(reference and variant loaded per model), in process (each variant's Runner, graphs captured once), and
served (one server for every variant). Every point is appended to the store as soon as it is measured;
a kill loses at most the point in flight, and the same command again skips what the store holds.
"""

from __future__ import annotations

import itertools
import os
import platform
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tqdm import tqdm

from builder.common.errors import UserError
from builder.contract.manifest import MANIFEST, Manifest, package_versions
from builder.sources.archs import ModelDims, get_arch
from client.experiments.study_config import StudyConfig
from client.experiments.study_plan import (
    HostFacts,
    StudyPlan,
    StudyPoint,
    Variant,
    describe,
    eta_s,
    pending,
    plan_study,
    point_costs,
    within_budget,
)
from client.experiments.study_records import Latency, StudyRecord, study_store
from client.records import ResultStore

Echo = Callable[[str], None]


class StudyError(UserError):
    """A study stopped early; what it measured is in the store and the same command resumes."""


@dataclass(frozen=True)
class StudyPaths:
    """Where a study writes: the store and the report in `out`, models and the repository in `work`."""

    out: Path
    work: Path

    @property
    def repo(self) -> Path:
        """The one model repository every variant is built into."""
        return self.work / "repo"

    @property
    def models(self) -> Path:
        """Built-in random-weight models, made once."""
        return self.work / "models"

    @property
    def report(self) -> Path:
        """report.md, report.html and the charts."""
        return self.out / "report"


@dataclass(frozen=True)
class StudyOptions:
    """How this run goes: a time budget, a running server instead of the bundled one, progress bars."""

    max_minutes: float | None = None
    url: str | None = None
    metrics_url: str | None = None
    progress: bool = True


def host_facts(url: str | None) -> HostFacts:
    """What the planner needs to know of this machine."""
    import torch

    return HostFacts(torch.cuda.is_available(), len(os.sched_getaffinity(0)), local_server=url is None)


def model_dims(config: StudyConfig) -> dict[str, ModelDims]:
    """Each model's sizes: from the built-in table, or from its folder's config (and tokenizer's limit)."""
    from builder.sources.random_models import RANDOM_MODELS
    from builder.sources.source import inspect_model

    dims = {}
    for model in config.models:
        if model.source in RANDOM_MODELS:
            dims[model.name] = RANDOM_MODELS[model.source].dims(model.task)
            continue
        from transformers import AutoConfig

        info = inspect_model(model.source, model.task)
        found = get_arch(info.model_type, model.task).dims(AutoConfig.from_pretrained(info.path))
        dims[model.name] = ModelDims(found.layers, found.hidden, found.intermediate, found.vocab, info.max_length)
    return dims


def _utc() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Progress:
    """A bar over the run's points, its ETA the plan's estimate of what is left scaled by measured/estimated."""

    def __init__(self, plan: StudyPlan, points: Sequence[StudyPoint], enabled: bool, echo: Echo) -> None:
        self.costs = dict(zip((p.key for p in points), point_costs(plan, points), strict=True))
        self.left = sum(self.costs.values())
        self.estimated_done, self.count, self.total = 0.0, 0, len(points)
        self.started = time.perf_counter()
        self.echo = echo
        self.bar = tqdm(total=len(points), unit="point", disable=not enabled or not points, dynamic_ncols=True)

    def note(self, message: str) -> None:
        """A line above the bar."""
        if self.bar.disable:
            self.echo(message)
        else:
            self.bar.write(message)

    def done(self, point: StudyPoint, result: str) -> None:
        """One more point finished: move the bar (or print a line without one), recompute the ETA."""
        cost = self.costs.get(point.key, 0.0)
        self.estimated_done, self.left = self.estimated_done + cost, self.left - cost
        eta = eta_s(self.estimated_done, time.perf_counter() - self.started, self.left)
        self.count += 1
        if self.bar.disable:
            self.echo(f"[{self.count}/{self.total}] {point.label}: {result}; ETA {eta / 60:.1f} min")
        self.bar.set_postfix_str(f"{point.label}: {result}; ETA {eta / 60:.1f} min", refresh=False)
        self.bar.update()

    def close(self) -> None:
        """Finish the bar."""
        self.bar.close()


@dataclass
class _Run:
    """The state of one run: configuration, plan, store, progress."""

    config: StudyConfig
    plan: StudyPlan
    paths: StudyPaths
    options: StudyOptions
    store: ResultStore[StudyRecord]
    progress: Progress
    measured: int = 0
    versions: dict[str, str] = field(default_factory=package_versions)

    # ---------------------------------------------------------------------------------- repositories

    def source(self, variant: Variant) -> str:
        """The model's folder: a built-in one is made on first use."""
        from builder.sources.random_models import RANDOM_MODELS, make_random_model

        model = variant.model
        if model.source not in RANDOM_MODELS:
            return model.source
        dest = self.paths.models / f"{model.name}-{model.task}"
        if not (dest / "config.json").is_file():
            self.progress.note(f"making the built-in {model.source} ({model.task}, random weights) in {dest}")
        return str(make_random_model(model.source, model.task, dest, self.config.vocab))

    def built(self, variant: Variant) -> bool:
        """Whether the repository already holds this variant as configured (a rerun then skips make-repo)."""
        return is_built(variant, self.config, self.paths)

    def ensure_built(self, variant: Variant) -> Path:
        """The variant's model folder, built through make-repo's planning when missing or different."""
        from builder.precision.fidelity import FidelityOptions
        from builder.repository.options import ServingOptions
        from builder.repository.pipeline import make_repo

        if not self.built(variant):
            self.progress.note(f"make-repo {variant.name} ({variant.engine}, {variant.precision}, {self.config.gpu})")
            log = self.paths.work / "make_repo.log"
            with log.open("a") as sink:
                make_repo(
                    self.source(variant),
                    variant.model.task,
                    variant.name,
                    variant.engine,
                    self.config.gpu,
                    self.paths.repo,
                    force=True,
                    trust_remote_code=False,
                    echo=lambda line: print(line, file=sink, flush=True),
                    precision=variant.precision,
                    # the study measures fidelity itself, on both input kinds, for every variant it reports
                    fidelity=FidelityOptions(enabled=False),
                    serving=ServingOptions(kernels=self.config.kernels, single_model=self.config.served.single_model),
                )
        return self.paths.repo / f"{variant.name}_model"

    # ---------------------------------------------------------------------------------------- records

    def record(self, point: StudyPoint, device: str, started: float, **parts: Any) -> None:
        """Append the point's record to the store (flushed), then move the progress bar."""
        record = StudyRecord.of(
            point,
            device,
            host=platform.node(),
            timestamp=_utc(),
            seconds=time.perf_counter() - started,
            versions=self.versions,
            **parts,
        )
        self.store.append(record)
        self.measured += 1
        self.progress.done(point, outcome(record))

    def variant(self, point: StudyPoint) -> Variant:
        """The variant a point measures (the CPU baseline's is the fp32 one)."""
        model = next(m for m in self.config.models if m.name == point.model)
        return Variant(model, point.engine, point.precision)

    # ----------------------------------------------------------------------------------------- phases

    def threads(self, device: str) -> None:
        """Set torch's pool for work on `device`, whichever phase ran before in this process.

        One thread beside a GPU (the GPU stub's own rule, tritonbuild_backend.thread_count); [cpu] threads,
        or every core, on the CPU.
        """
        import torch

        torch.set_num_threads(1 if device == "cuda" else self.config.cpu.threads or len(os.sched_getaffinity(0)))

    def cpu(self, points: Sequence[StudyPoint]) -> None:
        """The CPU baseline: the fp32 engine on every core (or [cpu] threads), eagerly."""
        import torch

        from client.experiments.study_engine import device_name, load_engine, release, time_runner

        self.threads("cpu")
        cpu = torch.device("cpu")
        for _, group in itertools.groupby(points, key=lambda p: p.model):
            todo = list(group)
            engine = load_engine(self.ensure_built(self.variant(todo[0])), cpu)
            runner = engine.runner(self.config.cpu.shapes)
            for point in todo:
                started = time.perf_counter()
                assert point.batch_size and point.seq_len
                timed = time_runner(runner, point.batch_size, point.seq_len, engine.vocab_size, self.config.cpu.repeats)
                self.record(point, device_name(cpu), started, latency=timed.latency, calls=timed.calls,
                            throughput_seq_per_s=timed.seq_per_s)  # fmt: skip
            del runner, engine
            release(cpu)

    def fidelity(self, points: Sequence[StudyPoint]) -> None:
        """Each variant against its model's FP32 reference, on real text and random ids, per length."""
        import torch

        from client.experiments.study_engine import device_name, load_engine, release
        from client.experiments.study_fidelity import Reference, exact_length_inputs, measure_fidelity
        from client.targets.inputs import find_tokenizer

        device = torch.device(self.plan.device)
        self.threads(device.type)
        for _, by_model in itertools.groupby(points, key=lambda p: p.model):
            todo = list(by_model)
            first = self.variant(todo[0])
            self.ensure_built(first)
            reference = Reference.load(self.source(first), first.model.task, device)
            inputs: dict[int, list] = {}
            for _, by_variant in itertools.groupby(todo, key=lambda p: p.precision):
                mine = list(by_variant)
                variant = self.variant(mine[0])
                engine = load_engine(self.ensure_built(variant), device)
                tokenizer = find_tokenizer(variant.name, None, self.paths.repo)
                assert tokenizer is not None
                for point in mine:
                    started = time.perf_counter()
                    assert point.seq_len
                    if point.seq_len not in inputs:
                        inputs[point.seq_len] = exact_length_inputs(
                            tokenizer, reference.info, point.seq_len, self.config.fidelity
                        )
                    metrics = measure_fidelity(reference, engine, point.seq_len, inputs[point.seq_len])
                    self.record(point, device_name(device), started, fidelity=metrics,
                                fidelity_texts=self.config.fidelity.texts)  # fmt: skip
                del engine
                release(device)
            del reference
            release(device)

    def inprocess(self, points: Sequence[StudyPoint]) -> None:
        """Each variant's Runner: peak memory per shape (eager, before graphs), then graphs, then timing."""
        import torch

        from client.experiments.study_engine import (
            device_name,
            load_engine,
            peak_allocated_mb,
            release,
            time_runner,
            variant_memory,
        )

        device = torch.device(self.plan.device)
        self.threads(device.type)
        settings = self.config.inprocess
        for _, group in itertools.groupby(points, key=lambda p: (p.model, p.precision)):
            todo = list(group)
            folder = self.ensure_built(self.variant(todo[0]))
            engine = load_engine(folder, device)
            shapes = [(p.batch_size, p.seq_len) for p in todo if p.kind == "inprocess"]
            peaks = {shape: peak_allocated_mb(engine, *shape) for shape in shapes}  # type: ignore[arg-type]
            runner = engine.runner(settings.shapes)
            for point in todo:
                started = time.perf_counter()
                if point.kind == "memory":
                    memory = variant_memory(engine, runner, folder)
                    self.record(point, device_name(device), started, memory=memory)
                    continue
                assert point.batch_size and point.seq_len
                timed = time_runner(runner, point.batch_size, point.seq_len, engine.vocab_size, settings.repeats)
                self.record(point, device_name(device), started, latency=timed.latency, calls=timed.calls,
                            throughput_seq_per_s=timed.seq_per_s,
                            peak_allocated_mb=peaks[(point.batch_size, point.seq_len)])  # fmt: skip
            del runner, engine
            release(device)

    def server_device(self) -> str:
        """What the bundled server runs its models on."""
        import torch

        from client.experiments.study_engine import device_name

        return device_name(torch.device(self.plan.device)) if self.plan.device == "cuda" else "the CPU"

    def served(self, points: Sequence[StudyPoint]) -> None:
        """Every served point against one server that serves every variant from the one repository."""
        from client.experiments.study_served import ServedMeasurer, serving, variant_gpu_mb

        for variant in dict.fromkeys(self.variant(p) for p in points):
            self.ensure_built(variant)
        served = self.config.served
        where = self.options.url or "the bundled tritonserver"
        self.progress.note(f"serving {len({p.model + p.precision for p in points})} variants from {where}")
        log = self.paths.out / "tritonserver.log"
        with serving(self.paths.repo, served, self.options.url, self.options.metrics_url, log) as endpoint:
            measurer = ServedMeasurer(endpoint, self.paths.repo, served)
            device = (
                f"tritonserver at {endpoint.url}" if self.options.url else f"tritonserver on {self.server_device()}"
            )
            for point in points:
                started = time.perf_counter()
                name = self.variant(point).name
                assert point.batch_size and point.seq_len and point.concurrency
                found = measurer.measure(name, point.batch_size, point.seq_len, point.concurrency)
                if found is None:
                    self.progress.note(
                        f"{point.label}: {served.load_generator} never settled; not stored (a rerun retries it)"
                    )
                    continue
                latency = Latency(found.latency_avg_ms, found.latency_p50_ms, found.latency_p90_ms,
                                  found.latency_p95_ms, found.latency_p99_ms, found.latency_max_ms)  # fmt: skip
                self.record(point, device, started, latency=latency, calls=found.requests,
                            throughput_seq_per_s=found.throughput_seq_per_s, served=found,
                            served_gpu_mb=variant_gpu_mb(self.paths.repo, name))  # fmt: skip


def outcome(record: StudyRecord) -> str:
    """A few words on what a point measured, for the progress line."""
    if record.latency is not None:
        return f"p50 {record.latency.p50_ms:.3f} ms, {record.throughput_seq_per_s or 0:,.0f} seq/s"
    if record.memory is not None:
        return f"{record.memory.weights_mb:,.0f} MB of weights, {record.memory.graphs} graphs"
    cosines = [m.min_cosine for m in record.fidelity]
    return f"min cosine {min(cosines):.7f}" if cosines else "measured"


def is_built(variant: Variant, config: StudyConfig, paths: StudyPaths) -> bool:
    """Whether `paths.repo` holds `variant` as `config` builds it (make-repo publishes atomically)."""
    from client.experiments.study_engine import model_parameters

    manifest = paths.repo / variant.name / MANIFEST
    if not manifest.is_file():
        return False
    found = Manifest.read(paths.repo, variant.name)
    single = not (paths.repo / f"{variant.name}_tokenizer").is_dir()
    kernels = model_parameters(paths.repo / f"{variant.name}_model").get("kernels")
    return (found.engine, found.precision, found.gpu, found.task, kernels, single) == (
        variant.engine,
        variant.precision,
        config.gpu,
        variant.model.task,
        config.kernels,
        config.served.single_model,
    )


def built_setups(plan: StudyPlan, config: StudyConfig, paths: StudyPaths) -> frozenset[str]:
    """Setups a rerun need not repeat: built repository variants and made built-in models."""
    done = {f"build:{v.name}" for v in plan.variants if is_built(v, config, paths)}
    made = [m for m in config.models if (paths.models / f"{m.name}-{m.task}" / "config.json").is_file()]
    done |= {f"model:{m.name}" for m in made}
    return frozenset(done)


def prepare(config: StudyConfig, paths: StudyPaths, options: StudyOptions) -> StudyPlan:
    """The plan for this host, with what is already built costing nothing."""
    host, dims = host_facts(options.url), model_dims(config)
    first = plan_study(config, dims, host)
    return plan_study(config, dims, host, built=built_setups(first, config, paths))


def _configure_torch(device: str) -> None:
    """FP32 is strict FP32 on the GPU (TF32 off), as the fidelity reference; many models compile in one process."""
    import torch

    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch._dynamo.config.recompile_limit = 64


def _phases(run: _Run) -> Iterable[tuple[str, Callable[[Sequence[StudyPoint]], None]]]:
    return (("cpu", run.cpu), ("fidelity", run.fidelity), ("inprocess", run.inprocess), ("served", run.served))


def run_study(config: StudyConfig, paths: StudyPaths, options: StudyOptions, echo: Echo) -> StudyPlan:
    """Measure every planned point missing from the store (within --max-minutes), appending each as it finishes."""
    plan = prepare(config, paths, options)
    store = study_store(paths.out)
    store.ensure_writable()
    paths.work.mkdir(parents=True, exist_ok=True)
    done = store.done_keys()
    todo, dropped = within_budget(plan, pending(plan, done), options.max_minutes)
    echo(f"study {config.name}: {describe(plan, plan.points)} on {plan.device}; {len(done)} already in {store.path}")
    for line in plan.skipped:
        echo(f"  left out: {line}")
    echo(f"to measure now: {describe(plan, todo)}")
    if dropped:
        echo(f"beyond --max-minutes {options.max_minutes:g}: {describe(plan, dropped)}; the same command continues")
    _configure_torch(plan.device)
    progress = Progress(plan, todo, options.progress, echo)
    run = _Run(config, plan, paths, options, store, progress)
    try:
        for kind, phase in _phases(run):
            mine = [p for p in todo if p.kind == kind or (kind == "inprocess" and p.kind == "memory")]
            if mine:
                phase(mine)
    except UserError as exc:
        raise StudyError(
            f"{exc.message}\n{run.measured} point(s) of this run are saved in {store.path}",
            hint=(exc.hint + "; " if exc.hint else "") + "then run the same command again: finished points are skipped",
        ) from exc
    except KeyboardInterrupt:
        raise StudyError(
            f"interrupted; {run.measured} point(s) of this run are saved in {store.path}",
            hint="run the same command again: finished points are skipped",
        ) from None
    finally:
        progress.close()
    return plan
