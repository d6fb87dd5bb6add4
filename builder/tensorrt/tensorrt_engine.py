"""Build and verify one TensorRT engine through Polygraphy: the only module that calls TensorRT.

It runs in a child process, the reproduce script beside the engine (`builder.tensorrt.engine_build` starts it),
so a crash inside TensorRT cannot take the caller down. It executes an `EngineSpec` decided beforehand
by `builder.tensorrt.trt_plan`: network from ONNX (strongly typed, or weakly typed with FP32 layers pinned),
builder config (shape profiles, workspace, timing cache, optimisation level, compatibility flags), build,
save, then Polygraphy's comparator against ONNX Runtime FP32 on real-text token ids. Written against
the TensorRT 10.x Python API and type-checked with tensorrt-stubs; no engine was built where it was
written (no TensorRT, no GPU there).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polygraphy  # type: ignore[import-untyped]
import tensorrt as trt
from polygraphy.backend.common import BytesFromPath, SaveBytes  # type: ignore[import-untyped]
from polygraphy.backend.onnxrt import OnnxrtRunner, SessionFromOnnx  # type: ignore[import-untyped]
from polygraphy.backend.trt import (  # type: ignore[import-untyped]
    Calibrator,
    CreateConfig,
    EngineBytesFromNetwork,
    EngineFromBytes,
    NetworkFromOnnxPath,
    PostprocessNetwork,
    Profile,
    TrtRunner,
)
from polygraphy.comparator import Comparator  # type: ignore[import-untyped]

from builder.tensorrt.trt_plan import (
    EXIT_NOT_VERIFIED,
    EXIT_WRONG_TOOLCHAIN,
    Array,
    EngineSpec,
    OutputFidelity,
    ParsedLayer,
    PinPlan,
    Route,
    compare_outputs,
    group_feeds,
    plan_pins,
    sidecar,
    toolchain_problem,
)

MASK_INPUT = "attention_mask"


def _dtype_names(tensors: Sequence[trt.ITensor | None]) -> tuple[str, ...]:
    return tuple(t.dtype.name for t in tensors if t is not None)


def _parsed_layer(layer: trt.ILayer) -> ParsedLayer:
    return ParsedLayer(
        name=layer.name,
        metadata=layer.metadata,
        type=layer.type.name,
        inputs=_dtype_names([layer.get_input(i) for i in range(layer.num_inputs)]),
        outputs=_dtype_names([layer.get_output(i) for i in range(layer.num_outputs)]),
    )


def pin_fp32_layers(network: trt.INetworkDefinition, nodes: Mapping[str, str]) -> PinPlan:
    """Set FP32 precision and FP32 outputs on the layers parsed from `nodes`; what was pinned and what was not."""
    layers = [network.get_layer(index) for index in range(network.num_layers)]
    plan = plan_pins([_parsed_layer(layer) for layer in layers], nodes)
    for index, pin in plan.pins.items():
        if pin.precision:
            layers[index].precision = trt.DataType.FLOAT
        for output in pin.outputs:
            layers[index].set_output_type(output, trt.DataType.FLOAT)
    if nodes and not plan.pins:
        raise RuntimeError(f"none of the {len(nodes)} FP32 nodes of the plan matched a layer of the parsed network")
    return plan


def _network(spec: EngineSpec, folder: Path, pinned: list[PinPlan]) -> Callable[[], Any]:
    """Polygraphy's network loader: parse the ONNX graph, then pin the FP32 layers on the weak route."""
    parse = NetworkFromOnnxPath(str(folder / spec.network_onnx), strongly_typed=spec.route is Route.STRONG)
    if not spec.fp32_nodes:
        return parse  # type: ignore[no-any-return]

    def pin(network: trt.INetworkDefinition) -> None:
        pinned.append(pin_fp32_layers(network, spec.fp32_nodes))

    return PostprocessNetwork(parse, pin, name="pin FP32 layers")  # type: ignore[no-any-return]


def _hardware_level(name: str) -> trt.HardwareCompatibilityLevel | None:
    if name == "ampere_plus":
        return trt.HardwareCompatibilityLevel.AMPERE_PLUS
    if name == "same_compute_capability":
        return trt.HardwareCompatibilityLevel.SAME_COMPUTE_CAPABILITY
    return None


