"""python-torch: PyTorch inside a Python-backend model, CUDA graphs per length bucket on a GPU; bundled server.

Its model folder holds the Hugging Face model (`hf/`) and templates/python/torch_model.py, which casts it
for the precision (that template's PRECISIONS must name the ones declared here: a test checks it) and runs
the fused trunk of templates/python/fused_transformer.py or the Hugging Face modules (`kernels`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from builder.engines.base import (
    GateKind,
    ModelSlot,
    Producer,
    ServingBackend,
    Staging,
    python_files,
    token_limits,
)
from builder.repository.layout import FileEntry, ModelDirPlan

# The fused trunk, the same with GELU in the GEMM epilogue (tanh form: an approximation for BERT and
# DistilBERT), or the Hugging Face modules as they are.
KERNELS = ("fused", "fused-tanh-gelu", "hf")
PRECISIONS = ("fp32", "fp16", "bf16", "hybrid")
# CUDA graphs are captured for bucket shapes up to this many tokens; larger batches are compute-bound anyway.
GRAPH_TOKEN_BUDGET = 32_768

_TORCH_FILES = (("fused_transformer.py", "template:fused_transformer.py"), ("hf", "hf_model"))


def default_batch_buckets(max_batch: int) -> tuple[int, ...]:
    """The batch sizes captured as CUDA graphs by default: 1, 2, 4, then 8, 12, 16, 24, 32, 48, ... and max_batch.

    A batch runs padded up to the next of them. Each is at most 1.5 × the one before, so padding wastes under a
    third of a batch (powers of two: under half): merged batches at moderate load fall between powers of two (10.7
    rows on average in the model step of 64 concurrent one-text requests on an H200,
    scripts/results/h200_2026-12-03/floor_1847/), and a forward of that size takes longer the more rows it has.
    """
    sizes = [1, 2, 4, *(s for p in range(3, max_batch.bit_length()) for s in (1 << p, 3 << (p - 1)))]
    return (*(s for s in sizes if s < max_batch), max_batch)


def slot_batch_buckets(slot: ModelSlot) -> tuple[int, ...]:
    """The batch sizes the model folder captures: make-repo --batch-buckets, else the default, up to max_batch."""
    max_batch = slot.gpu.max_batch_size
    sizes = slot.serving.batch_buckets or default_batch_buckets(max_batch)  # ServingOptions refuses ()
    return (*(b for b in sizes if b < max_batch), max_batch)


def _save_model(dest: Path, staging: Staging) -> None:
    staging.module().model.save_pretrained(dest)


class PythonTorch(ServingBackend, name="python-torch"):
    """Serves the PyTorch model itself, cast for the precision, gated on its own forward."""

    description = "PyTorch inside a Python-backend model, CUDA graphs per bucket on a GPU (bundled server)"
    precisions = PRECISIONS
    platform = "python"
    bundled = True
    gate = GateKind.TORCH
    files = (*python_files("torch_model.py"), *_TORCH_FILES)
    kernels = KERNELS
    single_model = True
    batch_buckets = True

    def parameters(self, slot: ModelSlot) -> tuple[tuple[str, str], ...]:
        """What torch_model.py reads from its config: task, precision, length and batch buckets, budget, kernels."""
        info = slot.info
        return (
            ("task", info.task.name),
            ("auto_class", info.task.auto_class),
            ("precision", slot.precision),
            ("seq_buckets", ",".join(map(str, slot.gpu.buckets_up_to(info.max_length)))),
            ("batch_buckets", ",".join(map(str, slot_batch_buckets(slot)))),
            ("graph_token_budget", str(GRAPH_TOKEN_BUDGET)),
            ("kernels", slot.serving.kernels),
        )

    def model_folder(self, slot: ModelSlot) -> ModelDirPlan:
        """A Python model over token ids, checked against the model's limits."""
        spec = slot.config(backend="python", parameters=(*self.parameters(slot), *token_limits(slot.info)))
        return ModelDirPlan(spec, self.files)

    def text_model(
        self, slot: ModelSlot, tokenizer: tuple[tuple[str, str], ...], files: tuple[FileEntry, ...]
    ) -> ModelDirPlan:
        """One Python model doing TEXT → tokens → PyTorch → public outputs (torch_text_model.py).

        One backend-stub round trip per request instead of three: what a batch-1 latency budget needs.
        """
        copied = ("torch_model.py", "tokenizer_model.py", "post_model.py")
        all_files = (*python_files("torch_text_model.py"), *((f, f"template:{f}") for f in copied), *_TORCH_FILES)
        spec = slot.config(backend="python", parameters=(*tokenizer, *self.parameters(slot)))
        return ModelDirPlan(spec, (*all_files, *files))

    def producers(self) -> Mapping[str, Producer]:
        """`hf/`: the Hugging Face model as loaded, saved with save_pretrained."""
        return {"hf_model": _save_model}
