"""`tritonbuild gpus` and `profile`: the GPU profiles make-repo targets, and where a forward pass spends its time."""

from __future__ import annotations

from pathlib import Path

import click

from builder.cli.args import KERNELS, ModelArgs, ModelSource, PrecisionArgs
from builder.gpus import PROFILES


@click.command()
def gpus() -> None:
    """List the GPU profiles that make-repo can target."""
    click.echo(
        f"{'name':6} {'cc':5} {'GiB':>4} {'fp16':5} {'bf16':5} {'int8':5} {'fp8':5} {'max batch':>9}  "
        "instances  description"
    )
    for p in PROFILES.values():
        cc = ".".join(map(str, p.compute_capability)) if p.compute_capability else "-"
        flags = " ".join(f"{'yes' if f else 'no':5}" for f in (p.fp16, p.bf16, p.int8, p.fp8))
        click.echo(
            f"{p.name:6} {cc:5} {p.memory_gib:>4} {flags} {p.max_batch_size:>9}  {p.model_instances:>9}  "
            f"{p.description}"
        )


@click.command()
@ModelArgs(trust=False)
@PrecisionArgs("python-torch")
@click.option("--batch", type=int, default=8, show_default=True)
@click.option("--seq-len", type=int, default=128, show_default=True)
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--top", type=int, default=10, show_default=True, help="operators (CPU) or kernels (GPU) to list")
@KERNELS
@click.option("--out", type=click.Path(path_type=Path), default=None, help="write profile.json and profile.md here")
def profile(
    source: ModelSource,
    precision: str,
    batch: int,
    seq_len: int,
    device: str,
    top: int,
    kernels: str,
    out: Path | None,
) -> None:
    """Time breakdown of one forward pass (embeddings, attention, MLP, LayerNorm, head) and top kernels.

    The model runs as the python-torch serving backend would run it: its precisions are the choices, its kernels.
    """
    from builder.profile import profile_model

    result = profile_model(source.model, source.task, precision, batch, seq_len, device, top, kernels)
    click.echo(result.table())
    if out:
        result.write(out)
        click.echo(f"wrote {out / 'profile.json'} and {out / 'profile.md'}")
