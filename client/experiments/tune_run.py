"""Run a tuning search: every candidate built by make-repo, swapped into one server, measured by the sweep code.

One tritonserver serves OUT/repo under explicit model control and starts with nothing loaded. For each candidate the
search (client.experiments.tune_search) asks for: make-repo plans and writes it as deployment `tune-<id>` (its
options are ServingOptions: never edited config text), the repository API loads it (the last one was unloaded
first), and client.sweep.run_sweep measures it with the texts at the concurrency levels the concurrency search asks
for. Its record goes to OUT/tune.jsonl as soon as it is measured, so an interrupted search resumes where it stopped.
Then the default and the chosen one are measured again back to back, the chosen one is built as NAME in OUT/repo
(its manifest records what was chosen and measured), loaded and queried, and the report is written.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from builder.common.errors import UserError
from builder.contract.manifest import MANIFEST, Manifest
from builder.engines import BACKENDS, names
from builder.gpus import GpuProfile, get_profile
from builder.repository.options import ServingOptions
from builder.serving.server import TritonServer
from client.experiments.gpu_memory import compute_apps, model_gpu_mb
from client.experiments.tune_records import (
    CANDIDATE,
    CONFIRM,
    FINISH,
    POINTS_FILE,
    SEARCH,
    TuneRecord,
    settings_digest,
    tune_store,
)
from client.experiments.tune_report import TuneReport, write_tune_report
from client.experiments.tune_search import OK, LoadPoint, Outcome, choose, next_candidate, next_concurrency
from client.experiments.tune_server import ModelControl, ModelControlError
from client.experiments.tune_settings import CANDIDATE_PREFIX, TuneSettings, command_line, rebuild_command
from client.experiments.tune_space import Candidate, Space, SpaceInputs, build_space
from client.points import MIXED, Load, Point
from client.records import PointRecord, ResultStore
from client.sweep import SweepConfig, run_sweep
from client.targets.texts import token_lengths
from client.transport.text_client import ClientConfig, TextClient

Echo = Callable[[str], None]


class TuneError(UserError):
    """A search that cannot start, found nothing within the budget, or stopped; the store keeps what it measured."""


@dataclass(frozen=True)
class TunePaths:
    """Where a search writes: the store, the sweep's points, the repository, the report, the logs."""

    out: Path

    @property
    def repo(self) -> Path:
        """The repository the server serves: candidates while measured, then the chosen deployment alone."""
        return self.out / "repo"

    @property
    def report(self) -> Path:
        """report.md, candidates.csv and the frontier chart."""
        return self.out / "report"

    @property
    def log(self) -> Path:
        """make-repo's and the sweep's own lines, candidate after candidate."""
        return self.out / "measure.log"

    @property
    def server_log(self) -> Path:
        """The server's log."""
        return self.out / "tritonserver.log"


def check_target(settings: TuneSettings, gpu: GpuProfile) -> None:
    """Refuse an engine or GPU profile the bundled server cannot serve here, before anything is built."""
    bundled = names(lambda b: b.bundled)
    if settings.engine not in BACKENDS:
        raise TuneError(f"unknown engine '{settings.engine}'", hint=f"tune takes {bundled}")
    if not BACKENDS[settings.engine].bundled:
        raise TuneError(
            f"tune serves every candidate on the bundled tritonserver, which has only the Python backend: engine "
            f"{settings.engine} needs the NGC container",
            hint=f"--engine {bundled}",
        )
    if not gpu.is_gpu:
        return
    import torch

    if not torch.cuda.is_available():
        raise TuneError(
            f"GPU profile {gpu.name} places the model on a GPU, and this host has none (tune measures here)",
            hint="--gpu cpu on this host, or run the search on the GPU host",
        )
    if settings.engine == "python-onnxruntime":
        import onnxruntime

        providers = onnxruntime.get_available_providers()
        if "CUDAExecutionProvider" not in providers:
            raise TuneError(
                f"engine python-onnxruntime cannot use GPU profile {gpu.name} here: this onnxruntime has only "
                f"{', '.join(providers)} (it would run on the CPU)",
                hint="--engine python-torch runs the model on this GPU",
            )


