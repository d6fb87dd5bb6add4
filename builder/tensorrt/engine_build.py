"""TensorRT engines from ONNX files: plan the build, prepare its files, run it in a child process.

The child is the reproduce script written beside the engine (`builder.tensorrt.trt_plan.reproduce_script`), so a
crash inside TensorRT ends that process, not this one, and the file that built an engine is the file a
user runs to build it again. Beside `model.plan` the build leaves:

- `model.plan.build.py`: the reproduce script (every setting inline);
- `model.plan.network.onnx`: the mixed-precision graph TensorRT parsed (strong route only);
- `model.plan.feeds.npz`: real-text token ids per shape profile (verification, INT8 calibration);
- `model.plan.build.log`: TensorRT's and Polygraphy's output; `model.plan.build.json`: the record.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from builder import __version__
from builder.common.errors import OutputError
from builder.gpus import GpuProfile
from builder.sources.export import exported_max_length
from builder.tensorrt.trt_memory import estimate_memory
from builder.tensorrt.trt_plan import (
    DEFAULT_THRESHOLDS,
    EXIT_NOT_VERIFIED,
    EXIT_WRONG_TOOLCHAIN,
    GIB,
    Array,
    BuildSettings,
    EngineError,
    EngineSpec,
    MemoryEstimate,
    Route,
    ShapeProfile,
    Thresholds,
    choose_route,
    default_timing_cache,
    default_workspace_bytes,
    feed_key,
    fp32_layer_nodes,
    precision_setup,
    reproduce_script,
    shape_profiles,
    sidecar,
)

_MASK = "attention_mask"
_ROWS = 8  # texts per verification batch (fewer when the GPU profile's max batch is smaller)


class TensorRTNotFoundError(EngineError):
    """TensorRT is not installed in this Python environment."""

    def __init__(self) -> None:
        super().__init__(
            "TensorRT is not installed here (no `tensorrt` module with a Builder; tensorrt-stubs alone "
            "leave an empty namespace package), so no engine can be built on this machine",
            hint="engines are specific to the GPU (and TensorRT version) that builds them, so build on the target "
            "GPU: `pip install --extra-index-url https://pypi.nvidia.com tensorrt` there, or run "
            "scripts/build_engine_ngc.sh, which builds inside nvcr.io/nvidia/tensorrt:24.10-py3 on that GPU",
        )


class EngineBuildError(EngineError):
    """The child process that builds an engine failed, crashed or could not verify the engine."""


def installed_tensorrt() -> str | None:
    """The installed TensorRT version, or None; a bare `import tensorrt` proves nothing (see the stubs)."""
    try:
        import tensorrt
    except ImportError:
        return None
    version = getattr(tensorrt, "__version__", None)
    return version if isinstance(version, str) and hasattr(tensorrt, "Builder") else None


def require_tensorrt() -> str:
    """The installed TensorRT version; TensorRTNotFoundError when there is none."""
    version = installed_tensorrt()
    if version is None:
        raise TensorRTNotFoundError()
    return version


@dataclass(frozen=True)
class EngineOptions:
    """What a user chooses for one engine; everything else follows from the GPU profile and the graph."""

    gpu: GpuProfile
    precision: str
    max_length: int | None  # None: the model's maximum, from the export.json beside the ONNX file (as make-repo)
    shape_profile_lengths: tuple[int, ...] = ()  # empty: one shape profile per length bucket of the GPU profile
    workspace_bytes: int | None = None  # None: default_workspace_bytes(gpu)
    timing_cache: Path | None = None  # None: default_timing_cache(version, gpu)
    optimization_level: int = 3
    hardware_compatibility: str = "none"
    version_compatible: bool = False
    tf32: bool = False
    verify: bool = True
    min_cosine: float | None = None  # None: the precision's default threshold
    max_abs_diff: float | None = None
    tokenizer: Path | None = None  # tokenizer.json for real-text feeds; None: the one beside the ONNX file

    def thresholds(self) -> Thresholds | None:
        """The verification bar, or None when verification is off."""
        if not self.verify:
            return None
        default = DEFAULT_THRESHOLDS[self.precision]
        return Thresholds(
            default.min_cosine if self.min_cosine is None else self.min_cosine,
            default.max_abs_diff if self.max_abs_diff is None else self.max_abs_diff,
        )


def _locate(path: Path, folder: Path) -> str:
    """Relative inside the engine's folder (which may move, e.g. into a repository), absolute outside it."""
    resolved, base = path.resolve(), folder.resolve()
    return str(resolved.relative_to(base)) if resolved.is_relative_to(base) else str(resolved)


