"""The fidelity gate: each precision variant against the PyTorch FP32 reference.

ONNX variants run on ONNX Runtime's CPU provider (`evaluate`); the python-torch backend runs its own forward
on the build host's GPU when it has one (`evaluate_torch`).

Measured per output on valid tokens only, on real text and, separately, on random token ids of the same
shapes: the seed paper found that random inputs understate FP16 error, so both are reported side by side.
Metrics are pure functions of arrays; `Reference.compute` and `evaluate` run models; nothing here writes
files except `write_reports`.

CPU kernels may compute FP16 in FP32 internally, so a CPU run understates FP16 error; real FP16
arithmetic needs a GPU run (scripts/bench/gpu_bench.py). ONNX Runtime's CPU provider has no BF16 kernels.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from builder.common.errors import OutputError, UserError
from builder.tensorrt.trt_plan import Array, compare_outputs

if TYPE_CHECKING:
    from builder.precision.variants import Variant
    from builder.sources.source import ModelInfo
    from builder.sources.tasks import GraphModule, TaskSpec

REAL, RANDOM = "real text", "random ids"
EMBEDDING = "EMBEDDING"  # the ensemble's pooled output, measured alongside the per-token states
REPORT_JSON, REPORT_MD = "fidelity.json", "fidelity.md"


class FidelityError(UserError):
    """A precision variant misses the fidelity gate, or the gate cannot run as asked."""


@dataclass(frozen=True)
class Gate:
    """The bar every output of a variant must clear, on real text and on random ids (defaults: the seed's)."""

    min_cosine: float = 0.9998  # per-token (or per-row) cosine with the PyTorch FP32 output, worst case
    max_nonfinite_rate: float = 0.0  # NaN/Inf values at valid positions, as a fraction
    max_abs_diff: float | None = None  # None: reported, not gated
    min_agreement: float | None = None  # same label / next token / nearest neighbour; None: reported, not gated

    def __post_init__(self) -> None:
        if not -1.0 <= self.min_cosine <= 1.0 or not 0.0 <= self.max_nonfinite_rate <= 1.0:
            raise FidelityError(f"invalid gate {self}", hint="cosine lies in [-1, 1], a NaN/Inf rate in [0, 1]")


@dataclass(frozen=True)
class FidelityOptions:
    """What the gate runs on and against which bar; shared by `tritonbuild validate` and `make-repo`."""

    gate: Gate = field(default_factory=Gate)
    corpus: Path | None = None  # one text per line; None: sentences of Python's pydoc topics
    texts: int = 64
    batch_size: int = 16
    max_length: int = 128
    enabled: bool = True  # make-repo --no-validate turns it off

    def __post_init__(self) -> None:
        if self.texts < 2 or self.batch_size < 1 or self.max_length < 2:
            raise FidelityError(f"invalid fidelity options {self}", hint="2+ texts, batches of 1+, 2+ tokens")


# ---------------------------------------------------------------------------------------------------------
# Inputs


@dataclass(frozen=True)
class Inputs:
    """Right-padded batches of one kind (real text or random ids), fed alike to PyTorch and ONNX Runtime."""

    kind: str
    batches: tuple[tuple[Array, Array], ...]  # (input_ids, attention_mask), int64, [batch, length]

    @property
    def masks(self) -> list[Array]:
        """The attention mask of each batch."""
        return [mask for _, mask in self.batches]


def spread(items: Sequence[str], count: int) -> list[str]:
    """`count` items evenly spaced over `items`, so a sample covers the whole corpus, not its first page."""
    step = max(1, len(items) // max(count, 1))
    return list(items[::step][:count])


def corpus_texts(path: Path | None, count: int) -> list[str]:
    """`count` distinct texts: non-empty lines of `path`, or sentences of Python's own documentation (pydoc_data)."""
    from builder.common.corpus import corpus_sentences

    try:
        lines = corpus_sentences() if path is None else [s.strip() for s in path.read_text().splitlines()]
    except (OSError, UnicodeDecodeError) as exc:
        raise FidelityError(f"cannot read corpus {path}: {exc}") from exc
    texts = spread(list(dict.fromkeys(t for t in lines if t)), count)  # a repeated text would be its own neighbour
    if len(texts) < 2:
        raise FidelityError(f"corpus {path} has {len(texts)} non-empty lines", hint="nearest neighbours need 2+")
    return texts


def text_inputs(info: ModelInfo, texts: Sequence[str], batch_size: int, max_length: int) -> Inputs:
    """Tokenized `texts` in batches, truncated to `max_length` (and the model's maximum), padded with its pad id."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(info.path, use_fast=True, trust_remote_code=info.trust_remote_code)
    backend = tokenizer.backend_tokenizer
    backend.enable_truncation(min(max_length, info.max_length))
    backend.enable_padding(pad_id=info.pad_id)
    batches = []
    for start in range(0, len(texts), batch_size):
        encoded = backend.encode_batch(list(texts[start : start + batch_size]))
        ids = np.array([e.ids for e in encoded], dtype=np.int64)
        batches.append((ids, np.array([e.attention_mask for e in encoded], dtype=np.int64)))
    return Inputs(REAL, tuple(batches))


def random_inputs(like: Inputs, vocab_size: int, pad_id: int, seed: int = 0) -> Inputs:
    """Uniform random token ids with the shapes and masks of `like`; padding keeps the pad id."""
    rng = np.random.default_rng(seed)
    batches = []
    for ids, mask in like.batches:
        drawn = rng.integers(0, vocab_size, size=ids.shape, dtype=np.int64)
        batches.append((np.where(mask.astype(bool), drawn, pad_id).astype(np.int64), mask))
    return Inputs(RANDOM, tuple(batches))


# ---------------------------------------------------------------------------------------------------------
# Metrics (pure)


@dataclass(frozen=True)
class OutputMetrics:
    """One output of one variant on one kind of input, against the PyTorch FP32 reference."""

    output: str
    inputs: str
    rows: int  # vectors compared: valid tokens, or texts
    min_cosine: float
    mean_cosine: float
    max_abs_diff: float
    nonfinite_rate: float
    agreement: float | None  # task agreement; None where the output has no task view (per-token states)
    agreement_kind: str = ""  # what agreement counts: label, next token or nearest neighbour

    def problems(self, gate: Gate) -> list[str]:
        """Every threshold of `gate` this output misses, with its numbers."""
        where = f"{self.output} on {self.inputs}"
        found = []
        if not self.min_cosine >= gate.min_cosine:
            found.append(f"{where}: min cosine {self.min_cosine:.7f} < {gate.min_cosine}")
        if not self.nonfinite_rate <= gate.max_nonfinite_rate:
            found.append(f"{where}: NaN/Inf rate {self.nonfinite_rate:.3g} > {gate.max_nonfinite_rate}")
        if gate.max_abs_diff is not None and not self.max_abs_diff <= gate.max_abs_diff:
            found.append(f"{where}: max abs diff {self.max_abs_diff:.4g} > {gate.max_abs_diff}")
        if gate.min_agreement is not None and self.agreement is not None and self.agreement < gate.min_agreement:
            found.append(f"{where}: {self.agreement_kind} agreement {self.agreement:.4f} < {gate.min_agreement}")
        return found


def pooled(hidden: Array, mask: Array) -> Array:
    """Mean over valid tokens, L2-normalised: the sentence embedding the ensemble serves."""
    valid = mask[..., None].astype(bool)
    states = np.where(valid, np.asarray(hidden, dtype=np.float64), 0.0)  # padding's values never count
    vectors = states.sum(1) / np.maximum(valid.sum(1), 1)
    with np.errstate(invalid="ignore"):  # an Inf in a variant's states makes its embedding NaN, as served
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def nearest_neighbours(vectors: Array) -> Array:
    """For each row, the index of the most similar other row (cosine; rows are unit length)."""
    clean = np.nan_to_num(np.asarray(vectors, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    similarity = clean @ clean.T
    np.fill_diagonal(similarity, -np.inf)
    return similarity.argmax(axis=1)


def top1(logits: Array) -> Array:
    """Argmax per row (label or next token); NaN counts as the lowest score."""
    return np.nan_to_num(np.asarray(logits, dtype=np.float64), nan=-np.inf).argmax(axis=1)


def measure(
    output: str, inputs: str, reference: Array, candidate: Array, agreement: tuple[str, float] | None = None
) -> OutputMetrics:
    """Cosine, difference and NaN/Inf rate over rows of [rows, width] arrays, with an optional task agreement."""
    # The TensorRT verification's comparison, so both gates measure the same thing; rows here are already valid.
    found = compare_outputs(output, 0, reference, candidate, np.ones(len(reference), dtype=bool))
    kind, value = agreement if agreement is not None else ("", None)
    return OutputMetrics(
        output=output,
        inputs=inputs,
        rows=len(reference),
        min_cosine=found.min_cosine,
        mean_cosine=found.mean_cosine,
        max_abs_diff=found.max_abs_diff,
        nonfinite_rate=found.nonfinite / max(np.size(candidate), 1),
        agreement=value,
        agreement_kind=kind,
    )


def compare(
    task: TaskSpec, inputs: str, references: list[Array], candidates: list[Array], masks: list[Array]
) -> list[OutputMetrics]:
    """Every output the task exposes: per-token states and pooled embeddings, or logits with their argmax."""
    if not task.graph_output_per_token:
        ref, got = np.concatenate(references), np.concatenate(candidates)
        kind = "next token" if task.name == "causal-lm" else "label"
        same = float(np.mean(top1(ref) == top1(got)))
        return [measure(task.graph_output, inputs, ref, got, (kind, same))]
    valid = [m.astype(bool) for m in masks]
    tokens_ref = np.concatenate([r[v] for r, v in zip(references, valid, strict=True)])
    tokens_got = np.concatenate([c[v] for c, v in zip(candidates, valid, strict=True)])
    vec_ref = np.concatenate([pooled(r, m) for r, m in zip(references, masks, strict=True)])
    vec_got = np.concatenate([pooled(c, m) for c, m in zip(candidates, masks, strict=True)])
    same = float(np.mean(nearest_neighbours(vec_ref) == nearest_neighbours(vec_got)))
    return [
        measure(task.graph_output, inputs, tokens_ref, tokens_got),
        measure(EMBEDDING, inputs, vec_ref, vec_got, ("nearest neighbour", same)),
    ]


# ---------------------------------------------------------------------------------------------------------
# Running the reference and the variants


@dataclass(frozen=True)
class Reference:
    """The PyTorch FP32 outputs on real text and on random ids, computed once for every variant."""

    task: TaskSpec
    inputs: tuple[Inputs, ...]
    outputs: tuple[list[Array], ...]

    @classmethod
    def compute(cls, module: GraphModule, info: ModelInfo, options: FidelityOptions) -> Reference:
        """Tokenize the corpus sample, draw random ids of the same shapes, run the PyTorch model on both."""
        import torch

        texts = corpus_texts(options.corpus, options.texts)
        real = text_inputs(info, texts, options.batch_size, options.max_length)
        kinds = (real, random_inputs(real, info.vocab_size, info.pad_id))
        with torch.inference_mode():
            outputs = tuple(
                [module(torch.from_numpy(ids), torch.from_numpy(mask)).numpy() for ids, mask in kind.batches]
                for kind in kinds
            )
        return cls(info.task, kinds, outputs)

    @property
    def texts(self) -> int:
        """How many texts (rows of real text) each variant sees."""
        return sum(len(ids) for ids, _ in self.inputs[0].batches)


@dataclass(frozen=True)
class VariantResult:
    """A variant's metrics, or why it was not run."""

    precision: str
    size_bytes: int
    metrics: tuple[OutputMetrics, ...] = ()
    skipped: str = ""

    def problems(self, gate: Gate) -> list[str]:
        """Every missed threshold, prefixed with the precision."""
        return [f"{self.precision}: {p}" for m in self.metrics for p in m.problems(gate)]


def evaluate(reference: Reference, variant: Variant) -> VariantResult:
    """Run `variant` with ONNX Runtime's CPU provider on the reference's inputs and compare every output."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(variant.path), providers=["CPUExecutionProvider"])
    metrics = []
    for inputs, expected in zip(reference.inputs, reference.outputs, strict=True):
        got = [session.run(None, {"input_ids": ids, "attention_mask": mask})[0] for ids, mask in inputs.batches]
        metrics += compare(reference.task, inputs.kind, expected, got, inputs.masks)
    return VariantResult(variant.recipe.name, variant.size_bytes, tuple(metrics))


def torch_device() -> str:
    """Where the python-torch gate runs: the build host's GPU when it has one (real FP16/BF16 arithmetic)."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def evaluate_torch(reference: Reference, module: GraphModule, precision: str, kernels: str) -> VariantResult:
    """The python-torch backend's own forward (precision and kernels, as served) against the reference.

    Runs on `torch_device()`: its FP16 and BF16 arithmetic, not a CPU emulation of it, is what the gate judges.
    """
    import copy

    import torch

    from builder.common.backend_files import backend_module

    torch_model = backend_module("torch_model")
    device = torch_device()
    model = torch_model.apply_precision(copy.deepcopy(module.model).eval(), precision).to(device)  # type: ignore[attr-defined]
    forward = torch_model.build_forward(model, reference.task.name, kernels)  # type: ignore[attr-defined]
    size = sum(p.numel() * p.element_size() for p in model.parameters())
    metrics = []
    with torch.inference_mode():
        for inputs, expected in zip(reference.inputs, reference.outputs, strict=True):
            got = [
                forward(torch.from_numpy(ids).to(device), torch.from_numpy(mask).to(device)).cpu().numpy()
                for ids, mask in inputs.batches
            ]
            metrics += compare(reference.task, inputs.kind, expected, got, inputs.masks)
    return VariantResult(f"{precision} ({kernels}, {device})", size, tuple(metrics))


# ---------------------------------------------------------------------------------------------------------
# The report


@dataclass(frozen=True)
class FidelityReport:
    """Every variant's result against one gate; failures are collected before one error is raised."""

    model: str
    task: str
    texts: int
    gate: Gate
    variants: tuple[VariantResult, ...]

    def problems(self) -> list[str]:
        """Every missed threshold of every variant."""
        return [p for v in self.variants for p in v.problems(self.gate)]

    @property
    def passed(self) -> bool:
        """True when no evaluated variant misses the gate."""
        return not self.problems()

    def failed(self) -> list[str]:
        """Precisions that miss the gate."""
        return [v.precision for v in self.variants if v.problems(self.gate)]

    def raise_on_failure(self) -> None:
        """Raise FidelityError listing every failing variant and metric with its numbers."""
        if self.passed:
            return
        raise FidelityError(
            f"the fidelity gate refuses {', '.join(self.failed())} of {self.model} "
            f"(min cosine {self.gate.min_cosine}, NaN/Inf rate ≤ {self.gate.max_nonfinite_rate}):\n  "
            + "\n  ".join(self.problems()),
            hint="choose another precision (hybrid keeps softmax and layer norm in FP32), "
            "or lower the bar knowingly (--min-cosine)",
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, with the verdict."""
        return {**asdict(self), "passed": self.passed, "failed": self.failed(), "problems": self.problems()}


def _cell(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def markdown_table(report: FidelityReport) -> str:
    """One row per variant, input kind and output: cosines, difference, NaN/Inf rate, agreement, verdict."""
    lines = [
        "| precision | MB | inputs | output | rows | min cos | mean cos | max abs diff | NaN/Inf | agreement | gate |",
        "|---|---:|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for v in report.variants:
        size = f"{v.size_bytes / 1e6:.1f}"
        if v.skipped:
            lines.append(f"| {v.precision} | {size} | - | - | - | - | - | - | - | - | skipped: {v.skipped} |")
        for m in v.metrics:
            verdict = "FAIL" if m.problems(report.gate) else "ok"
            agreement = f"{m.agreement:.4f} ({m.agreement_kind})" if m.agreement is not None else "-"
            lines.append(
                f"| {v.precision} | {size} | {m.inputs} | {m.output} | {m.rows} | {m.min_cosine:.7f} | "
                f"{m.mean_cosine:.7f} | {m.max_abs_diff:.4g} | {m.nonfinite_rate:.3g} | {agreement} | {verdict} |"
            )
    return "\n".join(lines)


def markdown_report(report: FidelityReport) -> str:
    """The table with what was measured, against which bar, and the CPU caveat."""
    g = report.gate
    verdict = "all evaluated variants pass" if report.passed else f"FAILED: {', '.join(report.failed())}"
    return (
        f"# Fidelity of {report.model} ({report.task})\n\n"
        f"Each variant runs on ONNX Runtime's CPU provider against PyTorch FP32, on {report.texts} real texts and "
        "on random token ids of the same shapes, valid tokens only. Gate: min cosine ≥ "
        f"{g.min_cosine}, NaN/Inf rate ≤ {g.max_nonfinite_rate}"
        + (f", max abs diff ≤ {g.max_abs_diff}" if g.max_abs_diff is not None else "")
        + (f", agreement ≥ {g.min_agreement}" if g.min_agreement is not None else "")
        + f". Verdict: {verdict}.\n\n"
        + markdown_table(report)
        + "\n\nCPU kernels may compute FP16 in FP32 internally, so this understates FP16 error on a GPU.\n"
    )


def write_reports(report: FidelityReport, folder: Path) -> tuple[Path, Path]:
    """Write fidelity.json and fidelity.md into `folder`; returns their paths."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        json_path, md_path = folder / REPORT_JSON, folder / REPORT_MD
        json_path.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
        md_path.write_text(markdown_report(report))
    except OSError as exc:
        raise OutputError(f"cannot write the fidelity report to {folder}: {exc.strerror}") from exc
    return json_path, md_path
