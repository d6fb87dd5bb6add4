"""`tritonbuild export`, `make-repo` and `validate`: from a source model to ONNX, a repository, a fidelity report."""

from __future__ import annotations

from pathlib import Path

import click

from builder.cli.args import (
    BackendArgs,
    FidelityArgs,
    GpuArgs,
    ModelArgs,
    ModelSource,
    PrecisionArgs,
    PrecisionListArgs,
    ServingArgs,
)
from builder.engines import names
from builder.gpus import GpuProfile
from builder.precision.fidelity import FidelityOptions
from builder.repository.options import ServingOptions
from builder.repository.pipeline import export_onnx, make_repo, validate_precisions


@click.command()
@ModelArgs()
@click.option("--output", type=click.Path(path_type=Path), required=True, help="folder for model.onnx")
def export(source: ModelSource, output: Path) -> None:
    """Export to ONNX (dynamic batch and length) and check parity with PyTorch."""
    export_onnx(source.model, source.task, output, source.trust_remote_code, echo=click.echo)
    click.echo(f"wrote {output / 'model.onnx'}")


MAKE_REPO_HELP = f"""Build a model repository: tokenizer → model → post, wired by an ensemble called NAME.

With {names(lambda b: b.single_model)} --single-model the three are one Python model behind a one-step ensemble NAME.

With {names(lambda b: b.serves_variant)} the model is the precision variant, served only if it passes the fidelity gate
of `tritonbuild validate`.
"""


@click.command("make-repo", help=MAKE_REPO_HELP)
@ModelArgs()
@click.option("--name", default="minilm", show_default=True, help="ensemble name; members get _tokenizer/_model/_post")
@GpuArgs()
@BackendArgs()
@click.option("--output", type=click.Path(path_type=Path), default=Path("repo"), show_default=True)
@PrecisionArgs()
@click.option(
    "--engine-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="with --engine tensorrt: a verified TensorRT engine (model.plan) built elsewhere, its .build.json beside it",
)
@ServingArgs()
@click.option("--force", is_flag=True, help="replace existing model folders of the same names")
@FidelityArgs(skippable=True)
def make_repo_cmd(
    source: ModelSource,
    name: str,
    gpu: GpuProfile,
    backend: str,
    output: Path,
    precision: str,
    engine_file: Path | None,
    serving: ServingOptions,
    force: bool,
    fidelity: FidelityOptions,
) -> None:
    """`tritonbuild make-repo` (its help is MAKE_REPO_HELP, written from the serving backends' records)."""
    plan = make_repo(
        source.model,
        source.task,
        name,
        backend,
        gpu.name,
        output,
        force=force,
        trust_remote_code=source.trust_remote_code,
        echo=click.echo,
        precision=precision,
        engine_file=engine_file,
        fidelity=fidelity,
        serving=serving,
    )
    click.echo(f"repository {output}: " + ", ".join(m.config.name for m in plan.models))
    click.echo(f"ensemble '{plan.name}': TEXT → " + ", ".join(t.name for t in plan.ensemble.outputs))


@click.command()
@ModelArgs()
@PrecisionListArgs()
@click.option("--out", type=click.Path(path_type=Path), default=Path("results/fidelity"), show_default=True)
@click.option("--skip-bf16", is_flag=True, help="write bf16 and report its size instead of refusing (no CPU kernels)")
@FidelityArgs()
def validate(
    source: ModelSource, precisions: tuple[str, ...], out: Path, skip_bf16: bool, fidelity: FidelityOptions
) -> None:
    """Gate precision variants on fidelity to PyTorch FP32, on real text and random ids; exit 1 if one fails.

    Exports once, writes each variant, runs it with ONNX Runtime (CPU), writes fidelity.json and fidelity.md.
    """
    validate_precisions(
        source.model,
        source.task,
        precisions,
        out,
        options=fidelity,
        skip_bf16=skip_bf16,
        trust_remote_code=source.trust_remote_code,
        echo=click.echo,
    )
