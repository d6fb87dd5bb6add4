"""Plan a model repository: a pure function from options to typed model configs and file lists."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from builder.common.errors import ConfigError
from builder.gpus import GpuProfile
from builder.modelconfig import (
    DynamicBatching,
    EnsembleStep,
    InstanceGroup,
    ModelConfigSpec,
    TensorSpec,
    check_ensemble,
)
from builder.precision import PRESETS
from builder.source import ModelInfo
from builder.trt_repo import TENSORRT_ENGINES, tensorrt_model

ENGINES = {
    "python-onnxruntime": "ONNX Runtime inside a Python-backend model (runs in the bundled server)",
    "python-torch": "PyTorch inside a Python-backend model, CUDA graphs per bucket on a GPU (bundled server)",
    "onnxruntime": "Triton's onnxruntime_onnx platform (needs the NGC tritonserver container)",
    **TENSORRT_ENGINES,
}
MAX_TEXT_BYTES = 1_000_000
# The tokenizer cuts each text to max_length × this many characters before tokenizing: the model reads
# max_length tokens anyway, and English averages about 4 characters a token (1,018 characters gave MiniLM's
# 256 tokens on Python's pydoc text). Only texts averaging over 16 characters a token lose tokens they had.
TEXT_CHARS_PER_TOKEN = 16
TORCH_PRECISIONS = ("fp32", "fp16", "bf16", "hybrid")
# Engines whose model.onnx is the precision variant itself (builder.precision), gated by builder.fidelity.
# onnxruntime-trt is not one: its accelerator applies the precision to the FP32 graph when the server builds.
VARIANT_ENGINES = ("python-onnxruntime", "onnxruntime")
# CUDA graphs are captured for bucket shapes up to this many tokens; larger batches are compute-bound anyway.
GRAPH_TOKEN_BUDGET = 32_768

# python-torch kernels (templates/python/torch_model.py): fused trunk, fused with GELU in the GEMM epilogue
# (tanh form: an approximation for BERT and DistilBERT), or the Hugging Face modules as they are.
TORCH_KERNELS = ("fused", "fused-tanh-gelu", "hf")

# A file to place in a model's version folder: (name in the folder, what produces it).
# Producers: "template:<file>" copies templates/python/<file>; "onnx", "tokenizer", "labels" are artifacts.
FileEntry = tuple[str, str]


@dataclass(frozen=True)
class ServingOptions:
    """How the repository serves, beyond engine and precision."""

    kernels: str = "fused"  # python-torch: one of TORCH_KERNELS
    single_model: bool = False  # python-torch: tokenizer, model and post-processing in one Python model
    max_queue_delay_us: int | None = None  # the model's batching delay; None keeps the GPU profile's
    host_threads: int | None = None  # every Python model's pool size; None: the stubs' rule (tritonbuild_backend)
    gpus: tuple[int, ...] = ()  # the model's instances on each of these GPUs; (): Triton's placement (every GPU)
    # Overrides of the GPU profile's serving settings (None keeps the profile's): what `tritonbench tune` searches.
    model_instances: int | None = None  # the model's instances (on each GPU of the placement)
    tokenizer_instances: int | None = None  # the tokenizer step's instances (scaled with the GPUs, as the profile's)
    max_batch_size: int | None = None  # every model of the deployment
    preferred_batch_sizes: tuple[int, ...] | None = None  # the model's; (): none, the batcher fills max_batch_size
    seq_buckets: tuple[int, ...] | None = None  # the lengths the tokenizer pads to (and python-torch captures)

    def __post_init__(self) -> None:
        if self.kernels not in TORCH_KERNELS:
            raise ConfigError(f"unknown kernels '{self.kernels}'", hint=f"choose {', '.join(TORCH_KERNELS)}")
        if self.max_queue_delay_us is not None and self.max_queue_delay_us < 0:
            raise ConfigError("the batching delay must be >= 0 microseconds")
        if self.host_threads is not None and self.host_threads < 1:
            raise ConfigError("--host-threads must be >= 1")
        if self.gpus and (min(self.gpus) < 0 or len(set(self.gpus)) != len(self.gpus)):
            raise ConfigError(f"--gpus {','.join(map(str, self.gpus))}: give distinct GPU indices, e.g. 0,1")
        self._check_overrides()

    def _check_overrides(self) -> None:
        counts = {"--model-instances": self.model_instances, "--tokenizer-instances": self.tokenizer_instances,
                  "--max-batch-size": self.max_batch_size}  # fmt: skip
        for option, count in counts.items():
            if count is not None and count < 1:
                raise ConfigError(f"{option} must be >= 1")
        for option, sizes in {
            "--preferred-batch-sizes": self.preferred_batch_sizes,
            "--seq-buckets": self.seq_buckets,
        }.items():
            if sizes and (min(sizes) < 1 or list(sizes) != sorted(set(sizes))):
                raise ConfigError(
                    f"{option} {_listed(sizes)}: give strictly increasing positive sizes", hint="e.g. 8,16,32"
                )
        if self.seq_buckets == ():
            raise ConfigError("--seq-buckets needs at least one length", hint="e.g. 32,64,128")
        if self.preferred_batch_sizes and self.max_batch_size and max(self.preferred_batch_sizes) > self.max_batch_size:
            raise ConfigError(
                f"--preferred-batch-sizes {_listed(self.preferred_batch_sizes)} exceeds --max-batch-size "
                f"{self.max_batch_size}"
            )

    @property
    def gpu_count(self) -> int:
        """How many GPUs the placement names (1 when it leaves placement to Triton)."""
        return max(1, len(self.gpus))

    def threads_parameter(self) -> tuple[tuple[str, str], ...]:
        """The `host_threads` parameter every Python model gets when the rule is overridden."""
        return () if self.host_threads is None else (("host_threads", str(self.host_threads)),)

    def profile(self, gpu: GpuProfile) -> GpuProfile:
        """`gpu` with these overrides: the one profile every config of a plan reads its serving settings from.

        A smaller --max-batch-size without --preferred-batch-sizes keeps the profile's preferred sizes that fit.
        """
        max_batch = self.max_batch_size or gpu.max_batch_size
        preferred = self.preferred_batch_sizes
        if preferred is None:
            preferred = tuple(b for b in gpu.preferred_batch_sizes if b <= max_batch)
        elif preferred and max(preferred) > max_batch:
            raise ConfigError(
                f"--preferred-batch-sizes {_listed(preferred)} exceeds the max batch size {max_batch} of GPU "
                f"profile {gpu.name}",
                hint="lower them or raise --max-batch-size",
            )
        return replace(
            gpu,
            max_batch_size=max_batch,
            preferred_batch_sizes=preferred,
            model_instances=self.model_instances or gpu.model_instances,
            tokenizer_instances=self.tokenizer_instances or gpu.tokenizer_instances,
            seq_buckets=self.seq_buckets or gpu.seq_buckets,
        )


def _listed(sizes: tuple[int, ...]) -> str:
    return ",".join(map(str, sizes))


@dataclass(frozen=True)
class ModelDirPlan:
    """One model folder: its config and the files of version 1."""

    config: ModelConfigSpec
    files: tuple[FileEntry, ...]


@dataclass(frozen=True)
class RepoPlan:
    """The model folders of one deployment (tokenizer, model, post, or a single model), ensemble last."""

    name: str
    engine: str
    gpu: GpuProfile
    models: tuple[ModelDirPlan, ...]

    @property
    def ensemble(self) -> ModelConfigSpec:
        """The ensemble's config (the public entry point)."""
        return self.models[-1].config