def load_point(record: PointRecord) -> LoadPoint:
    """A sweep record as the concurrency search sees it."""
    total = record.requests + record.errors
    assert record.concurrency is not None
    return LoadPoint(
        record.concurrency,
        record.throughput_seq_per_s,
        record.latency_p50_ms,
        record.latency_p99_ms,
        record.errors / total if total else 1.0,
        record.gpu.get("memory_used_mb"),
    )


def _utc() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class TuneResult:
    """What a finished search found and wrote."""

    chosen: Candidate
    default: Candidate
    outcomes: dict[Candidate, Outcome]
    stopped: str  # why the search ended: converged, grid walked, budget, max candidates
    seconds: float
    repo: Path
    command: str
    report: TuneReport
    confirmed: dict[str, LoadPoint] = field(default_factory=dict)  # "default"/"chosen" → the re-measured point


class _Run:
    """One run: the space, the store, the server and the records measured so far."""

    def __init__(self, settings: TuneSettings, paths: TunePaths, space: Space, echo: Echo) -> None:
        self.settings, self.paths, self.space, self.echo = settings, paths, space, echo
        self.digest = settings_digest(settings.measured())
        self.store = tune_store(paths.out)
        self.points: ResultStore[PointRecord] = ResultStore(paths.out, POINTS_FILE)
        self.started = time.perf_counter()
        self.durations: list[float] = []  # of the candidates measured in this run
        self.gated = False
        self.url = self.metrics_url = ""
        self.control: ModelControl | None = None
        self.server: TritonServer | None = None

    def check_server(self, when: str) -> None:
        """Stop the search when the server died: every later candidate would fail for that reason, not its own."""
        assert self.server is not None
        if not self.server.is_alive():
            raise TuneError(
                f"tritonserver exited {when}:\n{self.server.log_tail()}",
                hint=f"run the same command again: the {len(self.records(CANDIDATE))} stored candidates are kept",
            )

    # ----------------------------------------------------------------------------------------- the store

    def records(self, kind: str) -> list[TuneRecord]:
        """The records of one kind of this search, in the order they were stored."""
        return [r for r in self.store.load() if r.kind == kind and r.search == self.digest]

    def open_store(self) -> None:
        """Check that the store holds this search only, then note this run in it."""
        self.store.ensure_writable()
        others = {r.search for r in self.store.load()} - {self.digest}
        if others:
            raise TuneError(
                f"{self.store.path} holds a search with other settings (model, texts, budget or windows)",
                hint="give another --out, or delete that store to start over",
            )
        run = len(self.records(SEARCH)) + 1
        settings = {**self.settings.describe(), "default": self.space.default.to_dict(),
                    "space": {d.name: [list(v) if isinstance(v, tuple) else v for v in d.values]
                              for d in self.space.dimensions}}  # fmt: skip
        self.store.append(TuneRecord(SEARCH, self.digest, settings, round=run, host=platform.node(), timestamp=_utc()))

    def known(self) -> dict[Candidate, Outcome]:
        """Every candidate measured so far (this run or before) and its outcome."""
        return {r.the_candidate(): r.outcome(self.settings.budget) for r in self.records(CANDIDATE)}

    # ------------------------------------------------------------------------------------------- building

    def build(self, candidate: Candidate, name: str) -> None:
        """make-repo's planning and writing, into the served repository; the fidelity gate on the first build only.

        Candidates differ in serving settings alone; the precision's numerics are gated once per run.
        """
        from builder.precision.fidelity import FidelityOptions
        from builder.repository.pipeline import make_repo

        gate = self.settings.validate and not self.gated
        with self.paths.log.open("a") as log:
            print(f"--- {name}: {candidate.label()}", file=log, flush=True)
            make_repo(
                self.settings.model, self.settings.task, name, self.settings.engine, self.settings.gpu,
                self.paths.repo, force=True, trust_remote_code=False,
                echo=lambda line: print(line, file=log, flush=True), precision=self.settings.precision,
                fidelity=FidelityOptions(enabled=gate),
                serving=candidate.serving(ServingOptions(self.settings.kernels)),
            )  # fmt: skip
        self.gated = self.gated or gate

    def keep_only(self, names: set[str]) -> None:
        """Delete every candidate's folders from the repository but those of deployments `names`."""
        for folder in self.paths.repo.glob(f"{CANDIDATE_PREFIX}*"):
            if folder.name.split("_", 1)[0] not in names:
                shutil.rmtree(folder, ignore_errors=True)

    def members(self, name: str) -> list[str]:
        """The member models of deployment `name`, from its manifest."""
        return list(Manifest.read(self.paths.repo, name).steps)

    # ------------------------------------------------------------------------------------------ measuring

    def sweep_point(self, name: str, concurrency: int, variant: str = "") -> PointRecord:
        """One concurrency level of deployment `name` with the texts, measured (or read back) by client.sweep.

        The sweep's own store keeps every level: a candidate interrupted halfway resumes with the levels it has.
        """
        s = self.settings
        timeout = max(5.0, 50 * s.p99_ms / 1000)
        config = SweepConfig(
            ClientConfig(self.url, name, s.protocol, timeout), (s.client_batch,), (MIXED,), concurrency=(concurrency,),
            measurement=s.measurement, variant=variant or self.digest, metrics_url=self.metrics_url, seed=s.seed,
            texts=s.texts,
        )  # fmt: skip
        with self.paths.log.open("a") as log:
            run_sweep(
                config, self.points, echo=lambda line: print(line, file=log), repo=self.paths.repo, progress=False
            )
        key = config.key(Point(s.client_batch, MIXED, Load(concurrency=concurrency)))
        return next(r for r in reversed(self.points.load()) if r.key == key)

    def search_concurrency(self, candidate: Candidate, record: TuneRecord, start: int) -> None:
        """The candidate's concurrency levels, as the concurrency search asks for them, into `record`."""
        points: list[LoadPoint] = []
        s = self.settings
        while (level := next_concurrency(points, s.budget, start, s.max_concurrency)) is not None:
            try:
                measured = self.sweep_point(candidate.name, level)
            except UserError as exc:  # a level without numbers counts as over the budget: the search goes lower
                record.failure = f"concurrency {level}: {exc.message.splitlines()[0]}"
                points.append(LoadPoint(level, 0.0, 0.0, 0.0, 1.0, failed=record.failure))
                self.echo(f"      c{level:<4} {record.failure}")
                continue
            point = load_point(measured)
            points.append(point)
            record.requests += measured.requests
            record.errors += measured.errors
            self.echo(f"      c{level:<4} {point.throughput:9.1f} texts/s  p50 {point.p50_ms:8.2f} ms  "
                      f"p99 {point.p99_ms:8.2f} ms  errors {measured.errors}")  # fmt: skip
        record.points = [asdict(p) for p in points]

    def load(self, name: str) -> float:
        """Load deployment `name` through the repository API; after a refusal nothing of it stays loaded."""
        assert self.control is not None
        try:
            return self.control.load(name)
        except ModelControlError:
            with contextlib.suppress(ModelControlError):
                self.control.unload(name, self.members(name))
            raise

    def warm(self, name: str) -> None:
        """A few requests before any is timed: the shortest and the longest text alone, then a batch of the mix.

        A model's first requests of each shape pay one-off costs (allocations, lazy initialisation) that the short
        measurement windows would otherwise count, or miss entirely.
        """
        texts = self.settings.texts
        batch = [[min(texts, key=len)], [max(texts, key=len)], list(texts[: max(4, self.settings.client_batch)])]
        with TextClient(ClientConfig(self.url, name, self.settings.protocol, timeout_s=300)) as client:
            for request in batch:
                client.infer(request)

    def unload(self, name: str) -> None:
        """Unload deployment `name` and wait until none of its models holds instances."""
        assert self.control is not None
        self.control.unload(name, self.members(name))

    def measure(self, candidate: Candidate, start: int) -> TuneRecord:
        """Build, load, measure and unload one candidate; a failure at any stage is recorded, not raised."""
        record = TuneRecord(CANDIDATE, self.digest, candidate=candidate.to_dict(), name=candidate.name,
                            host=platform.node(), timestamp=_utc())  # fmt: skip
        began = time.perf_counter()
        try:
            self.build(candidate, candidate.name)
        except UserError as exc:
            record.failure = f"make-repo: {exc.message}"
            return record
        finally:
            record.build_s = time.perf_counter() - began
        began = time.perf_counter()
        try:
            self.load(candidate.name)
        except UserError as exc:
            record.failure = exc.message
            return record
        try:
            try:
                self.warm(candidate.name)
            except UserError as exc:
                record.failure = f"warm-up requests: {exc.message}"
                return record
            record.load_s = time.perf_counter() - began  # the load and the warm-up requests
            began = time.perf_counter()
            self.search_concurrency(candidate, record, start)
            record.measure_s = time.perf_counter() - began
            record.model_gpu_mb = model_gpu_mb(self.paths.repo / f"{candidate.name}_model", compute_apps())
        finally:
            self.unload(candidate.name)
        return record

    def remeasure(self, candidate: Candidate, concurrency: int, role: str) -> TuneRecord:
        """The confirmation: `candidate` measured once more at `concurrency` (rebuilt if its folder is gone)."""
        record = TuneRecord(CONFIRM, self.digest, {"role": role}, candidate.to_dict(), candidate.name, round=1,
                            host=platform.node(), timestamp=_utc())  # fmt: skip
        if not (self.paths.repo / candidate.name / MANIFEST).is_file():
            self.build(candidate, candidate.name)
        try:
            record.load_s = self.load(candidate.name)
        except ModelControlError as exc:
            record.failure = exc.message
            return record
        try:
            self.warm(candidate.name)
            measured = self.sweep_point(candidate.name, concurrency, variant=f"{self.digest}-confirm")
            record.points = [asdict(load_point(measured))]
            record.requests, record.errors = measured.requests, measured.errors
        except UserError as exc:
            record.failure = f"measuring at concurrency {concurrency}: {exc.message}"
        finally:
            self.unload(candidate.name)
        return record


