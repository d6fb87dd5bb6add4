"""What `tritonbench tune` stores: one TuneRecord per line of OUT/tune.jsonl (client.records.ResultStore).

The first record describes the search (what is measured, on which texts, against which budget) and names its
digest; every candidate's record carries the same digest, its values, every concurrency level it was measured at,
its errors and memory, and why it failed or stopped early. A rerun with the same settings skips every candidate in
the store; a store of other settings is refused rather than mixed in. The sweep's own records of each level are in
OUT/points.jsonl.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from client.experiments.tune_search import FAILED, Budget, LoadPoint, Outcome
from client.experiments.tune_space import Candidate
from client.records import ResultStore

STORE_FILE = "tune.jsonl"
POINTS_FILE = "points.jsonl"
SEARCH, CANDIDATE, CONFIRM, FINISH = "search", "candidate", "confirm", "finish"  # FINISH: one per finished run


def settings_digest(settings: dict[str, Any]) -> str:
    """A short fingerprint of what the measurements mean (model, engine, GPU, texts, budget, windows ...)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]


@dataclass
class TuneRecord:
    """One line of the store: the search itself, a measured candidate, or a confirmation re-measurement."""

    kind: str  # SEARCH | CANDIDATE | CONFIRM | FINISH
    search: str  # the digest of the search's settings
    settings: dict[str, Any] = field(default_factory=dict)  # SEARCH: what is measured and how; FINISH: the end
    candidate: dict[str, Any] | None = None  # CANDIDATE, CONFIRM: Candidate.to_dict()
    name: str = ""  # the candidate's deployment while it was measured
    round: int = 0  # CONFIRM: which re-measurement
    points: list[dict[str, Any]] = field(default_factory=list)  # LoadPoints in the order they were measured
    failure: str = ""  # why measuring never began or stopped early (the plan, the load, a request)
    requests: int = 0  # successful requests in the measured windows, over every point
    errors: int = 0  # failed requests over every point, warm-ups included
    model_gpu_mb: float | None = None  # NVML: the GPU memory of its model instances' processes (None: no GPU)
    build_s: float = 0.0
    load_s: float = 0.0
    measure_s: float = 0.0
    host: str = ""
    timestamp: str = ""

    @property
    def key(self) -> tuple[Any, ...]:
        """A candidate once per search (a confirmation once per round)."""
        cid = Candidate.from_dict(self.candidate).id if self.candidate else ""
        return (self.kind, self.search, cid, self.round)

    def to_json(self) -> str:
        """One line of JSON."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TuneRecord:
        """Back from the JSON form (unknown keys are ignored)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def load_points(self) -> list[LoadPoint]:
        """The measured concurrency levels."""
        return [LoadPoint(**p) for p in self.points]

    def the_candidate(self) -> Candidate:
        """The candidate this record measured."""
        assert self.candidate is not None
        return Candidate.from_dict(self.candidate)

    def outcome(self, budget: Budget) -> Outcome:
        """Its outcome against `budget`: from its points (a failure before any point is FAILED)."""
        points = self.load_points()
        return Outcome.of(points, budget) if points else Outcome(FAILED)

    @property
    def error_rate(self) -> float:
        """Failed requests over all requests of every point."""
        total = self.requests + self.errors
        return self.errors / total if total else 0.0

    @property
    def gpu_memory_mb(self) -> float | None:
        """The most GPU memory the metrics endpoint reported while it alone was loaded (None without a GPU)."""
        values = [p.gpu_memory_mb for p in self.load_points() if p.gpu_memory_mb is not None]
        return max(values) if values else None

    @property
    def seconds(self) -> float:
        """What measuring it cost: build, load and measurement."""
        return self.build_s + self.load_s + self.measure_s


def tune_store(folder: Path) -> ResultStore[TuneRecord]:
    """OUT/tune.jsonl."""
    return ResultStore(folder, STORE_FILE, TuneRecord.from_dict)
