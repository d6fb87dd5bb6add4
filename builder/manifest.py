"""A small JSON record of how a repository was built, next to the ensemble's config."""

from __future__ import annotations

import json
import platform
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

MANIFEST = "tritonbuild.json"
_PACKAGES = ("tritonbuild", "torch", "transformers", "onnx", "onnxruntime", "tokenizers", "tritonclient")


def package_versions() -> dict[str, str]:
    """Versions of the packages that shape a build, for the record."""
    found = {}
    for name in _PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


@dataclass
class Manifest:
    """What was built, from what, with what; read back by clients to find the tokenizer and task."""

    name: str
    task: str
    model: str
    model_type: str
    engine: str
    gpu: str
    max_length: int
    buckets: list[int]
    max_batch_size: int
    outputs: list[str]
    precision: str
    parity_max_abs_diff: float | None  # None for engines that serve the PyTorch model itself
    parity_shapes: list[list[int]]
    onnx_bytes: int | None = None  # size of the served model.onnx (the precision variant on variant engines)
    fidelity: dict[str, Any] | None = None  # the fidelity gate's report; None when it did not run
    gpus: list[int] = field(default_factory=list)  # GPUs the model's instances are placed on; []: Triton's choice
    versions: dict[str, str] = field(default_factory=package_versions)
    host: str = field(default_factory=platform.node)
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def write(self, path: Path) -> None:
        """Write as indented JSON."""
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def read(cls, repo: Path, name: str) -> Manifest:
        """Read the manifest of ensemble `name` in repository `repo`."""
        return cls(**json.loads((repo / name / MANIFEST).read_text()))