def _stop_reason(run: _Run, known: dict[Candidate, Outcome]) -> str | None:
    """Why no further candidate starts now (None: measure the next one)."""
    s = run.settings
    if s.max_candidates is not None and len(known) >= s.max_candidates:
        return f"--max-candidates {s.max_candidates} reached"
    if s.budget_minutes is not None and run.durations:
        elapsed = time.perf_counter() - run.started
        if elapsed + statistics.mean(run.durations) > s.budget_minutes * 60:
            return f"--budget-minutes {s.budget_minutes:g} reached ({elapsed / 60:.1f} min)"
    return None


def _search(run: _Run) -> tuple[dict[Candidate, Outcome], str]:
    """Measure what the search asks for until it is finished or stopped; every record stored as it is measured."""
    s = run.settings
    known = run.known()
    if known:
        run.echo(f"{len(known)} candidate(s) already in {run.store.path}: not measured again")
    while True:
        step = next_candidate(s.search, run.space, known, s.min_gain)
        if step.candidate is None:
            return known, "converged: no neighbour improves" if s.search == "quick" else "the whole grid was walked"
        reason = _stop_reason(run, known)
        if reason is not None:
            return known, reason
        best = choose(known)  # its concurrency is where the next candidate's concurrency search starts
        start = (known[best].concurrency or 1) if best is not None else 1
        number = len(known) + 1
        run.echo(f"[{number}] {step.candidate.name}: {step.candidate.label()}")
        began = time.perf_counter()
        record = run.measure(step.candidate, start)
        run.check_server(f"while {step.candidate.name} was measured (not stored: a rerun measures it again)")
        run.store.append(record)
        run.durations.append(time.perf_counter() - began)
        known[step.candidate] = outcome = record.outcome(s.budget)
        run.echo(f"    → {outcome_text(outcome)}{'; ' + record.failure if record.failure else ''} "
                 f"({run.durations[-1]:.0f} s)")  # fmt: skip
        best = choose(known)  # the default and the best so far stay built, for the confirmation
        run.keep_only({run.space.default.name, *([best.name] if best else [])})


