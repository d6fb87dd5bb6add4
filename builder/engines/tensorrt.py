"""tensorrt: a TensorRT engine (tensorrt_plan), built where TensorRT and the target GPU are (NGC container).

make-repo builds it in a child process (builder/tensorrt/engine_build.py), verified against ONNX Runtime
FP32 on real text, or places one built elsewhere (`--engine-file`) once its build record fits.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from builder.engines.base import GateKind, ModelSlot, Producer, ServingBackend, Staging
from builder.gpus import GpuProfile
from builder.precision.presets import PRESETS
from builder.repository.layout import ModelDirPlan
from builder.repository.modelconfig import InstanceGroup
from builder.tensorrt.trt_plan import shape_profiles

if TYPE_CHECKING:
    from builder.sources.source import ModelInfo

ENGINE_FILE = "model.plan"


def _build_engine(dest: Path, staging: Staging) -> None:
    """Build `model.plan` from the model.onnx staged beside it, or place the --engine-file."""
    from builder.sources.source import save_tokenizer_json
    from builder.tensorrt.engine_build import EngineOptions, engine_artifact

    tokenizer = staging.work / "tokenizer.json"
    save_tokenizer_json(staging.info, tokenizer)
    settings = EngineOptions(staging.gpu, staging.precision, staging.info.max_length)
    engine_artifact(dest, dest.parent / "model.onnx", tokenizer, settings, staging.engine_file, staging.echo)


class TensorRT(ServingBackend, name="tensorrt"):
    """Serves a TensorRT engine; the FP32 graph stays beside it for the reproduce script."""

    description = "a TensorRT engine (tensorrt_plan), built where TensorRT and the target GPU are (NGC container)"
    precisions = tuple(PRESETS)
    platform = "tensorrt_plan"
    bundled = False
    needs_gpu = True
    gate = GateKind.TENSORRT_BUILD
    # The FP32 ONNX graph stays beside the engine: the engine's reproduce script parses and verifies against it.
    files = (("model.onnx", "onnx"), (ENGINE_FILE, "tensorrt_engine"))
    takes_engine_file = True

    def model_folder(self, slot: ModelSlot) -> ModelDirPlan:
        """tensorrt_plan with every shape profile listed on every instance."""
        # Triton picks the best profile among an instance's own, but never routes a request to an instance by
        # its shape: every instance must hold every profile (each pair is one TensorRT execution context).
        profiles = tuple(str(i) for i in range(len(shape_profiles(slot.gpu, slot.info.max_length))))
        groups = (InstanceGroup(slot.gpu.model_instances, "KIND_GPU", profiles, slot.instances.gpus),)
        spec = slot.config(platform=self.platform, default_model_filename=ENGINE_FILE, instance_groups=groups)
        return ModelDirPlan(spec, self.files)

    def producers(self) -> Mapping[str, Producer]:
        """`model.plan`: built here in a child process, or the verified --engine-file."""
        return {"tensorrt_engine": _build_engine}

    def preflight(self, engine_file: Path | None) -> None:
        """Building here needs TensorRT: refuse before anything is exported or written."""
        if engine_file is None:
            from builder.tensorrt.engine_build import require_tensorrt

            require_tensorrt()

    def check_inputs(self, info: ModelInfo, gpu: GpuProfile, precision: str, engine_file: Path | None) -> None:
        """An engine built elsewhere must fit this repository (GPU profile, precision, shape profiles, verified)."""
        if engine_file is not None:
            from builder.tensorrt.engine_build import check_prebuilt

            check_prebuilt(engine_file, gpu, precision, info.max_length)