def _config(spec: EngineSpec, folder: Path) -> Any:
    """Polygraphy's builder-config loader for `spec`."""
    profiles = []
    for profile in spec.shape_profiles:
        shapes = Profile()
        for name, (low, opt, high) in profile.shapes(spec.input_names).items():
            shapes.add(name, min=low, opt=opt, max=high)
        profiles.append(shapes)
    settings = spec.settings
    cache = folder / settings.timing_cache
    options: dict[str, Any] = {
        "fp16": "fp16" in spec.flags,
        "bf16": "bf16" in spec.flags,
        "int8": "int8" in spec.flags,
        "precision_constraints": spec.precision_constraints,
        "profiles": profiles,
        "memory_pool_limits": {trt.MemoryPoolType.WORKSPACE: settings.workspace_bytes},
        "load_timing_cache": str(cache) if cache.is_file() else None,
        "builder_optimization_level": settings.optimization_level,
        "hardware_compatibility_level": _hardware_level(settings.hardware_compatibility),
        "version_compatible": settings.version_compatible or None,
        "tf32": settings.tf32,  # Polygraphy's default (False) clears TensorRT's TF32 flag
    }
    if "int8" in spec.flags and spec.feeds:
        # Implicit INT8 calibrates with the last profile (Polygraphy's rule): feed it that profile's texts.
        batches = group_feeds(dict(np.load(folder / spec.feeds)))[len(spec.shape_profiles) - 1]
        options["calibrator"] = Calibrator(batches, cache=str(sidecar(folder / spec.engine, "calibration.cache")))
    return CreateConfig(**options)


def build(spec: EngineSpec, folder: Path) -> dict[str, Any]:
    """Build and save the engine; what was built, for the record beside it."""
    cache = folder / spec.settings.timing_cache
    cache.parent.mkdir(parents=True, exist_ok=True)
    pinned: list[PinPlan] = []
    start = time.perf_counter()
    serialized = EngineBytesFromNetwork(
        _network(spec, folder, pinned), _config(spec, folder), save_timing_cache=str(cache)
    )
    SaveBytes(serialized, str(folder / spec.engine))()
    plan = pinned[-1] if pinned else PinPlan({}, {}, {})
    for node, why in plan.unpinned.items():
        print(f"FP32 node {node} ({spec.fp32_nodes[node]}) not pinned: {why}")
    return {
        "build_seconds": round(time.perf_counter() - start, 1),
        "pinned_layers": [name for names in plan.pinned_nodes.values() for name in names],
        "unpinned_nodes": plan.unpinned,
    }


def _compare(
    run: Any, names: tuple[str, str], batches: Sequence[Mapping[str, Array]], profile: int
) -> list[OutputFidelity]:
    engine_runs, reference_runs = run[names[0]], run[names[1]]
    found = []
    for feed, got, want in zip(batches, engine_runs, reference_runs, strict=True):
        mask = feed.get(MASK_INPUT, np.ones(np.shape(next(iter(feed.values()))), dtype=np.int64))
        found += [compare_outputs(name, profile, want[name], got[name], mask) for name in want]
    return found


def verify(spec: EngineSpec, folder: Path) -> list[OutputFidelity]:
    """Run each shape profile's real-text batches through the engine and ONNX Runtime FP32 (Polygraphy's comparator)."""
    assert spec.feeds is not None
    feeds = group_feeds(dict(np.load(folder / spec.feeds)))
    engine = EngineFromBytes(BytesFromPath(str(folder / spec.engine)))()
    session = SessionFromOnnx(str(folder / spec.reference_onnx), providers=["cpu"])()
    found = []
    for profile, batches in sorted(feeds.items()):
        names = (f"tensorrt-profile-{profile}", f"onnxruntime-fp32-{profile}")
        runners = [
            TrtRunner(engine, name=names[0], optimization_profile=profile),
            OnnxrtRunner(session, name=names[1]),
        ]
        found += _compare(Comparator.run(runners, data_loader=batches), names, batches, profile)
    return found


def main(spec_data: Mapping[str, Any], folder: Path) -> int:
    """Build (and verify) the engine of `spec_data` in `folder`; write the record beside it; an exit code."""
    spec = EngineSpec.from_dict(spec_data)
    installed = str(trt.__version__)
    problem = toolchain_problem(spec.tensorrt_version, installed, str(polygraphy.__version__))
    if problem is not None:
        print(problem)
        return EXIT_WRONG_TOOLCHAIN
    record: dict[str, Any] = {
        "spec": spec.to_dict(),
        "tensorrt": installed,
        "polygraphy": str(polygraphy.__version__),
        **build(spec, folder),
    }
    problems: list[str] = []
    if spec.thresholds is not None:
        results = verify(spec, folder)
        problems = [p for r in results for p in r.problems(spec.thresholds)]
        record["verification"] = [r.record() for r in results]
    record["problems"] = problems
    record["verified"] = spec.thresholds is not None and not problems
    sidecar(folder / spec.engine, "build.json").write_text(json.dumps(record, indent=2) + "\n")
    for problem in problems:
        print(f"verification: {problem}")
    return EXIT_NOT_VERIFIED if problems else 0