def outcome_text(outcome: Outcome) -> str:
    """An outcome in a few words."""
    if outcome.status == OK:
        return f"{outcome.throughput:,.1f} texts/s at concurrency {outcome.concurrency}, p99 {outcome.p99_ms:.2f} ms"
    if outcome.status == "over":
        return f"over the budget at every level (lowest p99 {outcome.p99_ms:.2f} ms)"
    return "failed"


def prepare_space(settings: TuneSettings, paths: TunePaths) -> tuple[Space, list[int]]:
    """The search space for the model and texts: the profile's defaults, buckets from the texts' token lengths."""
    from builder.common.tokenizer import load_tokenizer
    from builder.repository.plan import plan_repository
    from builder.sources.source import inspect_model, save_tokenizer_json

    gpu = get_profile(settings.gpu)
    check_target(settings, gpu)
    info = inspect_model(settings.model, settings.task)
    # the profile's own plan, or the engine, precision and profile do not go together: say so before any write
    plan_repository(info, "tune", settings.engine, gpu, settings.precision, ServingOptions(settings.kernels))
    paths.out.mkdir(parents=True, exist_ok=True)
    tokenizer_file = paths.out / "tokenizer.json"
    save_tokenizer_json(info, tokenizer_file)
    lengths = token_lengths(load_tokenizer(tokenizer_file), settings.texts, info.max_length)
    space = build_space(SpaceInputs(gpu, settings.engine, info.max_length, tuple(lengths), settings.p99_ms,
                                    dict(settings.restrict)))  # fmt: skip
    return space, lengths


