"""`tritonbuild`: export Hugging Face models, build Triton model repositories, serve them locally."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import click

from builder.cli_deploy import deploy
from builder.cli_engine import engine
from builder.common.cli import UserErrorGroup, int_list
from builder.endpoints import GRPC, HTTP, METRICS
from builder.fidelity import FidelityOptions, Gate
from builder.gpus import PROFILES, gpu_indices
from builder.pipeline import export_onnx, make_repo, validate_precisions
from builder.plan import ENGINES, TORCH_KERNELS, ServingOptions
from builder.server import TritonServer
from builder.source import DEFAULT_MODEL
from builder.tasks import TASKS

_model = click.option(
    "--model",
    default=DEFAULT_MODEL,
    show_default=True,
    help="model folder, hub id in the local cache, or 'minilm' (bundled all-MiniLM-L6-v2)",
)
_task = click.option("--task", type=click.Choice(list(TASKS)), default="feature-extraction", show_default=True)
_trust = click.option("--trust-remote-code", is_flag=True, help="allow the model's own Python code to run")
_GATE_OPTIONS = (
    click.option(
        "--corpus",
        type=click.Path(path_type=Path, exists=True, dir_okay=False),
        help="real text for the fidelity gate, one text per line [default: sentences of Python's pydoc topics]",
    ),
    click.option("--texts", type=int, default=FidelityOptions.texts, show_default=True, help="texts the gate runs"),
    click.option(
        "--min-cosine",
        type=float,
        default=Gate.min_cosine,
        show_default=True,
        help="gate: per-token cosine with PyTorch FP32, every output, on real text and random ids",
    ),
    click.option("--max-abs-diff", type=float, help="gate: largest absolute difference [default: not gated]"),
    click.option("--min-agreement", type=float, help="gate: same label/next token/neighbour [default: not gated]"),
)


def _gate_options(command: Callable[..., None]) -> Callable[..., None]:
    for option in reversed(_GATE_OPTIONS):
        command = option(command)
    return command


def _fidelity(
    corpus: Path | None,
    texts: int,
    min_cosine: float,
    max_abs_diff: float | None,
    min_agreement: float | None,
    enabled: bool = True,
) -> FidelityOptions:
    gate = Gate(min_cosine=min_cosine, max_abs_diff=max_abs_diff, min_agreement=min_agreement)
    return FidelityOptions(gate, corpus, texts, enabled=enabled)


@click.group(cls=UserErrorGroup)
@click.version_option(package_name="tritonbuild")
def main() -> None:
    """Hugging Face transformer → parity-checked ONNX → Triton model repository → local server.

    Start with `tritonbuild demo`, or: make-repo, then serve, then `tritonbench sweep`.
    """


@main.command()
@_model
@_task
@click.option("--output", type=click.Path(path_type=Path), required=True, help="folder for model.onnx")
@_trust
def export(model: str, task: str, output: Path, trust_remote_code: bool) -> None:
    """Export to ONNX (dynamic batch and length) and check parity with PyTorch."""
    export_onnx(model, task, output, trust_remote_code, echo=click.echo)
    click.echo(f"wrote {output / 'model.onnx'}")


@main.command("make-repo")
@_model
@_task
@click.option("--name", default="minilm", show_default=True, help="ensemble name; members get _tokenizer/_model/_post")
@click.option(
    "--gpu",
    type=click.Choice(list(PROFILES)),
    default="cpu",
    show_default=True,
    help="target profile (see `tritonbuild gpus`)",
)
@click.option("--engine", type=click.Choice(list(ENGINES)), default="python-onnxruntime", show_default=True)
@click.option("--output", type=click.Path(path_type=Path), default=Path("repo"), show_default=True)
@click.option(
    "--precision",
    default="fp32",
    show_default=True,
    help="fp32, fp16, hybrid (FP16, FP32 softmax and LayerNorm), bf16 (GPUs with BF16); python-onnxruntime, "
    "onnxruntime and tensorrt also int8; onnxruntime-trt fp32, fp16 and hybrid",
)
@click.option(
    "--engine-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="with --engine tensorrt: a verified model.plan built elsewhere (its .build.json beside it)",
)
@click.option(
    "--kernels",
    type=click.Choice(TORCH_KERNELS),
    default="fused",
    show_default=True,
    help="python-torch: fused BERT/DistilBERT/GPT-2 trunk, the same with GELU in the GEMM epilogue (tanh "
    "approximation for BERT and DistilBERT), or the Hugging Face modules",
)
@click.option(
    "--single-model",
    is_flag=True,
    help="python-torch: tokenizer, model and post-processing in one Python model (one stub hop, for latency)",
)
@click.option(
    "--max-queue-delay-us",
    type=click.IntRange(min=0),
    help="the model's dynamic-batching delay [default: the GPU profile's]; 0 for the lowest batch-1 latency",
)
@click.option(
    "--gpus",
    help="GPUs to place the model's instances on, each getting the profile's count (e.g. 0,1, or all: this "
    "host's); the tokenizer and post-processing instances scale with them [default: Triton's, every GPU]",
)
@click.option(
    "--host-threads",
    type=click.IntRange(min=1),
    help="threads of every Python model's compute pools [default: a CPU model's or tokenizer's instances share "
    "the serving host's cores, every other stub gets one]",
)
@click.option(
    "--model-instances", type=click.IntRange(min=1), help="the model's instances [default: the GPU profile's]"
)
@click.option(
    "--tokenizer-instances", type=click.IntRange(min=1), help="the tokenizer step's instances [default: the profile's]"
)
@click.option(
    "--max-batch-size", type=click.IntRange(min=1), help="every model's max batch size [default: the profile's]"
)
@click.option(
    "--preferred-batch-sizes",
    help="the model's dynamic-batching preferred sizes, e.g. 8,16,32, or none [default: the profile's that fit]",
)
@click.option(
    "--seq-buckets", help="lengths the tokenizer pads to, e.g. 24,64,160 (the model's max length is always the last) "
    "[default: the profile's powers of two]",
)  # fmt: skip
@click.option("--force", is_flag=True, help="replace existing model folders of the same names")
@click.option(
    "--no-validate",
    is_flag=True,
    help="serve the precision without the fidelity gate (python-onnxruntime, onnxruntime, python-torch)",
)
@_gate_options
@_trust
def make_repo_cmd(
    model: str,
    task: str,
    name: str,
    gpu: str,
    engine: str,
    output: Path,
    precision: str,
    engine_file: Path | None,
    kernels: str,
    single_model: bool,
    max_queue_delay_us: int | None,
    gpus: str | None,
    host_threads: int | None,
    model_instances: int | None,
    tokenizer_instances: int | None,
    max_batch_size: int | None,
    preferred_batch_sizes: str | None,
    seq_buckets: str | None,
    force: bool,
    no_validate: bool,
    corpus: Path | None,
    texts: int,
    min_cosine: float,
    max_abs_diff: float | None,
    min_agreement: float | None,
    trust_remote_code: bool,
) -> None:
    """Build a model repository: tokenizer → model → post, wired by an ensemble called NAME.

    With python-torch --single-model the three are one Python model behind a one-step ensemble NAME.

    With python-onnxruntime or onnxruntime the model is the precision variant, served only if it passes the
    fidelity gate of `tritonbuild validate`.
    """
    plan = make_repo(
        model,
        task,
        name,
        engine,
        gpu,
        output,
        force=force,
        trust_remote_code=trust_remote_code,
        echo=click.echo,
        precision=precision,
        engine_file=engine_file,
        fidelity=_fidelity(corpus, texts, min_cosine, max_abs_diff, min_agreement, enabled=not no_validate),
        serving=ServingOptions(
            kernels,
            single_model,
            max_queue_delay_us,
            host_threads,
            gpu_indices(gpus) if gpus else (),
            model_instances,
            tokenizer_instances,
            max_batch_size,
            _sizes(preferred_batch_sizes, none_allowed=True),
            _sizes(seq_buckets),
        ),
    )
    click.echo(f"repository {output}: " + ", ".join(m.config.name for m in plan.models))
    click.echo(f"ensemble '{plan.name}': TEXT → " + ", ".join(t.name for t in plan.ensemble.outputs))


def _sizes(value: str | None, none_allowed: bool = False) -> tuple[int, ...] | None:
    """A comma-separated list of positive sizes; "none" is the empty list where that means something."""
    if value is None:
        return None
    if none_allowed and value.strip().lower() == "none":
        return ()
    return int_list(value)


@main.command()
@_model
@_task
@click.option(
    "--precision",
    default="fp32,fp16,hybrid,int8",
    show_default=True,
    help="comma-separated presets: fp32, fp16, hybrid, bf16, int8",
)
@click.option("--out", type=click.Path(path_type=Path), default=Path("results/fidelity"), show_default=True)
@click.option("--skip-bf16", is_flag=True, help="write bf16 and report its size instead of refusing (no CPU kernels)")
@_gate_options
@_trust
def validate(
    model: str,
    task: str,
    precision: str,
    out: Path,
    skip_bf16: bool,
    corpus: Path | None,
    texts: int,
    min_cosine: float,
    max_abs_diff: float | None,
    min_agreement: float | None,
    trust_remote_code: bool,
) -> None:
    """Gate precision variants on fidelity to PyTorch FP32, on real text and random ids; exit 1 if one fails.

    Exports once, writes each variant, runs it with ONNX Runtime (CPU), writes fidelity.json and fidelity.md.
    """
    validate_precisions(
        model,
        task,
        [p.strip() for p in precision.split(",") if p.strip()],
        out,
        options=_fidelity(corpus, texts, min_cosine, max_abs_diff, min_agreement),
        skip_bf16=skip_bf16,
        trust_remote_code=trust_remote_code,
        echo=click.echo,
    )


main.add_command(engine)
main.add_command(deploy)


@main.command()
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


@main.command()
@click.option("--repo", type=click.Path(path_type=Path), default=Path("repo"), show_default=True)
@click.option("--http-port", type=int, default=HTTP.port, show_default=True)
@click.option("--grpc-port", type=int, default=GRPC.port, show_default=True)
@click.option("--metrics-port", type=int, default=METRICS.port, show_default=True)
@click.option("--log", type=click.Path(path_type=Path), default=None, help="server log file (default: temporary)")
def serve(repo: Path, http_port: int, grpc_port: int, metrics_port: int, log: Path | None) -> None:
    """Serve REPO with the bundled tritonserver on 127.0.0.1 until Ctrl-C.

    A model whose backend stub dies is reloaded (and said so here and in the log); exits 1 when the server
    dies or a model cannot be brought back.
    """

    def report(message: str) -> None:
        click.secho(f"supervisor: {message}", fg="yellow", err=True)

    with TritonServer(repo, http_port, grpc_port, metrics_port, log_path=log, report=report) as server:
        click.echo(f"ready: HTTP {server.http_url}, gRPC {server.grpc_url}, metrics {server.metrics_url}")
        click.echo(f"log: {server.log_path}")
        click.echo("Ctrl-C stops the server")
        for sig in (signal.SIGINT, signal.SIGTERM):  # also when started with SIGINT ignored (a shell's `&`)
            signal.signal(sig, signal.default_int_handler)
        try:
            while server.is_alive() and server.failure is None:
                time.sleep(0.5)
        except KeyboardInterrupt:
            click.echo("stopping")
            return
        if server.failure is not None:
            click.secho(f"error: {server.failure}; stopping the server:\n{server.log_tail()}", fg="red", err=True)
        else:
            code = server.returncode
            click.secho(
                f"tritonserver exited unexpectedly (code {code}); its log ends:\n{server.log_tail()}",
                fg="red",
                err=True,
            )
        raise SystemExit(1)


@main.command()
@_model
@_task
@click.option("--precision", type=click.Choice(["fp32", "fp16", "bf16", "hybrid"]), default="fp32", show_default=True)
@click.option("--batch", type=int, default=8, show_default=True)
@click.option("--seq-len", type=int, default=128, show_default=True)
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--top", type=int, default=10, show_default=True, help="operators (CPU) or kernels (GPU) to list")
@click.option(
    "--kernels",
    type=click.Choice(TORCH_KERNELS),
    default="fused",
    show_default=True,
    help="what python-torch runs (make-repo --kernels); hf: the Hugging Face modules",
)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="write profile.json and profile.md here")
def profile(
    model: str,
    task: str,
    precision: str,
    batch: int,
    seq_len: int,
    device: str,
    top: int,
    kernels: str,
    out: Path | None,
) -> None:
    """Time breakdown of one forward pass (embeddings, attention, MLP, LayerNorm, head) and top kernels."""
    from builder.profile import profile_model

    result = profile_model(model, task, precision, batch, seq_len, device, top, kernels)
    click.echo(result.table())
    if out:
        result.write(out)
        click.echo(f"wrote {out / 'profile.json'} and {out / 'profile.md'}")


@main.command()
@click.option("--output", type=click.Path(path_type=Path), default=Path("repo"), show_default=True)
@click.option("--results", type=click.Path(path_type=Path), default=Path("results/demo"), show_default=True)
@click.option("--window", type=float, default=1.0, show_default=True, help="seconds per measurement window")
def demo(output: Path, results: Path, window: float) -> None:
    """Build the bundled MiniLM repository, serve it, query it, run a short sweep, write a report."""
    from builder.demo import run_demo

    run_demo(output, results, window, echo=click.echo)
