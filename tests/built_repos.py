"""Model repositories as `tritonbuild make-repo` lays them out (configs and manifest), without exporting.

The configs are the real renderer's; the model files are a few bytes, so a test writes one in milliseconds.
"""

from __future__ import annotations

from pathlib import Path

from builder.contract.manifest import MANIFEST, Manifest
from builder.gpus import get_profile
from builder.repository.options import ServingOptions
from builder.repository.plan import plan_repository
from builder.repository.render import render_config
from builder.sources.source import inspect_model

MODEL_BYTES = 3 << 20  # what each model file pretends to weigh


def write_repo(
    folder: Path,
    engine: str = "python-onnxruntime",
    gpu: str = "cpu",
    precision: str = "fp32",
    name: str = "minilm",
    serving: ServingOptions | None = None,
    manifest: bool = True,
) -> Path:
    """A repository of the bundled MiniLM in `folder`, built for `engine` and the `gpu` profile."""
    info = inspect_model("minilm", "feature-extraction")
    serving = serving or ServingOptions()
    plan = plan_repository(info, name, engine, get_profile(gpu), precision, serving)
    for model in plan.models:
        version = folder / model.config.name / "1"
        version.mkdir(parents=True)
        (folder / model.config.name / "config.pbtxt").write_text(render_config(model.config))
        for file_name, _ in model.files:
            (version / file_name).parent.mkdir(parents=True, exist_ok=True)
            (version / file_name).write_bytes(b"\0" * (MODEL_BYTES if file_name.endswith((".onnx", ".plan")) else 16))
    if manifest:
        Manifest(
            name=plan.name,
            task="feature-extraction",
            model="minilm",
            model_type=info.model_type,
            engine=engine,
            gpu=gpu,
            max_length=info.max_length,
            buckets=[16, 32],
            max_batch_size=plan.ensemble.max_batch_size,
            outputs=[t.name for t in plan.ensemble.outputs],
            precision=precision,
            parity_max_abs_diff=None,
            parity_shapes=[],
            gpus=list(serving.gpus),
        ).write(folder / plan.name / MANIFEST)
    return folder