def _python_files(model_file: str) -> tuple[FileEntry, ...]:
    """model.py from the named template, with the helper module every Python-backend model imports."""
    return (("model.py", f"template:{model_file}"), ("tritonbuild_backend.py", "template:tritonbuild_backend.py"))


def _fp32(name: str, dims: tuple[int, ...]) -> TensorSpec:
    return TensorSpec(name, "TYPE_FP32", dims)


def _token_tensors() -> tuple[TensorSpec, ...]:
    return (TensorSpec("input_ids", "TYPE_INT64", (-1,)), TensorSpec("attention_mask", "TYPE_INT64", (-1,)))


def _graph_output(info: ModelInfo) -> TensorSpec:
    width = info.output_width
    return _fp32(info.task.graph_output, (-1, width) if info.task.graph_output_per_token else (width,))


def _post_io(info: ModelInfo) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    graph = _graph_output(info)
    if info.task.name == "feature-extraction":
        return (graph, _token_tensors()[1]), (_fp32("EMBEDDING", (info.hidden_size,)),)
    if info.task.name == "text-classification":
        return (graph,), (TensorSpec("LABEL", "TYPE_STRING", (1,)), _fp32("PROBS", (len(info.labels),)))
    return (graph,), (_fp32("LOGITS", (info.vocab_size,)),)


