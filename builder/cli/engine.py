"""`tritonbuild engine`: a TensorRT engine from an exported ONNX file, for one GPU profile and precision."""

from __future__ import annotations

from pathlib import Path

import click

from builder.common.cli import int_list
from builder.engines import get_backend
from builder.gpus import PROFILES, get_profile
from builder.tensorrt.engine_build import EngineFromOnnx, EngineOptions, EngineResult
from builder.tensorrt.trt_plan import GIB, HARDWARE_LEVELS


def _summary(result: EngineResult) -> list[str]:
    if result.record is None:
        return [
            f"planned only: nothing was built. On the target GPU, with TensorRT {result.spec.tensorrt_version}, run:",
            f"  python3 {result.script}",
        ]
    record = result.record
    lines = [
        f"built {result.engine} with TensorRT {record['tensorrt']} in {record['build_seconds']} s; "
        f"{len(record['pinned_layers'])} layers pinned to FP32",
        f"reproduce: python3 {result.script}",
    ]
    unpinned = record.get("unpinned_nodes") or {}
    if unpinned:
        lines.insert(
            1,
            f"{len(unpinned)} FP32 nodes of the plan not pinned (see {result.engine}.build.json): "
            + ", ".join(sorted(unpinned)),
        )
    checks = record.get("verification")
    if checks:
        lines.insert(
            1,
            f"verified against ONNX Runtime FP32 on real text: {len(checks)} outputs, min cosine "
            f"{min(c['min_cosine'] for c in checks):.6f}, max abs diff {max(c['max_abs_diff'] for c in checks):.4g}",
        )
    return lines


@click.command()
@click.option("--onnx", "onnx_path", type=click.Path(path_type=Path, dir_okay=False), required=True)
@click.option("--gpu", type=click.Choice([n for n, p in PROFILES.items() if p.is_gpu]), required=True)
@click.option("--precision", type=click.Choice(get_backend("tensorrt").precisions), default="hybrid", show_default=True)
@click.option("--output", type=click.Path(path_type=Path, dir_okay=False), required=True, help="the engine (.plan)")
@click.option(
    "--max-length",
    type=click.IntRange(1),
    help="longest sequence [default: the model's maximum, from export.json beside the ONNX file, as make-repo uses]",
)
@click.option("--profile-lengths", type=int_list, help="upper lengths of the profiles, e.g. 128,256 [default: buckets]")
@click.option("--workspace-gib", type=click.FloatRange(0.001), help="builder workspace [default: GPU memory / 4, 1–8]")
@click.option("--timing-cache", type=click.Path(path_type=Path, dir_okay=False), help="reused across builds")
@click.option("--opt-level", type=click.IntRange(0, 5), default=3, show_default=True, help="builder optimisation")
@click.option("--hardware-compat", type=click.Choice(HARDWARE_LEVELS), default="none", show_default=True)
@click.option("--version-compatible", is_flag=True, help="loadable by later TensorRT versions")
@click.option(
    "--tf32/--no-tf32", default=False, show_default=True, help="TF32 for FP32 layers (off: strict FP32, recorded)"
)
@click.option("--tokenizer", type=click.Path(path_type=Path, dir_okay=False), help="[default: beside the ONNX file]")
@click.option("--no-verify", is_flag=True, help="skip the comparison with ONNX Runtime FP32")
@click.option("--min-cosine", type=float, help="per-token cosine bar [default: by precision]")
@click.option("--max-abs-diff", type=float, help="absolute difference bar [default: by precision]")
@click.option("--tensorrt-version", help="plan for this TensorRT version (TensorRT need not be installed)")
@click.option("--plan-only", is_flag=True, help="write the reproduce script and its inputs; build nothing")
def engine(
    onnx_path: Path,
    gpu: str,
    precision: str,
    output: Path,
    max_length: int | None,
    profile_lengths: tuple[int, ...] | None,
    workspace_gib: float | None,
    timing_cache: Path | None,
    opt_level: int,
    hardware_compat: str,
    version_compatible: bool,
    tf32: bool,
    tokenizer: Path | None,
    no_verify: bool,
    min_cosine: float | None,
    max_abs_diff: float | None,
    tensorrt_version: str | None,
    plan_only: bool,
) -> None:
    """Build a TensorRT engine (model.plan) from ONNX, verified against ONNX Runtime FP32 on real text.

    Runs in a child process that leaves a reproduce script beside the engine. TensorRT 10.0–10.11 builds
    with builder flags and pinned FP32 layers; 10.12 and newer parse the precision plan's graph strongly
    typed. Engines only run on the GPU model and TensorRT version that built them.
    """
    profile = get_profile(gpu)
    options = EngineOptions(
        gpu=profile,
        precision=precision,
        max_length=max_length,
        profile_lengths=profile_lengths or (),
        workspace_bytes=int(workspace_gib * GIB) if workspace_gib else None,
        timing_cache=timing_cache,
        optimization_level=opt_level,
        hardware_compatibility=hardware_compat,
        version_compatible=version_compatible,
        tf32=tf32,
        verify=not no_verify,
        min_cosine=min_cosine,
        max_abs_diff=max_abs_diff,
        tokenizer=tokenizer or onnx_path.parent / "tokenizer.json",
    )
    stage = EngineFromOnnx(
        onnx_path, output, options, tensorrt_version=tensorrt_version, build=not plan_only, echo=click.echo
    )
    for line in _summary(stage()):
        click.echo(line)
