"""What one `tritonbench tune` run searches for, and the make-repo command that rebuilds a candidate.

Pure: the settings are checked on construction; `measured()` is the part that gives measurements their meaning
(a store of other measured settings is refused), the rest (search, budget, restrictions) may change between runs.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from builder.common.errors import UserError
from client.experiments.tune_search import SEARCHES, Budget
from client.experiments.tune_space import Candidate
from client.generators.measure import MeasurementConfig
from client.targets.texts import texts_digest

# Short windows: a candidate is measured at several concurrency levels; two settled windows of a second each.
TUNE_MEASUREMENT = MeasurementConfig(window_s=1.0, stability_pct=15.0, stable_windows=2, max_trials=4, warmup_s=0.5)
CANDIDATE_PREFIX = "tune-"


class TuneSettingsError(UserError):
    """Options `tritonbench tune` cannot search with."""


@dataclass(frozen=True)
class TuneSettings:
    """The model and target, the texts and the budget, and how the search runs."""

    model: str
    task: str
    gpu: str
    engine: str
    texts: tuple[str, ...]
    texts_source: str  # where the texts come from, in words
    p99_ms: float
    search: str = "quick"
    budget_minutes: float | None = None  # no new candidate starts past it
    max_candidates: int | None = None  # candidates in the store, this run's and earlier ones'
    name: str = "tuned"  # the chosen deployment's name in OUT/repo
    precision: str = "fp32"
    kernels: str = "fused"
    validate: bool = True  # make-repo's fidelity gate, on the first build and on the chosen one
    client_batch: int = 1  # texts per request the client sends
    protocol: str = "grpc"
    measurement: MeasurementConfig = TUNE_MEASUREMENT
    max_concurrency: int = 128
    max_error_rate: float = 0.001
    min_gain: float = 0.03  # a quick-search move needs this much more throughput (or less p99)
    restrict: tuple[tuple[str, tuple[Any, ...]], ...] = ()  # dimension → values to search
    confirm: bool = True  # measure the default and the chosen one again, back to back, at the end
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict, compare=False)  # facts for the record (host, texts' lengths)

    def __post_init__(self) -> None:
        checks = [
            (self.p99_ms > 0, "--p99-ms must be positive"),
            (self.search in SEARCHES, f"--search is {' or '.join(SEARCHES)}"),
            (self.budget_minutes is None or self.budget_minutes > 0, "--budget-minutes must be positive"),
            (self.max_candidates is None or self.max_candidates >= 1, "--max-candidates must be >= 1"),
            (self.client_batch >= 1, "--client-batch must be >= 1"),
            (self.max_concurrency >= 1, "--max-concurrency must be >= 1"),
            (0 <= self.max_error_rate < 1, "--max-error-rate lies in [0, 1)"),
            (self.min_gain >= 0, "--min-gain must be >= 0"),
            (bool(self.texts), "no texts to measure with"),
        ]
        for ok, message in checks:
            if not ok:
                raise TuneSettingsError(message)
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", self.name) or self.name.startswith(CANDIDATE_PREFIX):
            raise TuneSettingsError(
                f"--name {self.name!r} cannot name the chosen deployment",
                hint=f"letters, digits, '_', '-', '.' (max 64), not starting with {CANDIDATE_PREFIX} (the candidates')",
            )

    @property
    def budget(self) -> Budget:
        """What a concurrency level must keep to."""
        return Budget(self.p99_ms, self.max_error_rate)

    def measured(self) -> dict[str, Any]:
        """What the measurements mean: a store holds the candidates of one such set only."""
        return {
            "model": self.model,
            "task": self.task,
            "gpu": self.gpu,
            "engine": self.engine,
            "precision": self.precision,
            "kernels": self.kernels,
            "texts": texts_digest(self.texts),
            "p99_ms": self.p99_ms,
            "max_error_rate": self.max_error_rate,
            "client_batch": self.client_batch,
            "protocol": self.protocol,
            "measurement": asdict(self.measurement),
            "max_concurrency": self.max_concurrency,
            "seed": self.seed,
        }

    def describe(self) -> dict[str, Any]:
        """Everything about the run, for the store and the manifest."""
        return {
            **self.measured(),
            "texts_source": self.texts_source,
            "texts_count": len(self.texts),
            "search": self.search,
            "budget_minutes": self.budget_minutes,
            "max_candidates": self.max_candidates,
            "min_gain": self.min_gain,
            "name": self.name,
            "restrict": {name: list(values) for name, values in self.restrict},
            **self.extra,
        }


def _sizes(sizes: tuple[int, ...]) -> str:
    return ",".join(map(str, sizes)) or "none"


def rebuild_command(settings: TuneSettings, candidate: Candidate, output: Path) -> list[str]:
    """The `tritonbuild make-repo` command that builds `candidate` as deployment NAME into `output`."""
    command = ["tritonbuild", "make-repo", "--model", settings.model, "--task", settings.task, "--name", settings.name,
               "--gpu", settings.gpu, "--engine", settings.engine, "--precision", settings.precision]  # fmt: skip
    from builder.engines import get_backend  # the backends' records say which take --kernels

    if get_backend(settings.engine).kernels:
        command += ["--kernels", settings.kernels]
    if candidate.single_model:
        command.append("--single-model")
    else:
        command += ["--tokenizer-instances", str(candidate.tokenizer_instances)]
    command += [
        "--model-instances", str(candidate.model_instances),
        "--max-batch-size", str(candidate.max_batch_size),
        "--preferred-batch-sizes", _sizes(candidate.preferred_batch_sizes),
        "--max-queue-delay-us", str(candidate.max_queue_delay_us),
        "--seq-buckets", _sizes(candidate.buckets),
    ]  # fmt: skip
    if not settings.validate:
        command.append("--no-validate")
    return [*command, "--output", str(output), "--force"]


def command_line(command: list[str]) -> str:
    """A command as one shell line."""
    return shlex.join(command)
