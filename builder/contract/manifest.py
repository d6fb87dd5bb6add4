"""The manifest: a JSON record beside the ensemble of how a repository was built, and how to use it.

The builder writes it; clients read it to find the tokenizer, the member models, the length buckets, the
task and the outputs, instead of re-deriving them from folder names.
"""

from __future__ import annotations

import json
import platform
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from builder.common.errors import UserError
from builder.common.versions import package_versions

MANIFEST = "tritonbuild.json"


class ManifestError(UserError):
    """A repository's manifest is missing or unreadable."""


@dataclass
class Manifest:
    """What was built, from what, with what; read back by clients to find the tokenizer and task."""

    name: str
    task: str
    model: str
    model_type: str
    engine: str  # the serving backend (make-repo --engine); the key keeps the option's name
    gpu: str
    max_length: int
    buckets: list[int]
    max_batch_size: int
    outputs: list[str]
    precision: str
    parity_max_abs_diff: float | None  # None for serving backends that serve the PyTorch model itself
    parity_shapes: list[list[int]]
    onnx_bytes: int | None = None  # size of the served model.onnx (the precision variant, where it is served)
    fidelity: dict[str, Any] | None = None  # the fidelity gate's report; None when it did not run
    gpus: list[int] = field(default_factory=list)  # GPUs the model's instances are placed on; []: Triton's choice
    # the ensemble's member models in step order, and the tokenizer.json a client cuts texts with, relative to
    # the repository; manifests written before these fields get them from the folder names tritonbuild uses
    steps: list[str] = field(default_factory=list)
    tokenizer: str = ""
    # set by `tritonbench tune` on the repository it chose: the options searched, the measured point, the command
    tuning: dict[str, Any] | None = None
    versions: dict[str, str] = field(default_factory=package_versions)
    host: str = field(default_factory=platform.node)
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def __post_init__(self) -> None:
        if not self.steps:
            self.steps = [f"{self.name}_{step}" for step in ("tokenizer", "model", "post")]
        if not self.tokenizer:
            self.tokenizer = f"{self.steps[0]}/1/tokenizer.json"

    def write(self, path: Path) -> None:
        """Write as indented JSON."""
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def read(cls, repo: Path, name: str) -> Manifest:
        """Read the manifest of ensemble `name` in repository `repo` (unknown keys are ignored)."""
        path = repo / name / MANIFEST
        try:
            data = json.loads(path.read_text())
            known = {f.name for f in fields(cls)}
            return cls(**{k: v for k, v in data.items() if k in known})
        except FileNotFoundError:
            raise ManifestError(
                f"no {MANIFEST} in {path.parent}", hint="build the repository with tritonbuild make-repo"
            ) from None
        except (OSError, ValueError, TypeError) as exc:
            raise ManifestError(
                f"cannot read {path}: {exc}", hint="rebuild the repository with tritonbuild make-repo"
            ) from None

    @classmethod
    def find(cls, repo: Path, model: str) -> Manifest | None:
        """The manifest of the deployment `model` is part of (its ensemble or one of its steps), if any."""
        if (repo / model / MANIFEST).is_file():
            return cls.read(repo, model)
        for path in sorted(repo.glob(f"*/{MANIFEST}")):
            manifest = cls.read(repo, path.parent.name)
            if model in manifest.steps:
                return manifest
        return None

    def tokenizer_path(self, repo: Path) -> Path:
        """The tokenizer.json of this deployment inside `repo`."""
        return repo / self.tokenizer
