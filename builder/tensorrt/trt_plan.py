"""Planning a TensorRT engine build as data: route, shape profiles, FP32 layers, settings, thresholds.

Nothing here imports TensorRT. `builder.tensorrt.tensorrt_engine` executes an `EngineSpec` in a child process
(the file `reproduce_script` writes); this module decides everything before that, so it is tested
without a GPU. It also runs in the NVIDIA TensorRT container (Python 3.10), so it needs only the
standard library and numpy at import time.
"""

from __future__ import annotations

import json
import pprint
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from builder.common.errors import ConfigError, UserError
from builder.gpus import GpuProfile

if TYPE_CHECKING:
    import onnx

Array = npt.NDArray[Any]
# Field names whose key on disk (reproduce scripts, build records) is the older word: records keep their keys.
_ON_DISK = {"shape_profiles": "profiles", "shape_profile": "profile"}
_IN_CODE = {disk: code for code, disk in _ON_DISK.items()}

# The oldest TensorRT whose engines Triton can serve as configured: 10.0 brought INT64 tensors. 8.6 builds,
# but its headers have no DataType kINT64, so its parser turns the INT64 token inputs into INT32 inputs while
# the config says TYPE_INT64, and the server refuses the engine. Read against the headers up to 11.1.
OLDEST = (10, 0)
# Weak typing (builder precision flags, per-layer precision) exists up to 10.x; 10.12 deprecated it and 11
# removed it, so from 10.12 on mixed precision comes only from the Casts in the ONNX graph.
STRONG_FROM = (10, 12)
# Polygraphy 0.48.1, the oldest release on PyPI, was read and has every keyword used here:
# NetworkFromOnnxPath(strongly_typed=), CreateConfig(bf16=, tf32=, hardware_compatibility_level=,
# version_compatible=). Older ones are refused (0.47 has no strongly_typed=, says the review of issue 14).
POLYGRAPHY_OLDEST = (0, 48, 1)
HARDWARE_LEVELS = ("none", "ampere_plus", "same_compute_capability")
# HardwareCompatibilityLevel.SAME_COMPUTE_CAPABILITY first appears in TensorRT 10.9's NvInfer.h (AMPERE_PLUS in 8.6).
HARDWARE_LEVEL_SINCE = {"same_compute_capability": (10, 9)}
# The unit of GPU memory the GPU profiles use; workspace defaults are a fraction of it.
GIB = 1 << 30
# Exit codes of the reproduce script (builder.tensorrt.tensorrt_engine.main) besides 0 and a Python exception's 1.
EXIT_WRONG_TOOLCHAIN, EXIT_NOT_VERIFIED = 3, 4


class EngineError(UserError):
    """A TensorRT engine cannot be planned, built or verified as asked."""


class Route(Enum):
    """How the builder learns each layer's precision."""

    WEAK = "weak"  # builder flags + per-layer precision on the FP32 layers (TensorRT 10.0–10.11)
    STRONG = "strong"  # a strongly typed network: the Casts of the mixed-precision ONNX graph decide (≥ 10.12)


def parse_version(text: str) -> tuple[int, ...]:
    """(10, 5, 0, 18) from '10.5.0.18'; trailing tags such as 'b6' or '.post1' are ignored."""
    parts = []
    for piece in text.strip().split("."):
        digits = re.match(r"\d+", piece)
        if digits is None:
            break
        parts.append(int(digits.group()))
    if len(parts) < 2:
        raise EngineError(f"cannot read TensorRT version '{text}'", hint="give it as MAJOR.MINOR[.PATCH], e.g. 10.5.0")
    return tuple(parts)


def choose_route(version: str) -> Route:
    """Weak typing for TensorRT 10.0–10.11, a strongly typed network from 10.12 on (11 has nothing else)."""
    parsed = parse_version(version)
    if parsed < OLDEST:
        raise EngineError(
            f"TensorRT {version} is older than 10.0: its ONNX parser turns the INT64 token inputs into INT32, "
            "which the repository's TYPE_INT64 config does not match",
            hint="use TensorRT 10.0 or newer (nvcr.io/nvidia/tensorrt:24.10-py3 has 10.5)",
        )
    return Route.STRONG if parsed >= STRONG_FROM else Route.WEAK


