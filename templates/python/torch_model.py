"""Triton Python-backend model running the Hugging Face model with PyTorch, on a GPU or the CPU.

Eager PyTorch spends milliseconds of CPU launch overhead per forward whatever the batch, so on a
GPU every (batch bucket, length bucket) within a token budget is captured once as a CUDA graph at
load time and replayed per request: batches are padded up to their bucket and cut back after.
The CPU runs the same code without graphs.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

# isort: off
import tritonbuild_backend as tb  # first: it puts the right site-packages on sys.path
import numpy as np
import torch
from torch.utils.dlpack import to_dlpack
import fused_transformer
# isort: on

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16, "hybrid": torch.float16}


def bucket_for(size: int, buckets: list[int]) -> int | None:
    """The smallest bucket holding `size`, or None when it is larger than all."""
    return next((b for b in buckets if size <= b), None)


def stage_rows(staged: np.ndarray, ids: np.ndarray, mask: np.ndarray) -> None:
    """Write a batch into a bucket's (2, rows, seq) staging buffer, padding rows repeating its first row.

    Repeated real rows, not all-masked ones, keep the padding free of NaN; nothing is allocated.
    """
    rows = ids.shape[0]
    staged[0, :rows] = ids
    staged[1, :rows] = mask
    staged[0, rows:] = ids[0]
    staged[1, rows:] = mask[0]


def capture_inputs(batch: int, seq: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs to capture a graph with: the mask must contain a zero.

    transformers drops an all-ones attention mask before attention (a data-dependent shortcut); a
    graph captured that way would ignore the padding of every later request.
    """
    ids = np.ones((batch, seq), dtype=np.int64)
    mask = np.ones_like(ids)
    if seq > 1:
        mask[0, -1] = 0
    return ids, mask


def keep_fp32(module: torch.nn.Module, dtype: torch.dtype) -> None:
    """Run `module` in FP32 inside a `dtype` model: cast its input up and its output back down."""
    module.float()
    module.register_forward_pre_hook(lambda _, args: tuple(a.float() for a in args))
    module.register_forward_hook(lambda _, args, out: out.to(dtype))


def apply_precision(model: torch.nn.Module, precision: str) -> torch.nn.Module:
    """Cast the model for a precision plan; hybrid keeps every LayerNorm in FP32.

    Attention runs through scaled_dot_product_attention, whose FP16 kernels keep the softmax
    statistics in FP32, so hybrid's "FP32 softmax" holds inside the fused kernel.
    """
    model = model.to(PRECISIONS[precision])
    if precision == "hybrid":
        for module in model.modules():
            if isinstance(module, torch.nn.LayerNorm):
                keep_fp32(module, PRECISIONS[precision])
    return model


Finish = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (output, mask) → output


@dataclass(frozen=True)
class Forward:
    """forward(ids, mask, full) → the task's output as FP32.

    full promises that no row is padded; where `mask_free`, it selects a faster path (attention
    without a mask), which the Runner captures as graphs of their own.
    """

    run: Callable[[torch.Tensor, torch.Tensor, bool], torch.Tensor]
    mask_free: bool = False

    def __call__(self, ids: torch.Tensor, mask: torch.Tensor, full: bool = False) -> torch.Tensor:
        """Run it."""
        return self.run(ids, mask, full)


def task_output(out: object, task: str, mask: torch.Tensor) -> torch.Tensor:
    """The graph output of a task from a Hugging Face model's output, as FP32 (last real token for causal-lm)."""
    if task == "feature-extraction":
        return out.last_hidden_state.float()
    if task == "text-classification":
        return out.logits.float()
    return out.logits[last_token(mask)].float()


