"""The argument groups of `tritonbuild`: each owns its options, parses them and makes the object a command needs.

Choices and help come from the records they describe: the serving backends (builder/engines/), the
precision presets, the GPU profiles, the tasks. A command composes groups; no option block is written twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import click

from builder.common.cli import ArgGroup, Decorator, deprecated_option, int_list, renamed
from builder.engines import BACKENDS, DEFAULT, get_backend, names
from builder.engines.base import GateKind
from builder.gpus import PROFILES, GpuProfile, get_profile, gpu_indices
from builder.precision.fidelity import FidelityOptions, Gate
from builder.precision.presets import PRESETS
from builder.repository.options import ServingOptions
from builder.sources.source import DEFAULT_MODEL
from builder.sources.tasks import TASKS
from builder.tensorrt.engine_build import EngineOptions
from builder.tensorrt.trt_plan import GIB, HARDWARE_LEVELS


@dataclass(frozen=True)
class ModelSource:
    """The source model a command reads: `--model`, `--task`, `--trust-remote-code`."""

    model: str
    task: str
    trust_remote_code: bool = False


class ModelArgs(ArgGroup[ModelSource]):
    """--model, --task and (unless `trust` is off) --trust-remote-code."""

    dest = "source"

    def __init__(self, trust: bool = True) -> None:
        self.trust = trust

    def options(self) -> Sequence[Decorator]:
        """The model, its task, and whether its own code may run."""
        model = click.option(
            "--model",
            default=DEFAULT_MODEL,
            show_default=True,
            help="model folder, hub id in the local cache, or 'minilm' (bundled all-MiniLM-L6-v2)",
        )
        task = click.option("--task", type=click.Choice(list(TASKS)), default="feature-extraction", show_default=True)
        trust = click.option("--trust-remote-code", is_flag=True, help="allow the model's own Python code to run")
        return (model, task, trust) if self.trust else (model, task)

    def parse(self, model: str, task: str, trust_remote_code: bool = False) -> ModelSource:
        """The source as given."""
        return ModelSource(model, task, trust_remote_code)


class GpuArgs(ArgGroup[GpuProfile | None]):
    """--gpu: a GPU profile of builder/gpus.py (not a TensorRT shape profile, not `tritonbuild profile`)."""

    dest = "gpu"

    def __init__(
        self,
        *,
        default: str | None = "cpu",
        gpu_only: bool = False,
        required: bool = False,
        help: str = "target profile (see `tritonbuild gpus`)",
    ) -> None:
        self.default, self.gpu_only, self.required, self.help = default, gpu_only, required, help

    def options(self) -> Sequence[Decorator]:
        """One option, its choices the GPU profiles (or those that are GPUs)."""
        names = [name for name, p in PROFILES.items() if p.is_gpu or not self.gpu_only]
        return (
            click.option(
                "--gpu",
                type=click.Choice(names),
                default=self.default,
                show_default=self.default is not None,
                required=self.required,
                help=self.help,
            ),
        )

    def parse(self, gpu: str | None) -> GpuProfile | None:
        """The profile, or None when the option is optional and not given."""
        return get_profile(gpu) if gpu else None


def _precision_help() -> str:
    presets = ", ".join(f"{name} ({p.about})" for name, p in PRESETS.items())
    served = "; ".join(f"{b.name} {', '.join(b.precisions)}" for b in BACKENDS.values())
    return f"{presets}. By --engine: {served}; GPU profiles without BF16 or FP16 arithmetic refuse those"


class PrecisionArgs(ArgGroup[str]):
    """--precision: one of a serving backend's precisions, or any preset (make-repo: the backend is chosen later)."""

    dest = "precision"

    def __init__(self, backend: str | None = None, default: str = "fp32") -> None:
        self.backend, self.default = backend, default

    def options(self) -> Sequence[Decorator]:
        """A choice of the backend's precisions; free text for make-repo, so the support matrix says why not."""
        if self.backend is None:
            return (click.option("--precision", default=self.default, show_default=True, help=_precision_help()),)
        choices = click.Choice(get_backend(self.backend).precisions)
        return (click.option("--precision", type=choices, default=self.default, show_default=True),)

    def parse(self, precision: str) -> str:
        """The name as given (the support matrix refuses what the target cannot serve)."""
        return precision


