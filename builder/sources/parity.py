"""Parity of an ONNX graph with its PyTorch source, on valid tokens, at shapes other than the trace's."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from builder.common.errors import ParityError

if TYPE_CHECKING:
    from builder.sources.source import ModelInfo
    from builder.sources.tasks import GraphModule


def parity_shapes(max_length: int) -> list[tuple[int, int]]:
    """(batch, length) pairs to check: none equals the trace shape, lengths capped at the model maximum."""
    return [(1, min(7, max_length)), (3, min(37, max_length)), (4, min(96, max_length)), (2, min(5, max_length))]


@dataclass
class ShapeResult:
    """The comparison at one shape."""

    batch: int
    seq: int
    max_abs_diff: float
    nan_count: int
    passed: bool


@dataclass
class ParityReport:
    """Every shape's comparison; failures are collected before one error is raised."""

    atol: float
    results: list[ShapeResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when every shape passed."""
        return all(r.passed for r in self.results)

    @property
    def worst(self) -> float:
        """The largest max-abs-diff over all shapes."""
        return max((r.max_abs_diff for r in self.results), default=0.0)

    def summary(self) -> str:
        """One line per shape, for logs and errors."""
        return "\n".join(
            f"  batch {r.batch} × seq {r.seq}: max abs diff {r.max_abs_diff:.3g}"
            f"{f', {r.nan_count} NaN' if r.nan_count else ''} {'ok' if r.passed else 'FAIL'}"
            for r in self.results
        )

    def raise_on_failure(self) -> None:
        """Raise ParityError listing every failing shape against the tolerance."""
        if not self.passed:
            raise ParityError(
                f"exported ONNX disagrees with PyTorch (tolerance {self.atol:g}, worst {self.worst:.3g}):\n"
                + self.summary(),
                hint="the export is wrong; try another opset or transformers version, or report the model",
            )


def compare(
    reference: np.ndarray, candidate: np.ndarray, valid: np.ndarray | None, atol: float, batch: int, seq: int
) -> ShapeResult:
    """Compare two outputs, restricted to valid tokens when `valid` (a [batch, seq] mask) is given."""
    if valid is not None:
        reference, candidate = reference[valid], candidate[valid]
    nan_count = int(np.isnan(candidate).sum())
    diff = float(np.abs(reference - candidate).max()) if candidate.size else 0.0
    return ShapeResult(batch, seq, diff, nan_count, passed=nan_count == 0 and diff <= atol)


def check_parity(module: GraphModule, onnx_path: Path, info: ModelInfo, atol: float | None = None) -> ParityReport:
    """Run PyTorch and ONNX Runtime (CPU) on random valid inputs at several shapes and compare."""
    import onnxruntime as ort
    import torch

    from builder.sources.export import dummy_inputs

    tol = info.arch.atol if atol is None else atol
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    report = ParityReport(tol)
    for i, (batch, seq) in enumerate(parity_shapes(info.max_length)):
        inputs = dummy_inputs(batch, seq, info.vocab_size, info.pad_id, seed=100 + i)
        with torch.inference_mode():
            ref = module(**inputs).numpy()
        out = session.run(None, {k: v.numpy() for k, v in inputs.items()})[0]
        valid = inputs["attention_mask"].numpy().astype(bool) if info.task.graph_output_per_token else None
        report.results.append(compare(ref, out, valid, tol, batch, seq))
    return report