def last_token(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Index of each row's last real token (right padding)."""
    return torch.arange(mask.shape[0], device=mask.device), mask.sum(dim=1) - 1


def fused_head(model: torch.nn.Module, task: str) -> Finish:
    """The task head on a fused trunk's hidden states, using the model's own head modules.

    A widened BF16 trunk returns FP32 states (FusedTransformer.widen): they are cast to the head's dtype.
    """
    kind = model.config.model_type
    if task == "feature-extraction":
        return lambda hidden, mask: hidden
    if task == "causal-lm" and kind == "gpt2":  # project only the tokens asked for, not all of them
        low = model.lm_head.weight.dtype
        return lambda hidden, mask: model.lm_head(hidden[last_token(mask)].to(low))
    if task == "text-classification" and kind == "bert":
        low = model.classifier.weight.dtype
        return lambda hidden, mask: model.classifier(model.bert.pooler(hidden.to(low)))
    if task == "text-classification" and kind == "distilbert":
        low = model.pre_classifier.weight.dtype
        return lambda hidden, mask: model.classifier(torch.relu(model.pre_classifier(hidden[:, 0].to(low))))
    raise fused_transformer.Unsupported(f"{task} head of {kind}")


def build_forward(model: torch.nn.Module, task: str, kernels: str, finish: Finish | None = None) -> Forward:
    """The task's forward: fused kernels where supported, else the model's own forward.

    `finish(output, mask)` runs on the output before the cast to FP32 (pooling while it is still FP16).
    """
    end = finish or (lambda out, mask: out)
    if kernels != "hf":
        try:
            trunk = fused_transformer.fuse(model.base_model, gelu_epilogue=kernels == "fused-tanh-gelu")
            head = fused_head(model, task)
        except fused_transformer.Unsupported as exc:
            print(f"fused kernels: {exc} is not supported; running the Hugging Face forward", flush=True)
        else:
            return Forward(
                lambda ids, mask, full: end(head(trunk(ids, mask, full), mask), mask).float(),
                mask_free=not trunk.pre_norm,  # decoders' causal attention needs no padding mask anyway
            )
    return Forward(
        lambda ids, mask, full: end(task_output(model(input_ids=ids, attention_mask=mask), task, mask), mask).float()
    )


def from_dlpack(tensor: object) -> np.ndarray:
    """An input tensor as numpy through DLPack, never through the stub's own numpy bridge.

    Under numpy 2 the 2.51 stub's as_numpy() reads INT64 inputs with the wrong strides (seen on a GPU
    host: every text became copies of its first token); DLPack carries shape and strides, and numpy's
    reader of it is numpy 2's own (half the time of a detour through torch).
    """
    return np.from_dlpack(tensor)


class Runner:
    """Forward passes with optional CUDA-graph replay per (batch, length) bucket."""

    def __init__(
        self,
        forward: Forward,
        device: torch.device,
        batches: list[int],
        seq_buckets: list[int],
        token_budget: int,
    ) -> None:
        """Capture (on a GPU) every (batch in `batches`, length in `seq_buckets`) within `token_budget` tokens.

        `batches` are increasing: a batch runs padded up to the next of them, eagerly beyond the last.
        """
        self.forward, self.device = forward, device
        self.batches = list(batches)
        self.bucket_of = [bucket_for(rows, self.batches) for rows in range(self.batches[-1] + 1)]  # rows → bucket
        self.graphs: dict[tuple[int, int, bool], tuple] = {}  # (batch, length, no padded row) → graph
        if device.type == "cuda":
            shapes = [(b, s) for s in seq_buckets for b in self.batches if b * s <= token_budget]
            self._capture(shapes)

    @torch.inference_mode()
    def eager(self, ids: torch.Tensor, mask: torch.Tensor, full: bool = False) -> torch.Tensor:
        """One forward pass without graphs."""
        return self.forward(ids, mask, full)

    def _capture(self, shapes: list[tuple[int, int]]) -> None:
        """One graph per shape (and per mask path); every graph of one length copies out into one pinned buffer.

        One buffer per length is enough: execute() makes one call per length, and the stub copies its outputs
        out before the next execute() (run_grouped copies the results of its one-by-one retries).
        """
        pool = torch.cuda.graph_pool_handle()
        stream = torch.cuda.Stream()
        outputs: dict[int, torch.Tensor] = {}  # length → pinned host buffer for its largest batch
        for (batch, seq), full in itertools.product(shapes, (False, True) if self.forward.mask_free else (False,)):
            # ids and mask share one device buffer, so a request needs one host-to-device copy
            ids, mask = capture_inputs(batch, seq)
            tokens = torch.from_numpy(np.stack((ids, np.ones_like(mask) if full else mask))).to(self.device)
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                for _ in range(2):  # warm-up outside the graph: cuBLAS handles, autotuning, compilation
                    self.eager(tokens[0], tokens[1], full)
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=pool):
                out = self.eager(tokens[0], tokens[1], full)
            staged = torch.empty(tokens.shape, dtype=tokens.dtype, pin_memory=True)
            if seq not in outputs:
                largest = max(b for b, s in shapes if s == seq)
                outputs[seq] = torch.empty((largest, *out.shape[1:]), dtype=out.dtype, pin_memory=True)
            self.graphs[(batch, seq, full)] = (graph, tokens, staged, staged.numpy(), out, outputs[seq][:batch])

    def __call__(self, ids: np.ndarray, mask: np.ndarray) -> torch.Tensor:
        """Outputs for a batch of one length, as a C-contiguous CPU FP32 tensor with one row per input row.

        On a GPU the result is a view of the length's pinned output buffer, made at load time: it holds
        until the next call at the same length, which is after the stub has copied the response out (each
        execute() runs one call per length). Nothing on this path allocates host memory.
        """
        rows, seq = ids.shape
        full = self.forward.mask_free and bool(mask.all())  # padding rows repeat a real row: still full
        entry = self.graphs.get((self.bucket_of[rows], seq, full)) if rows < len(self.bucket_of) else None
        if entry is None:
            ids_, mask_ = torch.from_numpy(ids).to(self.device), torch.from_numpy(mask).to(self.device)
            return self.eager(ids_, mask_, full).cpu().contiguous()
        graph, tokens, staged, staged_array, static_out, host = entry
        stage_rows(staged_array, ids, mask)  # pinned: the copy below is asynchronous
        tokens.copy_(staged, non_blocking=True)
        graph.replay()
        host.copy_(static_out, non_blocking=True)
        torch.cuda.current_stream().synchronize()  # also what keeps `staged` free until the next call
        return host[:rows]