def _token_inputs(model: onnx.ModelProto) -> tuple[str, ...]:
    names = tuple(i.name for i in model.graph.input)
    if not names or any(len(i.type.tensor_type.shape.dim) != 2 for i in model.graph.input):
        raise EngineError(f"the graph's inputs {list(names)} are not [batch, length] token tensors")
    return names


def _memory(
    model: onnx.ModelProto, options: EngineOptions, profiles: tuple[ShapeProfile, ...], fp32_nodes: set[str]
) -> MemoryEstimate:
    """Served as make-repo configures it: every instance of the GPU profile holds one context per profile."""
    largest = profiles[-1]
    return estimate_memory(
        model,
        fp32_nodes,
        half=options.precision != "fp32",
        shape=(largest.max_batch, largest.max_length),
        contexts=(options.gpu.model_instances, len(profiles)),
        gpu_bytes=options.gpu.memory_gib * GIB,
    )


def plan_engine(
    model: onnx.ModelProto, onnx_path: Path, engine: Path, options: EngineOptions, version: str
) -> EngineSpec:
    """Decide the whole build for TensorRT `version`: route, flags, FP32 layers, shape profiles, settings, files."""
    if options.max_length is None:
        raise ValueError("plan_engine needs the maximum length decided (EngineFromOnnx reads it from export.json)")
    route = choose_route(version)
    setup = precision_setup(options.precision, route, version, options.gpu)
    settings = BuildSettings(
        workspace_bytes=options.workspace_bytes or default_workspace_bytes(options.gpu),
        timing_cache=_locate(options.timing_cache or default_timing_cache(version, options.gpu), engine.parent),
        optimization_level=options.optimization_level,
        hardware_compatibility=options.hardware_compatibility,
        version_compatible=options.version_compatible,
        tf32=options.tf32,
    )
    settings.check_target(options.gpu, version)
    source = _locate(onnx_path, engine.parent)
    needs_feeds = options.verify or "int8" in setup.flags
    profiles = shape_profiles(options.gpu, options.max_length, options.shape_profile_lengths)
    fp32_nodes = fp32_layer_nodes(model, setup.pin_recipe) if setup.pin_recipe else {}
    return EngineSpec(
        engine=engine.name,
        network_onnx=sidecar(engine, "network.onnx").name if setup.network_recipe else source,
        reference_onnx=source,
        gpu=options.gpu.name,
        precision=options.precision,
        tensorrt_version=version,
        route=route,
        flags=setup.flags,
        fp32_nodes=fp32_nodes,
        input_names=_token_inputs(model),
        shape_profiles=profiles,
        settings=settings,
        feeds=sidecar(engine, "feeds.npz").name if needs_feeds else None,
        thresholds=options.thresholds(),
        memory=_memory(
            model, options, profiles, set(fp32_layer_nodes(model, setup.pin_recipe or setup.network_recipe or "fp32"))
        ),
        extra={"tritonbuild": __version__, "onnx": str(onnx_path.resolve())},
    )


def _pad(rows: list[list[int]], length: int) -> tuple[Array, Array]:
    ids = np.zeros((len(rows), length), dtype=np.int64)  # id 0 under mask 0: padding never reaches a valid token
    mask = np.zeros((len(rows), length), dtype=np.int64)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return ids, mask


def text_feeds(tokenizer_path: Path, profiles: tuple[ShapeProfile, ...], names: tuple[str, ...]) -> dict[str, Array]:
    """Two real-text batches per shape profile, keyed by `feed_key`: mixed lengths at its longest, one at its shortest.

    The first row of the mixed batch fills the whole length, so every profile's extremes are exercised.
    """
    from builder.common.corpus import corpus_sentences
    from builder.common.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(tokenizer_path)
    sentences = corpus_sentences()
    long_ids = tokenizer.encode(" ".join(sentences[:400])).ids
    feeds: dict[str, Array] = {}
    for index, profile in enumerate(profiles):
        rows = min(_ROWS, profile.max_batch)
        texts = sentences[index * rows : (index + 1) * rows - 1]
        encoded = [long_ids, *(e.ids for e in tokenizer.encode_batch(texts))]
        mixed = _pad([ids[: profile.max_length] for ids in encoded], profile.max_length)
        short = _pad([long_ids[: profile.min_length]], profile.min_length)
        for batch, (ids, mask) in enumerate((mixed, short)):
            for name in names:
                feeds[feed_key(index, batch, name)] = mask if name == _MASK else ids
    return feeds


