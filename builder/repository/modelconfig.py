"""Triton model configurations as typed data, checked through Triton's own ModelConfig protobuf."""

from __future__ import annotations

from dataclasses import dataclass, field

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from builder.common.errors import ConfigError

DTYPES = ("TYPE_BOOL", "TYPE_INT32", "TYPE_INT64", "TYPE_FP16", "TYPE_FP32", "TYPE_BF16", "TYPE_STRING")


@dataclass(frozen=True)
class TensorSpec:
    """One input or output; dims exclude the batch dimension, -1 is variable."""

    name: str
    dtype: str
    dims: tuple[int, ...]

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ConfigError(f"tensor {self.name}: unknown dtype {self.dtype}")
        if not self.dims or any(d == 0 or d < -1 for d in self.dims):
            raise ConfigError(f"tensor {self.name}: invalid dims {self.dims}")


@dataclass(frozen=True)
class DynamicBatching:
    """Triton's dynamic batcher settings."""

    preferred_batch_sizes: tuple[int, ...]
    max_queue_delay_us: int


@dataclass(frozen=True)
class InstanceGroup:
    """How many copies of a model run, and where."""

    count: int
    kind: str  # KIND_CPU or KIND_GPU
    shape_profiles: tuple[str, ...] = ()  # TensorRT shape profiles (indices) each instance may choose from
    gpus: tuple[int, ...] = ()  # KIND_GPU: `count` instances on each of these GPUs; () lets Triton use every GPU

    def __post_init__(self) -> None:
        if self.count < 1 or self.kind not in ("KIND_CPU", "KIND_GPU"):
            raise ConfigError(f"invalid instance group {self.count} × {self.kind}")
        if self.shape_profiles and (self.kind != "KIND_GPU" or not all(p.isdigit() for p in self.shape_profiles)):
            raise ConfigError(f"instance group profiles {self.shape_profiles} need KIND_GPU and shape profile indices")
        if self.gpus and (self.kind != "KIND_GPU" or min(self.gpus) < 0 or len(set(self.gpus)) != len(self.gpus)):
            raise ConfigError(f"instance group GPUs {self.gpus} need KIND_GPU and distinct device indices")


@dataclass(frozen=True)
class Accelerator:
    """An execution accelerator of Triton's ONNX Runtime backend (e.g. "tensorrt") and its parameters."""

    name: str
    parameters: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class EnsembleStep:
    """One step of an ensemble: model input/output names mapped to ensemble tensor names."""

    model_name: str
    input_map: tuple[tuple[str, str], ...]
    output_map: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class ModelConfigSpec:
    """Everything a config.pbtxt says, for a Python backend, ONNX Runtime, TensorRT or ensemble model."""

    name: str
    max_batch_size: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    backend: str = ""
    platform: str = ""
    default_model_filename: str = ""
    dynamic_batching: DynamicBatching | None = None
    instance_groups: tuple[InstanceGroup, ...] = ()
    parameters: tuple[tuple[str, str], ...] = ()
    steps: tuple[EnsembleStep, ...] = field(default=())
    gpu_accelerators: tuple[Accelerator, ...] = ()

    def __post_init__(self) -> None:
        if bool(self.backend) == bool(self.platform):
            raise ConfigError(f"model {self.name}: set exactly one of backend or platform")
        if self.platform == "ensemble" and (not self.steps or self.dynamic_batching or self.instance_groups):
            raise ConfigError(f"ensemble {self.name}: needs steps and takes no batcher or instance group")
        if self.max_batch_size < 0:
            raise ConfigError(f"model {self.name}: max_batch_size must be >= 0")
        if self.gpu_accelerators and self.platform != "onnxruntime_onnx":
            raise ConfigError(f"model {self.name}: GPU execution accelerators belong to onnxruntime_onnx models")
        if any(g.shape_profiles for g in self.instance_groups) and self.platform != "tensorrt_plan":
            raise ConfigError(f"model {self.name}: instance group profiles belong to tensorrt_plan models")
        names = [t.name for t in (*self.inputs, *self.outputs)]
        if len(names) != len(set(names)):
            raise ConfigError(f"model {self.name}: duplicate tensor names {names}")

    def tensor(self, name: str, inputs: bool) -> TensorSpec | None:
        """The input (or output) called `name`, if any."""
        return next((t for t in (self.inputs if inputs else self.outputs) if t.name == name), None)


def parse_config(text: str, source: str = "config.pbtxt") -> model_config_pb2.ModelConfig:
    """Parse config text with Triton's ModelConfig schema; a typo in any field is an error here."""
    try:
        return text_format.Parse(text, model_config_pb2.ModelConfig())
    except text_format.ParseError as exc:
        raise ConfigError(f"{source} does not match Triton's ModelConfig schema: {exc}") from exc


def _dims_compatible(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    return len(a) == len(b) and all(x == y or -1 in (x, y) for x, y in zip(a, b, strict=True))


def _check_edge(ensemble: str, what: str, left: TensorSpec, right: TensorSpec) -> list[str]:
    if left.dtype != right.dtype:
        return [f"{ensemble}: {what}: dtype {left.dtype} vs {right.dtype}"]
    if not _dims_compatible(left.dims, right.dims):
        return [f"{ensemble}: {what}: dims {list(left.dims)} vs {list(right.dims)}"]
    return []


def _check_step(
    ensemble: ModelConfigSpec, step: EnsembleStep, model: ModelConfigSpec, available: dict[str, TensorSpec]
) -> list[str]:
    problems: list[str] = []
    for model_input, tensor in step.input_map:
        spec = model.tensor(model_input, inputs=True)
        if spec is None:
            problems.append(f"{ensemble.name}: {model.name} has no input {model_input}")
        elif tensor not in available:
            problems.append(f"{ensemble.name}: {tensor} (input of {model.name}) is produced by no earlier step")
        else:
            problems += _check_edge(ensemble.name, f"{tensor} → {model.name}.{model_input}", available[tensor], spec)
    mapped = {m for m, _ in step.input_map}
    problems += [
        f"{ensemble.name}: input {t.name} of {model.name} is not mapped" for t in model.inputs if t.name not in mapped
    ]
    for model_output, tensor in step.output_map:
        spec = model.tensor(model_output, inputs=False)
        if spec is None:
            problems.append(f"{ensemble.name}: {model.name} has no output {model_output}")
        else:
            available[tensor] = spec
    if model.max_batch_size < ensemble.max_batch_size:
        problems.append(
            f"{ensemble.name}: {model.name} max_batch_size {model.max_batch_size} "
            f"< ensemble's {ensemble.max_batch_size}"
        )
    return problems


def check_ensemble(ensemble: ModelConfigSpec, members: dict[str, ModelConfigSpec]) -> None:
    """Cross-check an ensemble's wiring (names, dtypes, dims, order) against its member models."""
    available = {t.name: t for t in ensemble.inputs}
    problems: list[str] = []
    for step in ensemble.steps:
        model = members.get(step.model_name)
        if model is None:
            problems.append(f"{ensemble.name}: step model {step.model_name} is not in the repository")
            continue
        problems += _check_step(ensemble, step, model, available)
    for out in ensemble.outputs:
        if out.name not in available:
            problems.append(f"{ensemble.name}: output {out.name} is produced by no step")
        else:
            problems += _check_edge(ensemble.name, f"output {out.name}", available[out.name], out)
    if problems:
        raise ConfigError("ensemble wiring is inconsistent:\n  " + "\n  ".join(problems))