def load_runner(args: dict, finish: Finish | None = None) -> Runner:
    """The model in `hf/` with the config's precision and kernels, captured per bucket on a GPU.

    `finish(output, mask)`, when given, runs inside the graphs on the task output (see build_forward).
    """
    import transformers

    params = tb.params(args)
    path = tb.version_file(args, "hf")
    auto = getattr(transformers, params["auto_class"])
    gpu = args["model_instance_kind"] == "GPU" and torch.cuda.is_available()
    tb.configure_threads(args, computes_on_host=not gpu)
    device = torch.device(f"cuda:{args['model_instance_device_id']}" if gpu else "cpu")
    if gpu:  # streams, the graph pool and cuBLAS handles are made on the current device: the instance's own
        torch.cuda.set_device(device)
    model = auto.from_pretrained(path, attn_implementation="sdpa", dtype=torch.float32)
    model = apply_precision(model.eval(), params["precision"]).to(device)
    forward = build_forward(model, params["task"], params["kernels"], finish)
    seq_buckets = [int(s) for s in params["seq_buckets"].split(",")]
    batches = [int(b) for b in params["batch_buckets"].split(",")]
    return Runner(forward, device, batches, seq_buckets, int(params["graph_token_budget"]))


class TritonPythonModel:
    """Token ids in, the task's raw output out (last hidden state, logits), on a GPU or the CPU."""

    def initialize(self, args: dict) -> None:
        """Load, cast, and (on a GPU) capture every bucketed shape before serving."""
        self.name = args["model_name"]
        self.limits = tb.TokenLimits.of(args)
        self.runner = load_runner(args)
        # A request's rows of the Runner's C-contiguous result go to the stub by DLPack as they are: two calls
        # per request, where tb.output_tensor's general path makes six.
        name, tensor = tb.output_names(args)[0], tb.pb_utils.Tensor
        self.outputs = lambda part: [tensor.from_dlpack(name, to_dlpack(part))]

    def execute(self, requests: list) -> list:
        """Answer every request; same-length valid requests run together, a bad one fails alone."""
        groups, errors = tb.token_inputs(requests, self.limits, read=from_dlpack)
        return tb.run_grouped(self.name, groups, errors, self.runner, self.outputs)