def prepare(spec: EngineSpec, engine: Path, tokenizer: Path | None) -> Path:
    """Write the network graph (strong route), the feeds and the reproduce script; the script's path."""
    from builder.precision.presets import get_recipe
    from builder.precision.variants import VariantFromOnnx

    folder = engine.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot write to {folder}: {exc.strerror}") from exc
    if spec.network_onnx != spec.reference_onnx:
        VariantFromOnnx(folder / spec.reference_onnx, get_recipe(spec.precision), folder / spec.network_onnx)()
    if spec.feeds is not None:
        if tokenizer is None or not tokenizer.is_file():
            raise EngineError(
                f"no tokenizer.json at {tokenizer} for the real-text feeds",
                hint="pass --tokenizer (tritonbuild export writes one beside model.onnx), or --no-verify",
            )
        np.savez(folder / spec.feeds, **text_feeds(tokenizer, spec.shape_profiles, spec.input_names))
    script = sidecar(engine, "build.py")
    script.write_text(reproduce_script(spec, __version__))
    return script


def _log_tail(log: Path, lines: int = 25) -> str:
    text = log.read_text(errors="replace").splitlines() if log.is_file() else []
    return "\n".join(text[-lines:])


def run_build(script: Path, engine: Path) -> dict[str, Any]:
    """Run the reproduce script in a child process; its record, or EngineBuildError with the log's tail."""
    log = sidecar(engine, "build.log")
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (root, os.environ.get("PYTHONPATH"))))}
    with log.open("w") as out:
        code = subprocess.run(
            [sys.executable, str(script)], cwd=engine.parent, stdout=out, stderr=subprocess.STDOUT, env=env, check=False
        ).returncode
    rerun = f"log: {log}; rerun: python3 {script}"
    if code < 0:
        raise EngineBuildError(f"the TensorRT build crashed (signal {-code}):\n{_log_tail(log)}", hint=rerun)
    if code == EXIT_WRONG_TOOLCHAIN:
        raise EngineBuildError(
            _log_tail(log, 3),
            hint="install the Polygraphy it names, or plan again with the installed TensorRT (no --tensorrt-version)",
        )
    record = sidecar(engine, "build.json")
    if code == EXIT_NOT_VERIFIED:
        raise EngineBuildError(
            f"{engine} was built but failed verification against ONNX Runtime FP32:\n{_log_tail(log, 12)}",
            hint=f"record: {record}; choose another precision or loosen --min-cosine/--max-abs-diff knowingly",
        )
    if code != 0 or not engine.is_file():
        raise EngineBuildError(
            f"the TensorRT build or its verification failed (exit code {code}):\n{_log_tail(log)}", hint=rerun
        )
    result: dict[str, Any] = json.loads(record.read_text())
    return result


@dataclass(frozen=True)
class EngineResult:
    """What an engine build left: its spec, reproduce script and (when it ran) its record."""

    spec: EngineSpec
    engine: Path
    script: Path
    record: dict[str, Any] | None