class PrecisionListArgs(ArgGroup[tuple[str, ...]]):
    """--precision a,b,c: several presets (`tritonbuild validate`)."""

    dest = "precisions"

    def options(self) -> Sequence[Decorator]:
        """A comma-separated list of presets."""
        return (
            click.option(
                "--precision",
                default="fp32,fp16,hybrid,int8",
                show_default=True,
                help=f"comma-separated presets: {', '.join(PRESETS)}",
            ),
        )

    def parse(self, precision: str) -> tuple[str, ...]:
        """The names, in order, blanks dropped."""
        return tuple(p.strip() for p in precision.split(",") if p.strip())


class BackendArgs(ArgGroup[str]):
    """--engine: the serving backend (the option keeps its name for users' scripts)."""

    dest = "backend"

    def options(self) -> Sequence[Decorator]:
        """A choice of the registered serving backends, each described."""
        described = "; ".join(f"{b.name}: {b.description}" for b in BACKENDS.values())
        return (
            click.option(
                "--engine",
                type=click.Choice(list(BACKENDS)),
                default=DEFAULT,
                show_default=True,
                help=f"the serving backend: {described}",
            ),
        )

    def parse(self, engine: str) -> str:
        """The serving backend's name."""
        return engine


KERNELS = click.option(
    "--kernels",
    type=click.Choice(next(b.kernels for b in BACKENDS.values() if b.kernels)),
    default=ServingOptions.kernels,
    show_default=True,
    help=f"{names(lambda b: b.kernels, ', ')}: the fused BERT/DistilBERT/GPT-2 trunk, the same with GELU in the GEMM "
    "epilogue (tanh approximation for BERT and DistilBERT), or the Hugging Face modules (hf)",
)


class ServingArgs(ArgGroup[ServingOptions]):
    """How the repository serves beyond backend and precision: kernels, single model, batching, placement, threads."""

    dest = "serving"

    def options(self) -> Sequence[Decorator]:
        """make-repo's serving options."""
        return (
            KERNELS,
            click.option(
                "--single-model",
                is_flag=True,
                help=f"{names(lambda b: b.single_model, ', ')}: tokenizer, model and post-processing in one Python "
                "model (one stub hop, for latency)",
            ),
            click.option(
                "--max-queue-delay-us",
                type=click.IntRange(min=0),
                help="the model's dynamic-batching delay [default: the GPU profile's]; 0 for the lowest batch-1 "
                "latency",
            ),
            click.option(
                "--gpus",
                help="GPUs to place the model's instances on, each getting the profile's count (e.g. 0,1, or all: "
                "this host's); the tokenizer and post-processing instances scale with them [default: Triton's, every "
                "GPU]",
            ),
            click.option(
                "--host-threads",
                type=click.IntRange(min=1),
                help="threads of every Python model's compute pools [default: a CPU model's or tokenizer's instances "
                "share the serving host's cores, every other stub gets one]",
            ),
            click.option(
                "--model-instances",
                type=click.IntRange(min=1),
                help="the model's instances [default: the GPU profile's]",
            ),
            click.option(
                "--tokenizer-instances",
                type=click.IntRange(min=1),
                help="the tokenizer step's instances [default: the profile's]",
            ),
            click.option(
                "--post-instances",
                type=click.IntRange(min=1),
                help="the post-processing step's instances [default: the profile's]",
            ),
            click.option(
                "--max-batch-size",
                type=click.IntRange(min=1),
                help="every model's max batch size [default: the profile's]",
            ),
            click.option(
                "--preferred-batch-sizes",
                help="the model's dynamic-batching preferred sizes, e.g. 8,16,32, or none [default: the profile's that "
                "fit]",
            ),
            click.option(
                "--seq-buckets",
                help="lengths the tokenizer pads to, e.g. 24,64,160 (the model's max length is always the last) "
                "[default: the profile's powers of two]",
            ),
            click.option(
                "--batch-buckets",
                help="python-torch: batch sizes captured as CUDA graphs, a batch running padded to the next, e.g. "
                "1,8,16,32 (the max batch size is always the last) [default: 1, 2, 4, then steps of at most 1.5×]",
            ),
        )

    def parse(
        self,
        kernels: str,
        single_model: bool,
        max_queue_delay_us: int | None,
        gpus: str | None,
        host_threads: int | None,
        model_instances: int | None,
        tokenizer_instances: int | None,
        post_instances: int | None,
        max_batch_size: int | None,
        preferred_batch_sizes: str | None,
        seq_buckets: str | None,
        batch_buckets: str | None,
    ) -> ServingOptions:
        """The options, --gpus read as device indices, the size lists as tuples ("none": no preferred sizes)."""
        return ServingOptions(
            kernels,
            single_model,
            max_queue_delay_us,
            host_threads,
            gpu_indices(gpus) if gpus else (),
            model_instances,
            tokenizer_instances,
            post_instances,
            max_batch_size,
            _sizes(preferred_batch_sizes, none_allowed=True),
            _sizes(seq_buckets),
            _sizes(batch_buckets),
        )


