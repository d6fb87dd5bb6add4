"""python-onnxruntime: ONNX Runtime inside a Python-backend model; the bundled server runs it (the default)."""

from __future__ import annotations

from builder.engines.base import GateKind, ModelSlot, ServingBackend, python_files, token_limits
from builder.precision.presets import PRESETS
from builder.repository.layout import ModelDirPlan


class PythonOnnxRuntime(ServingBackend, name="python-onnxruntime"):
    """Serves the precision variant as model.onnx with templates/python/onnxruntime_model.py."""

    description = "ONNX Runtime inside a Python-backend model (runs in the bundled server)"
    precisions = tuple(PRESETS)
    platform = "python"
    bundled = True
    serves_variant = True
    gate = GateKind.VARIANT
    files = (*python_files("onnxruntime_model.py"), ("model.onnx", "onnx"))

    def model_folder(self, slot: ModelSlot) -> ModelDirPlan:
        """A Python model running ONNX Runtime on the GPU when the profile has one, with the CPU as fallback."""
        providers = "CUDAExecutionProvider,CPUExecutionProvider" if slot.gpu.is_gpu else "CPUExecutionProvider"
        parameters = (("providers", providers), *token_limits(slot.info))
        return ModelDirPlan(slot.config(backend="python", parameters=parameters), self.files)
