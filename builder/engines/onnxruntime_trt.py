"""Model configs for models TensorRT serves: tensorrt_plan engines, and ONNX Runtime's TensorRT accelerator."""

from __future__ import annotations

from statistics import median_low
from typing import TYPE_CHECKING, Any

from builder.common.errors import ConfigError
from builder.gpus import GpuProfile
from builder.repository.modelconfig import Accelerator, InstanceGroup, ModelConfigSpec
from builder.tensorrt.trt_plan import OptProfile, check_precision, default_workspace_bytes, optimization_profiles

if TYPE_CHECKING:
    from builder.sources.source import ModelInfo

TENSORRT_ENGINES = {
    "tensorrt": "a TensorRT engine (tensorrt_plan), built where TensorRT and the target GPU are (NGC container)",
    "onnxruntime-trt": "onnxruntime_onnx with ONNX Runtime's TensorRT accelerator: the server builds engines (NGC)",
}
ENGINE_FILE = "model.plan"
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

Files = tuple[tuple[str, str], ...]


def _shapes(names: tuple[str, ...], profile: OptProfile, which: str) -> str:
    return ",".join(f"{name}:{profile.ort_shape(which)}" for name in names)


def _ort_trt_parameters(names: tuple[str, ...], precision: str, gpu: GpuProfile, max_length: int) -> Any:
    """Accelerator parameters: precision, workspace, caches, and one explicit profile over every shape.

    Without explicit shapes ONNX Runtime rebuilds its engine whenever a request exceeds the shapes seen so far.
    """
    buckets = gpu.buckets_up_to(max_length)
    whole = OptProfile(
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


def tensorrt_model(
    engine: str, info: ModelInfo, precision: str, gpu: GpuProfile, common: dict[str, Any]
) -> tuple[ModelConfigSpec, Files]:
    """The config and version-1 files of the model folder for `engine` ("tensorrt" or "onnxruntime-trt")."""
    if not gpu.is_gpu:
        raise ConfigError(f"engine {engine} needs a GPU profile, not {gpu.name}", hint="choose --gpu t4, a100, ...")
    names = tuple(t.name for t in common["inputs"])
    if engine == "onnxruntime-trt":
        if precision not in _ORT_MODES:
            raise ConfigError(
                f"engine onnxruntime-trt has no precision '{precision}'", hint=f"choose {', '.join(_ORT_MODES)}"
            )
        parameters = _ort_trt_parameters(names, precision, gpu, info.max_length)
        spec = ModelConfigSpec(
            platform="onnxruntime_onnx",
            default_model_filename="model.onnx",
            gpu_accelerators=(Accelerator("tensorrt", parameters),),
            **common,
        )
        return spec, (("model.onnx", "onnx"),)
    check_precision(precision, gpu)
    # Triton picks the best profile among an instance's own, but never routes a request to an instance by
    # its shape: every instance must hold every profile (each pair is one TensorRT execution context).
    profiles = tuple(str(i) for i in range(len(optimization_profiles(gpu, info.max_length))))
    groups = (InstanceGroup(gpu.model_instances, "KIND_GPU", profiles, common["instance_groups"][0].gpus),)
    spec = ModelConfigSpec(
        platform="tensorrt_plan", default_model_filename=ENGINE_FILE, **{**common, "instance_groups": groups}
    )
    # The FP32 ONNX graph stays beside the engine: the engine's reproduce script parses and verifies against it.
    return spec, (("model.onnx", "onnx"), (ENGINE_FILE, "tensorrt_engine"))