def _final(run: _Run, chosen: Candidate) -> tuple[Path, dict[str, Any]]:
    """Build the chosen candidate as NAME (the printed command's build), load it and query it with the texts."""
    s = run.settings
    run.gated = False  # the chosen deployment passes the gate exactly as its command would make it
    run.build(chosen, s.name)
    try:
        run.load(s.name)
    except ModelControlError as exc:
        raise TuneError(f"the chosen configuration, built as {s.name}, did not load: {exc.message}") from None
    try:
        shortest, longest = min(s.texts, key=len), max(s.texts, key=len)
        with TextClient(ClientConfig(run.url, s.name, s.protocol, timeout_s=120)) as client:
            outputs = client.infer([shortest, longest, *s.texts[: s.client_batch]])
    finally:
        run.unload(s.name)
    return run.paths.repo / s.name, {name: list(array.shape) for name, array in outputs.items()}


def _record_choice(run: _Run, chosen: Candidate, result: dict[str, Any]) -> None:
    """The chosen deployment's manifest gets `tuning`: the options, the measured point, the command."""
    path = run.paths.repo / run.settings.name / MANIFEST
    manifest = Manifest.read(run.paths.repo, run.settings.name)
    manifest.tuning = result
    tmp = path.with_suffix(".tmp")
    manifest.write(tmp)
    os.replace(tmp, path)


def _point_dict(outcome: Outcome, record: TuneRecord | None) -> dict[str, Any]:
    point = next((p for p in record.load_points() if p.concurrency == outcome.concurrency), None) if record else None
    return {
        "concurrency": outcome.concurrency,
        "throughput_texts_per_s": outcome.throughput,
        "p99_ms": outcome.p99_ms,
        "p50_ms": point.p50_ms if point else None,
        "error_rate": record.error_rate if record else None,
        "gpu_memory_mb": record.gpu_memory_mb if record else None,
    }


def _confirm(run: _Run, known: dict[Candidate, Outcome], chosen: Candidate) -> dict[str, LoadPoint]:
    """The default and the chosen one again, back to back, each at the concurrency its search found."""
    done = {r.settings.get("role"): r for r in run.records(CONFIRM)}
    found: dict[str, LoadPoint] = {}
    default = run.space.default
    for role, candidate in (("default", default), ("chosen", chosen)):
        if role == "chosen" and candidate == default:
            break
        concurrency = known[candidate].concurrency
        if known[candidate].status != OK or concurrency is None:
            continue
        record = done.get(role)
        if record is None or record.the_candidate() != candidate:
            run.echo(f"confirming the {role} configuration at concurrency {concurrency}")
            record = run.remeasure(candidate, concurrency, role)
            run.store.append(record)
        if record.points:
            found[role] = record.load_points()[0]
    return found


