"""What planning a repository produces: model folders (a config and the files of version 1), as data."""

from __future__ import annotations

from dataclasses import dataclass

from builder.gpus import GpuProfile
from builder.repository.modelconfig import ModelConfigSpec

# A file to place in a model's version folder: (name in the folder, what produces it).
# Producers: "template:<file>" copies templates/python/<file>; "onnx", "tokenizer", "labels" are the make-repo
# pipeline's artifacts; a serving backend may add its own (builder/engines/base.py, `ServingBackend.producers`).
FileEntry = tuple[str, str]


@dataclass(frozen=True)
class ModelDirPlan:
    """One model folder: its config and the files of version 1."""

    config: ModelConfigSpec
    files: tuple[FileEntry, ...]


@dataclass(frozen=True)
class RepoPlan:
    """The model folders of one deployment (tokenizer, model, post, or a single model), ensemble last."""

    name: str
    backend: str  # the serving backend's name (make-repo --engine)
    gpu: GpuProfile
    models: tuple[ModelDirPlan, ...]

    @property
    def ensemble(self) -> ModelConfigSpec:
        """The ensemble's config (the public entry point)."""
        return self.models[-1].config