def _batcher(gpu: GpuProfile, serving: ServingOptions) -> DynamicBatching:
    delay = gpu.max_queue_delay_us if serving.max_queue_delay_us is None else serving.max_queue_delay_us
    return DynamicBatching(gpu.preferred_batch_sizes, delay)


# Tokenizer and post-processing are cheap: batch whatever is already queued, never wait for more.
_NO_WAIT = DynamicBatching((), 0)


def _torch_parameters(info: ModelInfo, precision: str, gpu: GpuProfile, kernels: str) -> tuple[tuple[str, str], ...]:
    if precision not in TORCH_PRECISIONS:
        raise ConfigError(f"python-torch has no precision '{precision}'", hint=f"choose {', '.join(TORCH_PRECISIONS)}")
    if precision == "bf16" and not gpu.bf16:
        raise ConfigError(f"GPU profile {gpu.name} has no BF16", hint="use fp16 or hybrid")
    return (
        ("task", info.task.name),
        ("auto_class", info.task.auto_class),
        ("precision", precision),
        ("seq_buckets", ",".join(map(str, gpu.buckets_up_to(info.max_length)))),
        ("graph_token_budget", str(GRAPH_TOKEN_BUDGET)),
        ("kernels", kernels),
    )


_TORCH_FILES = (("fused_transformer.py", "template:fused_transformer.py"), ("hf", "hf_model"))


def _token_limits(info: ModelInfo) -> tuple[tuple[str, str], ...]:
    """What a token-id Python model checks each request against (tritonbuild_backend.TokenLimits)."""
    return (("vocab_size", str(info.vocab_size)), ("max_length", str(info.max_length)))


def _torch_model(
    info: ModelInfo, precision: str, gpu: GpuProfile, kernels: str, common: dict[str, Any]
) -> ModelDirPlan:
    parameters = (*_torch_parameters(info, precision, gpu, kernels), *_token_limits(info))
    spec = ModelConfigSpec(backend="python", parameters=parameters, **common)
    return ModelDirPlan(spec, (*_python_files("torch_model.py"), *_TORCH_FILES))


def _check_variant_precision(engine: str, precision: str, gpu: GpuProfile) -> None:
    if precision not in PRESETS:
        raise ConfigError(f"engine {engine} has no precision '{precision}'", hint=f"choose {', '.join(PRESETS)}")
    if precision == "bf16" and not gpu.bf16:  # ONNX Runtime's CPU provider has no BF16 kernels either
        raise ConfigError(f"GPU profile {gpu.name} has no BF16", hint="use fp16 or hybrid")


def _model_group(gpu: GpuProfile, serving: ServingOptions) -> InstanceGroup:
    """The model's instances: the profile's count on each named GPU, or on the CPU."""
    if not gpu.is_gpu:
        if serving.gpus:
            raise ConfigError(f"--gpus places instances on GPUs; GPU profile {gpu.name} has none")
        return InstanceGroup(gpu.model_instances, "KIND_CPU")
    return InstanceGroup(gpu.model_instances, "KIND_GPU", gpus=serving.gpus)


