"""`tritonbuild engine`: a TensorRT engine from an exported ONNX file, for one GPU profile and precision."""

from __future__ import annotations

from pathlib import Path

import click

from builder.cli.args import EngineBuildArgs, ScriptOnlyArgs
from builder.support import check
from builder.tensorrt.engine_build import EngineFromOnnx, EngineOptions, EngineResult


def _summary(result: EngineResult) -> list[str]:
    if result.record is None:
        return [
            f"script only: nothing was built. On the target GPU, with TensorRT {result.spec.tensorrt_version}, run:",
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
            f"{len(unpinned)} FP32 nodes of the precision recipe not pinned (see {result.engine}.build.json): "
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
@click.option("--output", type=click.Path(path_type=Path, dir_okay=False), required=True, help="the engine (.plan)")
@EngineBuildArgs()
@click.option("--tensorrt-version", help="plan for this TensorRT version (TensorRT need not be installed)")
@ScriptOnlyArgs()
def engine(onnx_path: Path, output: Path, options: EngineOptions, tensorrt_version: str | None, build: bool) -> None:
    """Build a TensorRT engine (model.plan) from ONNX, verified against ONNX Runtime FP32 on real text.

    Runs in a child process that leaves a reproduce script beside the engine. TensorRT 10.0–10.11 builds
    with builder flags and pinned FP32 layers; 10.12 and newer parse the precision recipe's graph strongly
    typed. Engines only run on the GPU model and TensorRT version that built them.
    """
    check("tensorrt", options.precision, options.gpu).raise_if_refused()
    stage = EngineFromOnnx(onnx_path, output, options, tensorrt_version=tensorrt_version, build=build, echo=click.echo)
    for line in _summary(stage()):
        click.echo(line)