def _sizes(value: str | None, none_allowed: bool = False) -> tuple[int, ...] | None:
    """A comma-separated list of positive sizes; "none" is the empty list where that means something."""
    if value is None:
        return None
    if none_allowed and value.strip().lower() == "none":
        return ()
    return int_list(value)


class FidelityArgs(ArgGroup[FidelityOptions]):
    """The fidelity gate: its corpus and bar, and (make-repo) --no-validate."""

    dest = "fidelity"

    def __init__(self, skippable: bool = False) -> None:
        self.skippable = skippable

    def options(self) -> Sequence[Decorator]:
        """The gate's corpus, sample and thresholds."""
        gated = names(lambda b: b.gate in (GateKind.VARIANT, GateKind.TORCH), ", ")
        skip = click.option(
            "--no-validate", is_flag=True, help=f"serve the precision without the fidelity gate ({gated})"
        )
        gate = (
            click.option(
                "--corpus",
                type=click.Path(path_type=Path, exists=True, dir_okay=False),
                help="real text for the fidelity gate, one text per line [default: sentences of Python's pydoc topics]",
            ),
            click.option(
                "--texts", type=int, default=FidelityOptions.texts, show_default=True, help="texts the gate runs"
            ),
            click.option(
                "--min-cosine",
                type=float,
                default=Gate.min_cosine,
                show_default=True,
                help="gate: per-token cosine with PyTorch FP32, every output, on real text and random ids",
            ),
            click.option("--max-abs-diff", type=float, help="gate: largest absolute difference [default: not gated]"),
            click.option(
                "--min-agreement", type=float, help="gate: same label/next token/neighbour [default: not gated]"
            ),
        )
        return (skip, *gate) if self.skippable else gate

    def parse(
        self,
        corpus: Path | None,
        texts: int,
        min_cosine: float,
        max_abs_diff: float | None,
        min_agreement: float | None,
        no_validate: bool = False,
    ) -> FidelityOptions:
        """The gate's bar and inputs; disabled by --no-validate."""
        gate = Gate(min_cosine=min_cosine, max_abs_diff=max_abs_diff, min_agreement=min_agreement)
        return FidelityOptions(gate, corpus, texts, enabled=not no_validate)


