"""onnxruntime: Triton's own onnxruntime_onnx platform, which the NGC container has and the bundled server lacks."""

from __future__ import annotations

from builder.engines.base import GateKind, ModelSlot, ServingBackend
from builder.precision.presets import PRESETS
from builder.repository.layout import ModelDirPlan


class OnnxRuntime(ServingBackend, name="onnxruntime"):
    """Serves the precision variant as model.onnx with Triton's ONNX Runtime backend."""

    description = "Triton's onnxruntime_onnx platform (needs the NGC tritonserver container)"
    precisions = tuple(PRESETS)
    platform = "onnxruntime_onnx"
    bundled = False
    serves_variant = True
    gate = GateKind.VARIANT
    files = (("model.onnx", "onnx"),)

    def model_folder(self, slot: ModelSlot) -> ModelDirPlan:
        """The platform's config: the graph's file and the slot's batching and instances."""
        spec = slot.config(platform=self.platform, default_model_filename="model.onnx")
        return ModelDirPlan(spec, self.files)
