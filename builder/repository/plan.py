"""Plan a model repository: a pure function from options to typed model configs and file lists.

The tokenizer, post-processing and ensemble are the repository's own; the model folder between them is the
serving backend's (builder/engines/), which fills the slot this module sizes from the GPU profile. What the
backend cannot serve is refused by the support matrix (builder/support.py) before anything is planned.
"""

from __future__ import annotations

import re
from dataclasses import replace

from builder.common.errors import ConfigError
from builder.engines import get_backend, names
from builder.engines.base import ModelSlot, ServingBackend, python_files
from builder.gpus import GpuProfile
from builder.repository.layout import ModelDirPlan, RepoPlan
from builder.repository.modelconfig import (
    DynamicBatching,
    EnsembleStep,
    InstanceGroup,
    ModelConfigSpec,
    TensorSpec,
    check_ensemble,
)
from builder.repository.options import ServingOptions
from builder.sources.source import ModelInfo
from builder.support import check

MAX_TEXT_BYTES = 1_000_000
# The tokenizer cuts each text to max_length × this many characters before tokenizing: the model reads
# max_length tokens anyway, and English averages about 4 characters a token (1,018 characters gave MiniLM's
# 256 tokens on Python's pydoc text). Only texts averaging over 16 characters a token lose tokens they had.
TEXT_CHARS_PER_TOKEN = 16


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


def _slot(
    info: ModelInfo,
    name: str,
    gpu: GpuProfile,
    precision: str,
    serving: ServingOptions,
    tensors: tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]],
) -> ModelSlot:
    """The model folder NAME_model as the repository sizes it: batching and instances from the GPU profile."""
    inputs, outputs = tensors
    return ModelSlot(
        info,
        gpu,
        precision,
        serving,
        f"{name}_model",
        inputs,
        outputs,
        _batcher(gpu, serving),
        _model_group(gpu, serving),
    )


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


def _labels(info: ModelInfo) -> tuple[tuple[str, str], ...]:
    return (("labels.json", "labels"),) if info.labels else ()


def _single_model(
    info: ModelInfo, name: str, backend: ServingBackend, gpu: GpuProfile, precision: str, serving: ServingOptions
) -> RepoPlan:
    """One model doing TEXT → tokens → model → public outputs, behind a one-step ensemble NAME (if the backend can)."""
    _, outputs = _post_io(info)
    slot = _slot(info, name, gpu, precision, serving, (_text_in(), outputs))
    files = (("tokenizer.json", "tokenizer"), *_labels(info))
    model = backend.text_model(slot, _tokenizer_parameters(info, gpu), files)
    steps = (EnsembleStep(model.config.name, (("TEXT", "TEXT"),), _passthrough(outputs)),)
    return _with_ensemble(name, backend.name, gpu, (model,), steps, serving)


def plan_repository(
    info: ModelInfo,
    name: str,
    backend: str,
    gpu: GpuProfile,
    precision: str = "fp32",
    serving: ServingOptions = ServingOptions(),
) -> RepoPlan:
    """Plan tokenizer → model → post → ensemble for `info` served by `backend`; ConfigError on any inconsistency.

    `backend` is a serving backend's name, the value of make-repo's --engine.
    """
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name):
        raise ConfigError(f"invalid model name '{name}'", hint="use letters, digits, '_', '-' and '.' (max 64)")
    chosen = get_backend(backend)
    if not chosen.kernels and serving.kernels != ServingOptions.kernels:
        raise ConfigError(f"--kernels goes with --engine {names(lambda b: b.kernels)}")
    if not chosen.batch_buckets and serving.batch_buckets is not None:
        raise ConfigError(f"--batch-buckets goes with --engine {names(lambda b: b.batch_buckets)}")
    check(chosen, precision, gpu).raise_if_refused()
    for option, count in (
        ("--tokenizer-instances", serving.tokenizer_instances),
        ("--post-instances", serving.post_instances),
    ):
        if serving.single_model and count is not None:
            raise ConfigError(f"{option} goes with the 3-step ensemble: --single-model does every step in the model")
    gpu = serving.profile(gpu)
    if serving.single_model:
        return _single_model(info, name, chosen, gpu, precision, serving)
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
        (*python_files("tokenizer_model.py"), ("tokenizer.json", "tokenizer")),
    )
    model = chosen.model_folder(_slot(info, name, gpu, precision, serving, (_token_tensors(), (_graph_output(info),))))
    post_in, post_out = _post_io(info)
    post_files = (*python_files("post_model.py"), *_labels(info))
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
    return _with_ensemble(name, chosen.name, gpu, (tokenizer, model, post), steps, serving)


def _with_threads(model: ModelDirPlan, serving: ServingOptions) -> ModelDirPlan:
    """`model` with the --host-threads override among its parameters, when it is a Python model."""
    if model.config.backend != "python" or serving.host_threads is None:
        return model
    config = replace(model.config, parameters=(*model.config.parameters, *serving.threads_parameter()))
    return ModelDirPlan(config, model.files)


def _with_ensemble(
    name: str,
    backend: str,
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
    return RepoPlan(name, backend, gpu, (*members, ModelDirPlan(ensemble, ())))