class EngineBuildArgs(ArgGroup[EngineOptions]):
    """A TensorRT engine build: GPU profile, precision, shape profiles, builder settings, verification."""

    dest = "options"

    def __init__(self) -> None:
        self.gpu = GpuArgs(default=None, gpu_only=True, required=True, help="the GPU profile the engine is built for")
        self.precision = PrecisionArgs("tensorrt", default="hybrid")

    def options(self) -> Sequence[Decorator]:
        """Everything `EngineOptions` holds."""
        return (
            *self.gpu.options(),
            *self.precision.options(),
            click.option(
                "--max-length",
                type=click.IntRange(1),
                help="longest sequence [default: the model's maximum, from export.json beside the ONNX file, as "
                "make-repo uses]",
            ),
            click.option(
                "--shape-profile-lengths",
                type=int_list,
                help="upper lengths of the TensorRT shape (optimization) profiles, e.g. 128,256 [default: the GPU "
                "profile's buckets]",
            ),
            deprecated_option("--profile-lengths", "--shape-profile-lengths", type=int_list),
            click.option(
                "--workspace-gib", type=click.FloatRange(0.001), help="builder workspace [default: GPU memory / 4, 1–8]"
            ),
            click.option(
                "--timing-cache", type=click.Path(path_type=Path, dir_okay=False), help="reused across builds"
            ),
            click.option(
                "--opt-level", type=click.IntRange(0, 5), default=3, show_default=True, help="builder optimisation"
            ),
            click.option("--hardware-compat", type=click.Choice(HARDWARE_LEVELS), default="none", show_default=True),
            click.option("--version-compatible", is_flag=True, help="loadable by later TensorRT versions"),
            click.option(
                "--tf32/--no-tf32",
                default=False,
                show_default=True,
                help="TF32 for FP32 layers (off: strict FP32, recorded)",
            ),
            click.option(
                "--tokenizer",
                type=click.Path(path_type=Path, dir_okay=False),
                help="[default: beside the ONNX file]",
            ),
            click.option("--no-verify", is_flag=True, help="skip the comparison with ONNX Runtime FP32"),
            click.option("--min-cosine", type=float, help="per-token cosine bar [default: by precision]"),
            click.option("--max-abs-diff", type=float, help="absolute difference bar [default: by precision]"),
        )

    def parse(
        self,
        gpu: str,
        precision: str,
        max_length: int | None,
        shape_profile_lengths: tuple[int, ...] | None,
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
    ) -> EngineOptions:
        """The build's options; the tokenizer defaults to the one beside the ONNX file (EngineFromOnnx)."""
        lengths = renamed("--profile-lengths", "--shape-profile-lengths", profile_lengths, shape_profile_lengths)
        profile = self.gpu.parse(gpu)
        assert profile is not None  # required
        return EngineOptions(
            gpu=profile,
            precision=self.precision.parse(precision),
            max_length=max_length,
            shape_profile_lengths=lengths or (),
            workspace_bytes=int(workspace_gib * GIB) if workspace_gib else None,
            timing_cache=timing_cache,
            optimization_level=opt_level,
            hardware_compatibility=hardware_compat,
            version_compatible=version_compatible,
            tf32=tf32,
            verify=not no_verify,
            min_cosine=min_cosine,
            max_abs_diff=max_abs_diff,
            tokenizer=tokenizer,
        )


class ScriptOnlyArgs(ArgGroup[bool]):
    """--script-only (formerly --plan-only): write the reproduce script and its inputs, build nothing."""

    dest = "build"

    def options(self) -> Sequence[Decorator]:
        """The flag and its old spelling."""
        return (
            click.option(
                "--script-only", is_flag=True, help="write the reproduce script and its inputs; build nothing"
            ),
            deprecated_option("--plan-only", "--script-only", is_flag=True),
        )

    def parse(self, script_only: bool, plan_only: bool) -> bool:
        """Whether to build."""
        return not renamed("--plan-only", "--script-only", plan_only, script_only)