def toolchain_problem(planned: str, tensorrt: str, polygraphy: str) -> str | None:
    """Why the installed TensorRT and Polygraphy cannot run a build planned for TensorRT `planned`, or None."""
    if choose_route(tensorrt) is not choose_route(planned):
        return f"this build was planned for TensorRT {planned} ({choose_route(planned).value} typing), not {tensorrt}"
    if parse_version(polygraphy) < POLYGRAPHY_OLDEST:
        oldest = ".".join(map(str, POLYGRAPHY_OLDEST))
        return (
            f"Polygraphy {polygraphy} is older than {oldest}, the oldest checked to take every keyword this build uses"
        )
    return None


@dataclass(frozen=True)
class ShapeProfile:
    """One TensorRT optimization profile (a shape profile): batch × length ranges shared by every token input.

    Not a GPU profile (builder/gpus.py), nor `tritonbuild profile`.
    """

    min_batch: int
    opt_batch: int
    max_batch: int
    min_length: int
    opt_length: int
    max_length: int

    def __post_init__(self) -> None:
        batches = self.min_batch <= self.opt_batch <= self.max_batch
        lengths = self.min_length <= self.opt_length <= self.max_length
        if not (batches and lengths and self.min_batch >= 1 and self.min_length >= 1):
            raise ConfigError(f"invalid shape profile {self}")

    def shapes(self, names: Sequence[str]) -> dict[str, list[list[int]]]:
        """min/opt/max shape per input name, as TensorRT and Polygraphy take them."""
        ranges = [
            [self.min_batch, self.min_length],
            [self.opt_batch, self.opt_length],
            [self.max_batch, self.max_length],
        ]
        return {name: [list(r) for r in ranges] for name in names}

    def ort_shape(self, which: str) -> str:
        """'BxS' for ONNX Runtime's trt_profile_*_shapes (which: min, opt or max)."""
        batch, length = {
            "min": (self.min_batch, self.min_length),
            "opt": (self.opt_batch, self.opt_length),
            "max": (self.max_batch, self.max_length),
        }[which]
        return f"{batch}x{length}"


def _opt_batch(gpu: GpuProfile) -> int:
    # Under load the dynamic batcher forms the largest preferred batch; tune kernels for that one.
    return max(gpu.preferred_batch_sizes, default=gpu.max_batch_size)


def shape_profiles(gpu: GpuProfile, max_length: int, lengths: Sequence[int] | None = None) -> tuple[ShapeProfile, ...]:
    """One shape profile per length bucket (or per chosen length), together covering lengths 1..max_length.

    Each covers the lengths above the previous one and is tuned (opt) at its own upper end, because the
    tokenizer model pads every text to a bucket. The model's maximum length always closes the list:
    the tokenizer pads up to it, so an engine without it would refuse the longest texts.
    """
    if not gpu.is_gpu:
        raise ConfigError(f"GPU profile {gpu.name} is not a GPU", hint="TensorRT engines need a GPU target")
    chosen = sorted(set(lengths)) if lengths else list(gpu.buckets_up_to(max_length))
    if chosen[0] < 1 or chosen[-1] > max_length:
        raise ConfigError(f"shape profile lengths {chosen} must lie in 1..{max_length} (the model's maximum length)")
    if chosen[-1] != max_length:
        chosen.append(max_length)
    lows = [1, *(length + 1 for length in chosen[:-1])]
    opt = _opt_batch(gpu)
    return tuple(
        ShapeProfile(1, opt, gpu.max_batch_size, low, high, high) for low, high in zip(lows, chosen, strict=True)
    )