class EngineFromOnnx:
    """Build a TensorRT engine at `engine` from `onnx_path`; constructing records the plan, calling does the work.

    With `tensorrt_version` the build is planned for that version (TensorRT need not be installed here);
    with `build=False` the files are prepared and nothing is built, for a container to run the script.
    """

    def __init__(
        self,
        onnx_path: Path,
        engine: Path,
        options: EngineOptions,
        *,
        tensorrt_version: str | None = None,
        build: bool = True,
        echo: Callable[[str], None] = lambda _: None,
    ) -> None:
        self.onnx_path = onnx_path
        self.echo = echo
        self.engine = engine
        self.options = options
        self.tensorrt_version = tensorrt_version
        self.build = build

    def __call__(self) -> EngineResult:
        """Plan, prepare, then (unless asked not to) build and verify in a child process."""
        installed = require_tensorrt() if self.build or self.tensorrt_version is None else None
        version = self.tensorrt_version or installed
        assert version is not None
        if not self.onnx_path.is_file():
            raise EngineError(f"no ONNX file at {self.onnx_path}", hint="tritonbuild export writes model.onnx")
        options = self.options
        if options.max_length is None:
            options = replace(options, max_length=exported_max_length(self.onnx_path))
        model = onnx.load(str(self.onnx_path), load_external_data=False)
        spec = plan_engine(model, self.onnx_path, self.engine, options, version)
        self.echo(describe(spec))
        script = prepare(spec, self.engine, self.options.tokenizer or self.onnx_path.parent / "tokenizer.json")
        record = run_build(script, self.engine) if self.build else None
        return EngineResult(spec, self.engine, script, record)


def describe(spec: EngineSpec) -> str:
    """What the build does and what the served engine will hold on the GPU, for the CLI."""
    lengths = ", ".join(f"{p.min_length}–{p.max_length}" for p in spec.shape_profiles)
    how = (
        f"strongly typed network from the {spec.precision} graph"
        if spec.route is Route.STRONG
        else f"weak typing, flags {'+'.join(spec.flags) or 'none'}, {len(spec.fp32_nodes)} FP32 nodes pinned"
    )
    tf32 = "TF32 on for FP32 layers" if spec.settings.tf32 else "TF32 off (FP32 layers strict FP32)"
    lines = [
        f"TensorRT {spec.tensorrt_version}: {how}; {len(spec.shape_profiles)} shape profiles (lengths {lengths}, "
        f"batch 1–{spec.shape_profiles[-1].max_batch}); workspace {spec.settings.workspace_bytes >> 20} MiB; {tf32}"
    ]
    if spec.memory is not None:
        lines.append(spec.memory.summary())
        warning = spec.memory.warning()
        if warning:
            lines.append(f"warning: {warning}")
    return "\n".join(lines)


def check_prebuilt(engine: Path, gpu: GpuProfile, precision: str, max_length: int) -> dict[str, Any]:
    """The build record of an engine built elsewhere, if it fits this repository; EngineError listing every misfit."""
    record_path = sidecar(engine, "build.json")
    if not engine.is_file() or not record_path.is_file():
        raise EngineError(
            f"{engine} needs its build record {record_path.name} beside it",
            hint="use an engine built by `tritonbuild engine` or its reproduce script (scripts/build_engine_ngc.sh)",
        )
    record: dict[str, Any] = json.loads(record_path.read_text())
    spec = EngineSpec.from_dict(record["spec"])
    wanted = shape_profiles(gpu, max_length)
    misfits = [
        f"{what}: engine {got}, repository {want}"
        for what, got, want in (
            ("GPU profile", spec.gpu, gpu.name),
            ("precision", spec.precision, precision),
            ("shape profiles", [(p.min_length, p.max_length, p.max_batch) for p in spec.shape_profiles],
             [(p.min_length, p.max_length, p.max_batch) for p in wanted]),
        )
        if got != want
    ]  # fmt: skip
    if not record.get("verified"):
        misfits.append("the engine was not verified against ONNX Runtime FP32 (built with --no-verify, or failed)")
    if misfits:
        raise EngineError(f"{engine} does not fit this repository:\n  " + "\n  ".join(misfits))
    return record


def engine_artifact(
    dest: Path,
    onnx_path: Path,
    tokenizer: Path,
    options: EngineOptions,
    prebuilt: Path | None,
    echo: Callable[[str], None],
) -> None:
    """Place `model.plan` at `dest`: a verified engine built elsewhere, or one built here from `onnx_path`."""
    if prebuilt is None:
        EngineFromOnnx(onnx_path, dest, replace(options, tokenizer=tokenizer), echo=echo)()
        return
    max_length = options.max_length if options.max_length is not None else exported_max_length(onnx_path)
    record = check_prebuilt(prebuilt, options.gpu, options.precision, max_length)
    shutil.copyfile(prebuilt, dest)
    shutil.copyfile(sidecar(prebuilt, "build.json"), sidecar(dest, "build.json"))
    echo(f"engine {prebuilt} (TensorRT {record['tensorrt']}): tritonserver must run the same TensorRT version")
