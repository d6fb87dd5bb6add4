"""onnxruntime-trt: onnxruntime_onnx with ONNX Runtime's TensorRT accelerator; the server builds the engines (NGC).

The model folder holds the FP32 graph: the accelerator applies the precision when the server loads it.
"""

from __future__ import annotations

from statistics import median_low

from builder.engines.base import GateKind, ModelSlot, ServingBackend
from builder.gpus import GpuProfile
from builder.repository.layout import ModelDirPlan
from builder.repository.modelconfig import Accelerator
from builder.tensorrt.trt_plan import ShapeProfile, default_workspace_bytes

# Triton 24.10's ONNX Runtime backend knows FP32, FP16 and INT8 (INT8 needs a calibration table we do not make).
# hybrid: FP16 with ONNX Runtime's own LayerNorm FP32 fallback; unlike the tensorrt engine, Softmax is not pinned.
_ORT_MODES = {"fp32": "FP32", "fp16": "FP16", "hybrid": "FP16"}
# Engine and timing caches live in the container (the repository is mounted read-only). ONNX Runtime's TensorRT
# provider creates the cache folder with a non-recursive create_directory and throws when that fails, so the
# folder sits directly in /tmp, which every container has. serve_ngc.sh mounts a host folder there before the
# server starts: the engines survive a restart, and two instances loading in parallel (the r24.10 backend allows
# it) never race to create the folder. ONNX Runtime names each engine file after a hash of its graph, so the
# models of one repository can share the folder.
ORT_TRT_CACHE = "/tmp/tritonbuild-trt-cache"


def _shapes(names: tuple[str, ...], profile: ShapeProfile, which: str) -> str:
    return ",".join(f"{name}:{profile.ort_shape(which)}" for name in names)


def _accelerator_parameters(
    names: tuple[str, ...], precision: str, gpu: GpuProfile, max_length: int
) -> tuple[tuple[str, str], ...]:
    """Accelerator parameters: precision, workspace, caches, and one explicit profile over every shape.

    Without explicit shapes ONNX Runtime rebuilds its engine whenever a request exceeds the shapes seen so far.
    """
    buckets = gpu.buckets_up_to(max_length)
    whole = ShapeProfile(
        1, max(gpu.preferred_batch_sizes, default=1), gpu.max_batch_size, 1, median_low(buckets), max_length
    )
    parameters = [
        ("precision_mode", _ORT_MODES[precision]),
        ("max_workspace_size_bytes", str(default_workspace_bytes(gpu))),
        ("trt_engine_cache_enable", "1"),
        ("trt_engine_cache_path", ORT_TRT_CACHE),
        ("trt_timing_cache_enable", "1"),
        ("trt_timing_cache_path", ORT_TRT_CACHE),
        ("trt_builder_optimization_level", "3"),
        *((f"trt_profile_{which}_shapes", _shapes(names, whole, which)) for which in ("min", "opt", "max")),
    ]
    if precision == "hybrid":
        parameters.append(("trt_layer_norm_fp32_fallback", "1"))
    return tuple(parameters)


class OnnxRuntimeTrt(ServingBackend, name="onnxruntime-trt"):
    """Serves the FP32 graph; ONNX Runtime's TensorRT provider builds and caches the engines at load."""

    description = "onnxruntime_onnx with ONNX Runtime's TensorRT accelerator: the server builds engines (NGC)"
    precisions = tuple(_ORT_MODES)
    platform = "onnxruntime_onnx"
    bundled = False
    needs_gpu = True
    gate = GateKind.NONE
    files = (("model.onnx", "onnx"),)

    def model_folder(self, slot: ModelSlot) -> ModelDirPlan:
        """The platform's config with the TensorRT accelerator and its parameters."""
        names = tuple(t.name for t in slot.inputs)
        parameters = _accelerator_parameters(names, slot.precision, slot.gpu, slot.info.max_length)
        spec = slot.config(
            platform=self.platform,
            default_model_filename="model.onnx",
            gpu_accelerators=(Accelerator("tensorrt", parameters),),
        )
        return ModelDirPlan(spec, self.files)