def run_tune(settings: TuneSettings, paths: TunePaths, echo: Echo) -> TuneResult:
    """The whole search: measure, confirm, write the chosen repository and the report."""
    space, lengths = prepare_space(settings, paths)
    settings = replace(settings, extra={**settings.extra, "token_lengths": _length_summary(lengths)})
    run = _Run(settings, paths, space, echo)
    run.open_store()
    echo(f"tune {settings.model} ({settings.engine}, {settings.gpu}, {settings.precision}): {settings.search} search, "
         f"p99 ≤ {settings.p99_ms:g} ms, {len(settings.texts)} texts ({settings.texts_source}), "
         f"{len(space.grid)} candidates in the space")  # fmt: skip
    paths.repo.mkdir(parents=True, exist_ok=True)
    run.keep_only(set())  # a killed run's candidates
    try:
        with TritonServer(paths.repo, log_path=paths.server_log, startup_timeout_s=900, models=()) as server:
            run.url = server.grpc_url if settings.protocol == "grpc" else server.http_url
            run.metrics_url = server.metrics_url
            run.server, run.control = server, ModelControl(server.grpc_url)
            known, stopped = _search(run)
            echo(f"search finished: {stopped}; {len(known)} candidates measured")
            chosen = choose(known)
            if chosen is None:
                report = write_tune_report(run.store.load(), paths.report)
                raise _nothing_within(run, known, report)
            confirmed = _confirm(run, known, chosen) if settings.confirm else {}
            repo, served = _final(run, chosen)
    except KeyboardInterrupt:
        raise TuneError(
            f"interrupted: {len(run.records(CANDIDATE))} candidate(s) are in {run.store.path}",
            hint="run the same command again: measured candidates are not measured again",
        ) from None
    finally:
        if run.control is not None:
            run.control.close()
        run.keep_only(set())
    seconds = time.perf_counter() - run.started
    command = command_line(rebuild_command(settings, chosen, paths.repo))
    finish = {"stopped": stopped, "seconds": seconds, "measured_now": len(run.durations), "chosen": chosen.id,
              "candidates": len(known), "served_outputs": served, "command": command}  # fmt: skip
    _record_choice(run, chosen, _tuning(run, known, chosen, confirmed, finish))
    run.store.append(TuneRecord(FINISH, run.digest, finish, round=len(run.records(SEARCH)), host=platform.node(),
                                timestamp=_utc()))  # fmt: skip
    report = write_tune_report(run.store.load(), paths.report)
    return TuneResult(chosen, space.default, known, stopped, seconds, repo, command, report, confirmed)


def _tuning(
    run: _Run, known: dict[Candidate, Outcome], chosen: Candidate, confirmed: dict[str, LoadPoint],
    finish: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    """What the chosen deployment's manifest records: the search, the options, both measured points, the end."""
    records = {r.the_candidate(): r for r in run.records(CANDIDATE)}
    serving = asdict(chosen.serving(ServingOptions(run.settings.kernels)))
    return {
        "search": run.digest,
        "settings": run.settings.describe(),
        "candidate": chosen.to_dict(),
        "serving": {k: list(v) if isinstance(v, tuple) else v for k, v in serving.items()},
        "measured": _point_dict(known[chosen], records.get(chosen)),
        "default": _point_dict(known[run.space.default], records.get(run.space.default)),
        "confirmed": {role: asdict(p) for role, p in confirmed.items()},
        **finish,
    }


def _length_summary(lengths: list[int]) -> dict[str, float]:
    ordered = sorted(lengths)

    def at(q: float) -> float:
        return float(ordered[max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))])

    return {"min": float(ordered[0]), "p50": at(0.5), "p90": at(0.9), "max": float(ordered[-1]),
            "mean": sum(ordered) / len(ordered)}  # fmt: skip


def _nothing_within(run: _Run, known: dict[Candidate, Outcome], report: TuneReport) -> TuneError:
    """The refusal when no candidate kept to the budget: the best p99 seen, and the report listing them all."""
    seen = [(o.p99_ms, c) for c, o in known.items() if o.p99_ms is not None]
    where = f"; the report {report.markdown} lists every candidate and why"
    if not seen:
        failures = [r.failure for r in run.records(CANDIDATE) if r.failure]
        first = failures[0] if failures else "no candidate was measured"
        return TuneError(f"no candidate could be measured: {first}", hint=f"see {run.paths.log}{where}")
    p99, candidate = min(seen, key=lambda item: item[0])
    return TuneError(
        f"no candidate kept p99 within {run.settings.p99_ms:g} ms (and errors within "
        f"{run.settings.max_error_rate:.1%}): the best p99 seen was {p99:.2f} ms, by {candidate.name} "
        f"({candidate.label()}) at concurrency {known[candidate].concurrency}",
        hint=f"raise --p99-ms above {p99:.1f}, or search more (--search brute){where}",
    )