def _host_group(count: int, serving: ServingOptions) -> InstanceGroup:
    """A CPU-side step's instances, scaled with the GPUs it feeds."""
    return InstanceGroup(count * serving.gpu_count, "KIND_CPU")


def _model_config(
    info: ModelInfo, name: str, engine: str, gpu: GpuProfile, precision: str, serving: ServingOptions
) -> ModelDirPlan:
    common: dict[str, Any] = {
        "name": f"{name}_model",
        "max_batch_size": gpu.max_batch_size,
        "inputs": _token_tensors(),
        "outputs": (_graph_output(info),),
        "dynamic_batching": _batcher(gpu, serving),
        "instance_groups": (_model_group(gpu, serving),),
    }
    if engine == "python-torch":
        return _torch_model(info, precision, gpu, serving.kernels, common)
    if engine in TENSORRT_ENGINES:
        return ModelDirPlan(*tensorrt_model(engine, info, precision, gpu, common))
    if engine in VARIANT_ENGINES:
        _check_variant_precision(engine, precision, gpu)
    if engine == "python-onnxruntime":
        providers = "CUDAExecutionProvider,CPUExecutionProvider" if gpu.is_gpu else "CPUExecutionProvider"
        spec = ModelConfigSpec(backend="python", parameters=(("providers", providers), *_token_limits(info)), **common)
        return ModelDirPlan(spec, (*_python_files("onnxruntime_model.py"), ("model.onnx", "onnx")))
    if engine == "onnxruntime":
        spec = ModelConfigSpec(platform="onnxruntime_onnx", default_model_filename="model.onnx", **common)
        return ModelDirPlan(spec, (("model.onnx", "onnx"),))
    raise ConfigError(f"unknown engine '{engine}'", hint=f"choose one of: {', '.join(ENGINES)}")


def _tokenizer_parameters(info: ModelInfo, gpu: GpuProfile) -> tuple[tuple[str, str], ...]:
    return (
        ("max_length", str(info.max_length)),
        ("buckets", ",".join(map(str, gpu.buckets_up_to(info.max_length)))),
        ("pad_id", str(info.pad_id)),
        ("max_text_bytes", str(MAX_TEXT_BYTES)),
        ("max_text_chars", str(info.max_length * TEXT_CHARS_PER_TOKEN)),
    )


def _text_in() -> tuple[TensorSpec, ...]:
    return (TensorSpec("TEXT", "TYPE_STRING", (1,)),)


def _passthrough(tensors: tuple[TensorSpec, ...]) -> tuple[tuple[str, str], ...]:
    return tuple((t.name, t.name) for t in tensors)


def _single_model(
    info: ModelInfo, name: str, engine: str, gpu: GpuProfile, precision: str, serving: ServingOptions
) -> RepoPlan:
    """One Python model doing TEXT → tokens → PyTorch → public outputs, behind a one-step ensemble NAME.

    One backend-stub round trip per request instead of three: what a batch-1 latency budget needs.
    """
    if engine != "python-torch":
        raise ConfigError("--single-model goes with --engine python-torch")
    _, outputs = _post_io(info)
    parameters = (*_tokenizer_parameters(info, gpu), *_torch_parameters(info, precision, gpu, serving.kernels))
    files = (
        *_python_files("torch_text_model.py"),
        *((f, f"template:{f}") for f in ("torch_model.py", "tokenizer_model.py", "post_model.py")),
        *_TORCH_FILES,
        ("tokenizer.json", "tokenizer"),
        *((("labels.json", "labels"),) if info.labels else ()),
    )
    model = ModelDirPlan(
        ModelConfigSpec(
            name=f"{name}_model",
            backend="python",
            max_batch_size=gpu.max_batch_size,
            inputs=_text_in(),
            outputs=outputs,
            dynamic_batching=_batcher(gpu, serving),
            instance_groups=(_model_group(gpu, serving),),
            parameters=parameters,
        ),
        files,
    )
    steps = (EnsembleStep(model.config.name, (("TEXT", "TEXT"),), _passthrough(outputs)),)
    return _with_ensemble(name, engine, gpu, (model,), steps, serving)