def default_workspace_bytes(gpu: GpuProfile) -> int:
    """A quarter of the GPU's memory, 1–8 GiB: tactics get room, the serving instances keep theirs."""
    return min(max(gpu.memory_gib * GIB // 4, GIB), 8 * GIB)


@dataclass(frozen=True)
class BuildSettings:
    """Builder settings beyond precision and shape profiles."""

    workspace_bytes: int
    timing_cache: str  # loaded before and merged back after every build, so later builds skip timing
    optimization_level: int = 3  # TensorRT's default; 5 searches longest
    hardware_compatibility: str = "none"  # none, ampere_plus, same_compute_capability
    version_compatible: bool = False  # a plan that later TensorRT versions can load (with its lean runtime)
    # Polygraphy clears TensorRT's TF32 flag unless asked: FP32 layers then run strict FP32 (slower on Ampere+).
    tf32: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.optimization_level <= 5:
            raise ConfigError(f"builder optimization level {self.optimization_level} is not in 0..5")
        if self.hardware_compatibility not in HARDWARE_LEVELS:
            raise ConfigError(
                f"unknown hardware compatibility '{self.hardware_compatibility}'",
                hint=f"choose one of: {', '.join(HARDWARE_LEVELS)}",
            )
        if self.workspace_bytes < 1 << 20:
            raise ConfigError(f"workspace of {self.workspace_bytes} bytes is below 1 MiB")

    def check_target(self, gpu: GpuProfile, version: str) -> None:
        """Refuse hardware compatibility the target or the TensorRT version cannot have."""
        level = self.hardware_compatibility
        if level == "ampere_plus" and (gpu.compute_capability or (0, 0)) < (8, 0):
            raise ConfigError(
                f"hardware compatibility ampere_plus needs compute capability 8.0 or newer; {gpu.name} has "
                f"{'.'.join(map(str, gpu.compute_capability or ()))}",
                hint="build without --hardware-compat for this GPU",
            )
        since = HARDWARE_LEVEL_SINCE.get(level)
        if since and parse_version(version) < since:
            raise EngineError(
                f"hardware compatibility {level} needs TensorRT {'.'.join(map(str, since))} or newer, not {version}",
                hint="use ampere_plus or none with this TensorRT, or a newer container",
            )


def default_timing_cache(version: str, gpu: GpuProfile) -> Path:
    """Per TensorRT version and GPU: timing caches from other versions or GPUs are of no use."""
    return Path.home() / ".cache" / "tritonbuild" / "tensorrt" / f"timing-{version}-{gpu.name}.cache"


@dataclass(frozen=True)
class MemoryEstimate:
    """GPU memory the served model holds (builder.tensorrt.trt_memory's estimate; no engine was measured)."""

    instances: int
    contexts_per_instance: int  # one per shape profile each instance lists (Triton's TensorRT backend)
    weights_bytes: int  # per instance: engines with dynamic shapes are not shared between instances
    context_bytes: int  # per context, sized for the largest shape profile; an unfused peak, so an upper estimate
    gpu_bytes: int  # the GPU profile's memory
    unknown_tensors: int  # intermediate tensors whose shape could not be resolved (not counted)

    @property
    def total_bytes(self) -> int:
        """Weights of every instance plus every execution context."""
        return self.instances * (self.weights_bytes + self.contexts_per_instance * self.context_bytes)

    def summary(self) -> str:
        """One line: the total and how it is made up, against the GPU's memory."""
        gib = 1 / GIB
        return (
            f"GPU memory estimate {self.total_bytes * gib:.1f} of {self.gpu_bytes * gib:.0f} GiB: "
            f"{self.instances} instances × ({self.weights_bytes * gib:.2f} GiB weights + "
            f"{self.contexts_per_instance} contexts × {self.context_bytes * gib:.2f} GiB activations at the largest "
            "shape profile)"
        )

    def warning(self) -> str | None:
        """What to change when the estimate exceeds the GPU's memory, else None."""
        if self.total_bytes <= self.gpu_bytes:
            return None
        return (
            f"the estimate exceeds the GPU's {self.gpu_bytes / GIB:.0f} GiB: the server may fail to load the model; "
            "use fewer --shape-profile-lengths or a GPU profile with a smaller max batch (it is an unfused upper "
            "estimate: TensorRT's fusions need less)"
        )


# ---------------------------------------------------------------------------------------------------------
# Precision


@dataclass(frozen=True)
class PrecisionSetup:
    """What a precision name means on one route."""

    flags: tuple[str, ...]  # builder precision flags (weak route): fp16, bf16, int8
    pin_recipe: str | None  # the precision preset whose FP32 nodes are pinned (weak route)
    network_recipe: str | None  # the preset applied to the ONNX graph before parsing (strong route)


def precision_setup(precision: str, route: Route, version: str, gpu: GpuProfile) -> PrecisionSetup:
    """Flags, pinned layers and graph rewrite for `precision`; refuses what the route or GPU cannot do.

    The GPU's part is the support matrix's answer for the tensorrt backend. It is imported here: this module
    also runs in the TensorRT container, where the registry's imports are not needed (nor all present).
    """
    from builder.support import check

    check("tensorrt", precision, gpu).raise_if_refused()
    if precision == "fp32":
        return PrecisionSetup((), None, None)
    if route is Route.STRONG:
        if precision == "int8":
            raise EngineError(
                f"INT8 on TensorRT {version} needs a graph with Q/DQ nodes (implicit INT8 calibration is weak typing)",
                hint="use fp16 or hybrid, or build with a TensorRT older than 10.12",
            )
        return PrecisionSetup((), None, precision)
    flags = {"fp16": ("fp16",), "hybrid": ("fp16",), "bf16": ("bf16",), "int8": ("int8", "fp16")}[precision]
    # INT8 keeps the hybrid recipe's FP32 layers (softmax, normalisation) and lets the rest choose INT8 or FP16.
    return PrecisionSetup(flags, "hybrid" if precision == "int8" else precision, None)


def fp32_layer_nodes(model: onnx.ModelProto, recipe: str) -> dict[str, str]:
    """ONNX node name → op type for every node the precision recipe keeps in FP32 (the layers to pin)."""
    from builder.precision.presets import get_recipe
    from builder.precision.variants import fp32_nodes

    names = fp32_nodes(model, get_recipe(recipe))
    return {node.name: node.op_type for node in model.graph.node if node.name in names}


# ---------------------------------------------------------------------------------------------------------
# Matching TensorRT layers to ONNX nodes (used by builder.tensorrt.tensorrt_engine on the parsed network)

# TensorRT's ONNX parser (10.x) stores "[ONNX Layer: <node name> | ...]" in each layer's metadata.
_METADATA = re.compile(r"^\[ONNX Layer: (.*?)(?: \| .*)?\]$")
FLOAT_TYPES = frozenset({"FLOAT", "HALF", "BF16"})
# Layers whose arithmetic has a precision: pinned to FP32 computation (and FP32 outputs where they are float).
# A comparison (the EQUAL the parser makes of IsNaN) computes on float inputs and has a BOOL output.
COMPUTE_LAYERS = frozenset(
    {
        "ACTIVATION", "ELEMENTWISE", "UNARY", "SOFTMAX", "REDUCE", "NORMALIZATION", "MATRIX_MULTIPLY",
        "SCALE", "CONVOLUTION", "DECONVOLUTION", "EINSUM", "POOLING", "CUMULATIVE", "RAGGED_SOFTMAX",
    }
)  # fmt: skip
# Layers that only move values: their outputs are pinned to FP32 so an FP32 region is not stored in FP16.
# The value is which inputs carry the data: a SELECT (what the parser makes of Where) picks from inputs 1 and
# 2 under the BOOL condition at 0; the others move input 0 (a SHUFFLE's input 1 is its integer shape).
MOVE_LAYERS = {
    "SHUFFLE": (0,), "SLICE": (0,), "CONCATENATION": (0,), "PADDING": (0,), "SQUEEZE": (0,), "UNSQUEEZE": (0,),
    "SELECT": (1, 2),
}  # fmt: skip


def source_node(layer_name: str, metadata: str, nodes: Collection[str]) -> str | None:
    """The ONNX node a parsed layer came from: its metadata, else its name (the parser appends _N to repeats)."""
    found = _METADATA.match(metadata or "")
    if found and found.group(1) in nodes:
        return found.group(1)
    if layer_name in nodes:
        return layer_name
    base, sep, suffix = layer_name.rpartition("_")
    return base if sep and suffix.isdigit() and base in nodes else None


@dataclass(frozen=True)
class LayerPin:
    """What to fix on one layer: its computation precision (compute layers) and which outputs are FP32."""

    precision: bool
    outputs: tuple[int, ...]


def layer_pin(layer_type: str, input_types: Sequence[str], output_types: Sequence[str]) -> LayerPin | None:
    """How to keep a layer of an FP32 node in FP32, or None when its type or tensors carry no float arithmetic.

    Shape, constant, cast and index layers are left alone: forcing FP32 on an INT64 shape computation
    would make the build fail. A compute layer needs all its inputs float (its outputs may be BOOL); a move
    layer needs float data inputs and a float output.
    """
    outputs = tuple(i for i, t in enumerate(output_types) if t in FLOAT_TYPES)
    if not input_types:
        return None
    if layer_type in COMPUTE_LAYERS and all(t in FLOAT_TYPES for t in input_types):
        return LayerPin(True, outputs)
    data = MOVE_LAYERS.get(layer_type, ())
    if outputs and data and all(i < len(input_types) and input_types[i] in FLOAT_TYPES for i in data):
        return LayerPin(False, outputs)
    return None


@dataclass(frozen=True)
class ParsedLayer:
    """What pinning reads of one layer of the parsed network (TensorRT's ILayer, as plain data)."""

    name: str
    metadata: str
    type: str  # LayerType member name: SOFTMAX, SELECT, ...
    inputs: tuple[str, ...]  # DataType member names of its input tensors
    outputs: tuple[str, ...]


@dataclass(frozen=True)
class PinPlan:
    """Which layers to pin, and every FP32 node of the plan that none of them came from, with the reason."""

    pins: dict[int, LayerPin]  # layer index in the network → what to fix on it
    pinned_nodes: dict[str, tuple[str, ...]]  # FP32 node → names of its pinned layers
    unpinned: dict[str, str]  # FP32 node → why none of its layers is pinned


def plan_pins(layers: Sequence[ParsedLayer], nodes: Mapping[str, str]) -> PinPlan:
    """Match the parsed network's layers to the recipe's FP32 nodes and decide each layer's pin.

    A node counts as pinned when at least one of its layers is; the rest are reported, never dropped.
    """
    pins: dict[int, LayerPin] = {}
    pinned: dict[str, list[str]] = {}
    seen: dict[str, list[str]] = {}
    for index, layer in enumerate(layers):
        node = source_node(layer.name, layer.metadata, nodes)
        if node is None:
            continue
        seen.setdefault(node, []).append(layer.type)
        pin = layer_pin(layer.type, layer.inputs, layer.outputs)
        if pin is not None:
            pins[index] = pin
            pinned.setdefault(node, []).append(layer.name)
    unpinned = {
        node: (
            f"its layers ({', '.join(seen[node])}) carry no float arithmetic to keep in FP32"
            if node in seen
            else "no layer of the parsed network came from it (folded or fused by the parser)"
        )
        for node in nodes
        if node not in pinned
    }
    return PinPlan(pins, {node: tuple(names) for node, names in pinned.items()}, unpinned)


# ---------------------------------------------------------------------------------------------------------
# Verification thresholds and metrics


@dataclass(frozen=True)
class Thresholds:
    """Engine vs ONNX Runtime FP32 on real text: per-token cosine and absolute difference on valid tokens."""

    min_cosine: float
    max_abs_diff: float


# FP32/FP16/hybrid use the precision work's bar (cosine ≥ 0.9998 per token, no NaN). The BF16, INT8 and
# absolute-difference bounds are starting points: no TensorRT engine was built or measured here.
DEFAULT_THRESHOLDS = {
    "fp32": Thresholds(0.99999, 1e-3),
    "fp16": Thresholds(0.9998, 5e-2),
    "hybrid": Thresholds(0.9998, 5e-2),
    "bf16": Thresholds(0.999, 2e-1),
    "int8": Thresholds(0.99, 1.0),
}


@dataclass(frozen=True)
class OutputFidelity:
    """How one output of one verification batch compares with the reference."""

    output: str
    shape_profile: int  # the index of the shape profile it ran under
    shape: tuple[int, ...]
    min_cosine: float
    mean_cosine: float
    max_abs_diff: float
    nonfinite: int  # NaN or Inf values in the engine's output at valid positions

    def record(self) -> dict[str, Any]:
        """The entry of the build record's `verification` list."""
        return _on_disk(asdict(self))

    def problems(self, limits: Thresholds) -> list[str]:
        """Every threshold this output misses, with its numbers."""
        where = f"{self.output} (shape profile {self.shape_profile}, shape {list(self.shape)})"
        found = []
        if self.nonfinite:
            found.append(f"{where}: {self.nonfinite} NaN/Inf values")
        if not self.min_cosine >= limits.min_cosine:
            found.append(f"{where}: min cosine {self.min_cosine:.6f} < {limits.min_cosine}")
        if not self.max_abs_diff <= limits.max_abs_diff:
            found.append(f"{where}: max abs diff {self.max_abs_diff:.4g} > {limits.max_abs_diff}")
        return found


def _valid_rows(array: Array, mask: Array) -> Array:
    """Per-token vectors at unmasked positions ([B, S, H] with a [B, S] mask), else one row per example."""
    values: Array = np.asarray(array, dtype=np.float64)
    if values.ndim >= 3 and values.shape[:2] == mask.shape:
        values = values[mask.astype(bool)]
        return values.reshape(values.shape[0], -1)
    return values.reshape(values.shape[0], -1)


def compare_outputs(name: str, shape_profile: int, reference: Array, candidate: Array, mask: Array) -> OutputFidelity:
    """Cosine per token (or per row), max abs difference and non-finite count, on valid positions only."""
    ref, got = _valid_rows(reference, mask), _valid_rows(candidate, mask)
    nonfinite = int(np.count_nonzero(~np.isfinite(got)))
    got = np.nan_to_num(got, nan=0.0, posinf=0.0, neginf=0.0)
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1)
    dots = np.einsum("ij,ij->i", ref, got)
    cosine = np.where(norms > 0, dots / np.where(norms > 0, norms, 1.0), 1.0)
    return OutputFidelity(
        output=name,
        shape_profile=shape_profile,
        shape=tuple(int(d) for d in np.shape(candidate)),
        min_cosine=float(cosine.min(initial=1.0)),
        mean_cosine=float(cosine.mean()) if cosine.size else 1.0,
        max_abs_diff=float(np.abs(ref - got).max(initial=0.0)),
        nonfinite=nonfinite,
    )


def feed_key(shape_profile: int, batch: int, name: str) -> str:
    """The .npz key of one input of one verification batch of one shape profile."""
    return f"p{shape_profile}:b{batch}:{name}"


def group_feeds(arrays: Mapping[str, Array]) -> dict[int, list[dict[str, Array]]]:
    """Shape profile index → its batches (input name → array), in batch order; the inverse of `feed_key`."""
    grouped: dict[int, dict[int, dict[str, Array]]] = {}
    for key, value in arrays.items():
        shape, batch, name = key.split(":", 2)
        grouped.setdefault(int(shape[1:]), {}).setdefault(int(batch[1:]), {})[name] = value
    return {shape: [batches[b] for b in sorted(batches)] for shape, batches in sorted(grouped.items())}


# ---------------------------------------------------------------------------------------------------------
# The spec: everything the child process needs, as JSON


def _on_disk(plain: Mapping[str, Any]) -> dict[str, Any]:
    return {_ON_DISK.get(key, key): value for key, value in plain.items()}


def _enum_value(value: object) -> object:
    if isinstance(value, Enum):
        return value.value
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


@dataclass(frozen=True)
class EngineSpec:
    """One engine build, fully decided; paths are relative to the folder of the engine."""

    engine: str  # the .plan file to write
    network_onnx: str  # the graph TensorRT parses (the mixed-precision variant on the strong route)
    reference_onnx: str  # the FP32 graph ONNX Runtime runs for verification
    gpu: str
    precision: str
    tensorrt_version: str  # the version this was planned for; the build refuses another route
    route: Route
    flags: tuple[str, ...]
    fp32_nodes: dict[str, str]  # node name → op type, pinned on the weak route
    input_names: tuple[str, ...]
    shape_profiles: tuple[ShapeProfile, ...]  # written as "profiles", the key of every record so far
    settings: BuildSettings
    feeds: str | None = None  # .npz of real-text token ids per shape profile (verification, INT8 calibration)
    thresholds: Thresholds | None = None  # None: the engine is not verified
    memory: MemoryEstimate | None = None  # what the served model will hold on the GPU (an estimate)
    extra: dict[str, str] = field(default_factory=dict)  # provenance only (source model, tool version)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only (strings, numbers, lists, dicts); `from_dict` reads it back."""
        plain: dict[str, Any] = json.loads(json.dumps(asdict(self), default=_enum_value))
        return _on_disk(plain)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> EngineSpec:
        """The spec written by `to_dict`."""
        fields = {_IN_CODE.get(key, key): value for key, value in raw.items()}
        return cls(
            **{
                **fields,
                "route": Route(raw["route"]),
                "flags": tuple(raw["flags"]),
                "input_names": tuple(raw["input_names"]),
                "shape_profiles": tuple(ShapeProfile(**p) for p in raw["profiles"]),
                "settings": BuildSettings(**raw["settings"]),
                "thresholds": Thresholds(**raw["thresholds"]) if raw.get("thresholds") else None,
                "memory": MemoryEstimate(**raw["memory"]) if raw.get("memory") else None,
            }
        )

    @property
    def precision_constraints(self) -> str | None:
        """'obey' when layers are pinned: TensorRT must not trade their FP32 for a faster kernel."""
        return "obey" if self.route is Route.WEAK and self.fp32_nodes else None


def sidecar(engine: Path, suffix: str) -> Path:
    """A file beside the engine: model.plan → model.plan.<suffix>."""
    return engine.with_name(f"{engine.name}.{suffix}")


def reproduce_script(spec: EngineSpec, tool_version: str) -> str:
    """A standalone Python file that redoes the build (and verification) of `spec` from the folder it sits in."""
    doc = (
        f'"""Rebuild {spec.engine}: TensorRT {spec.tensorrt_version}, {spec.route.value} typing, '
        f"precision {spec.precision}, GPU profile {spec.gpu}.\n\n"
        f"Written by tritonbuild {tool_version}, which runs this file in a child process to build the engine.\n"
        f"Build again on the target GPU with: python3 {spec.engine}.build.py\n"
        "It needs TensorRT, polygraphy, numpy and onnxruntime, and this project importable\n"
        '(pip install -e REPO, or PYTHONPATH=REPO). Paths in SPEC are relative to this folder.\n"""\n'
    )
    return (
        f"#!/usr/bin/env python3\n{doc}\n"
        "import sys\nfrom pathlib import Path\n\n"
        "from builder.tensorrt.tensorrt_engine import main\n\n"
        f"SPEC = {pprint.pformat(spec.to_dict(), width=110, sort_dicts=True)}\n\n"
        'if __name__ == "__main__":\n'
        "    sys.exit(main(SPEC, Path(__file__).resolve().parent))\n"
    )