def plan_repository(
    info: ModelInfo,
    name: str,
    engine: str,
    gpu: GpuProfile,
    precision: str = "fp32",
    serving: ServingOptions = ServingOptions(),
) -> RepoPlan:
    """Plan tokenizer → model → post → ensemble for `info`; raises ConfigError on any inconsistency."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name):
        raise ConfigError(f"invalid model name '{name}'", hint="use letters, digits, '_', '-' and '.' (max 64)")
    if engine != "python-torch" and serving.kernels != ServingOptions.kernels:
        raise ConfigError("--kernels goes with --engine python-torch")
    if serving.single_model and serving.tokenizer_instances is not None:
        raise ConfigError("--tokenizer-instances goes with the 3-step ensemble: --single-model tokenizes in the model")
    gpu = serving.profile(gpu)
    if serving.single_model:
        return _single_model(info, name, engine, gpu, precision, serving)
    tokenizer = ModelDirPlan(
        ModelConfigSpec(
            name=f"{name}_tokenizer",
            backend="python",
            max_batch_size=gpu.max_batch_size,
            inputs=_text_in(),
            outputs=_token_tensors(),
            dynamic_batching=_NO_WAIT,
            instance_groups=(_host_group(gpu.tokenizer_instances, serving),),
            parameters=_tokenizer_parameters(info, gpu),
        ),
        (*_python_files("tokenizer_model.py"), ("tokenizer.json", "tokenizer")),
    )
    model = _model_config(info, name, engine, gpu, precision, serving)
    post_in, post_out = _post_io(info)
    post_files = _python_files("post_model.py")
    if info.labels:
        post_files += (("labels.json", "labels"),)
    post = ModelDirPlan(
        ModelConfigSpec(
            name=f"{name}_post",
            backend="python",
            max_batch_size=gpu.max_batch_size,
            inputs=post_in,
            outputs=post_out,
            dynamic_batching=_NO_WAIT,
            instance_groups=(_host_group(gpu.post_instances, serving),),
            parameters=(("task", info.task.name),),
        ),
        post_files,
    )
    steps = (
        EnsembleStep(tokenizer.config.name, (("TEXT", "TEXT"),), _passthrough(_token_tensors())),
        EnsembleStep(
            model.config.name, _passthrough(_token_tensors()), ((info.task.graph_output, info.task.graph_output),)
        ),
        EnsembleStep(post.config.name, _passthrough(post_in), _passthrough(post_out)),
    )
    return _with_ensemble(name, engine, gpu, (tokenizer, model, post), steps, serving)


def _with_threads(model: ModelDirPlan, serving: ServingOptions) -> ModelDirPlan:
    """`model` with the --host-threads override among its parameters, when it is a Python model."""
    if model.config.backend != "python" or serving.host_threads is None:
        return model
    config = replace(model.config, parameters=(*model.config.parameters, *serving.threads_parameter()))
    return ModelDirPlan(config, model.files)


def _with_ensemble(
    name: str,
    engine: str,
    gpu: GpuProfile,
    members: tuple[ModelDirPlan, ...],
    steps: tuple[EnsembleStep, ...],
    serving: ServingOptions,
) -> RepoPlan:
    """The plan: `members`, then the ensemble NAME (TEXT in, the last step's outputs out), cross-checked."""
    members = tuple(_with_threads(m, serving) for m in members)
    last = next(m.config for m in members if m.config.name == steps[-1].model_name)
    ensemble = ModelConfigSpec(
        name=name,
        platform="ensemble",
        max_batch_size=gpu.max_batch_size,
        inputs=_text_in(),
        outputs=last.outputs,
        steps=steps,
    )
    check_ensemble(ensemble, {m.config.name: m.config for m in members})
    return RepoPlan(name, engine, gpu, (*members, ModelDirPlan(ensemble, ())))
