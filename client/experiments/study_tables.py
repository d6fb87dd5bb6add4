"""The study's numbers, computed from its store only: the seed's tables and the rows its charts are drawn from.

Speedups are ratios of p50 latency per call at the same model, batch and length (above 1: faster); a
memory change is the variant's figure against FP32's. The seed paper's published figures appear as
reference rows, labelled as the paper's, never mixed into this run's numbers.
"""

from __future__ import annotations

import html
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from client.experiments.study_config import ReportSettings
from client.experiments.study_records import StudyRecord

PAPER = "paper (arXiv:2603.28708)"
PRECISION_ORDER = ("fp32", "fp16", "hybrid", "bf16")
HIDDEN, POOLED, LOGITS = "last_hidden_state", "EMBEDDING", "logits"
REAL, RANDOM = "real text", "random ids"
ERROR_FLOOR = 1e-9  # 1 − cosine is drawn on a log axis: an exact match sits at this floor


@dataclass(frozen=True)
class Table:
    """One table of the report, rendered alike to Markdown and HTML."""

    key: str
    title: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    left: int = 1  # leading columns aligned left (labels); the rest are numbers
    note: str = ""

    def markdown(self) -> str:
        """A Markdown table under a bold title, with its note."""
        align = ["---"] * self.left + ["---:"] * (len(self.header) - self.left)
        lines = [f"**{self.title}**", "", "| " + " | ".join(self.header) + " |", "|" + "|".join(align) + "|"]
        lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in self.rows]
        return "\n".join(lines + ([f"\n{self.note}"] if self.note else [])) + "\n"

    def html(self) -> str:
        """An HTML table with a caption and its note."""

        def cells(row: Sequence[str], tag: str) -> str:
            return "".join(
                f'<{tag} class="{"l" if i < self.left else "r"}">{html.escape(c)}</{tag}>' for i, c in enumerate(row)
            )

        body = "".join(f"<tr>{cells(row, 'td')}</tr>" for row in self.rows)
        note = f'<p class="note">{html.escape(self.note)}</p>' if self.note else ""
        return (
            f'<table id="{self.key}"><caption>{html.escape(self.title)}</caption>'
            f"<thead><tr>{cells(self.header, 'th')}</tr></thead><tbody>{body}</tbody></table>{note}"
        )


# ------------------------------------------------------------------------------------------ formats


def ratio(value: float | None) -> str:
    """1.84×, 64.4×; a dash when missing."""
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:.1f}×" if value >= 10 else f"{value:.2f}×"


def ms(value: float | None) -> str:
    """Milliseconds with three significant figures at least."""
    if value is None:
        return "–"
    return f"{value:.3f}" if value < 1 else f"{value:.2f}" if value < 100 else f"{value:,.0f}"


def mb(value: float | None) -> str:
    """Megabytes, whole."""
    return "–" if value is None else f"{value:,.0f}"


def rate(value: float | None) -> str:
    """Sequences per second, whole."""
    return "–" if value is None else f"{value:,.0f}"


def change(value: float | None, base: float | None) -> str:
    """−63 %: `value` against `base`."""
    if value is None or not base:
        return "–"
    return f"{(value / base - 1) * 100:+.0f} %".replace("-", "−")


def cosine(value: float | None) -> str:
    """Seven decimals: the gate's bar is 0.9998."""
    return "–" if value is None else f"{value:.7f}"


def fraction(value: float | None) -> str:
    """A rate such as NaN/Inf values per value: 0, or three significant figures."""
    return "–" if value is None else "0" if value == 0 else f"{value:.3g}"


def shape(batch: int | None, seq: int | None) -> str:
    """b8·s128."""
    return f"b{batch}·s{seq}"


# --------------------------------------------------------------------------------------------- data


def _ordered_precisions(values: Iterable[str]) -> list[str]:
    found = set(values)
    return [p for p in PRECISION_ORDER if p in found] + sorted(found - set(PRECISION_ORDER))


class StudyData:
    """The store's records indexed by what the tables compare."""

    def __init__(self, records: Sequence[StudyRecord]) -> None:
        self.records = list(records)
        self.models = list(dict.fromkeys(r.model for r in self.records))
        self.precisions = _ordered_precisions(r.precision for r in self.records if r.kind != "cpu")
        self.by_key: dict[tuple[Any, ...], StudyRecord] = {}
        for r in self.records:
            self.by_key[(r.kind, r.model, r.precision, r.batch_size, r.seq_len, r.concurrency)] = r

    def get(self, kind: str, model: str, precision: str, batch: int | None = None, seq: int | None = None,
            concurrency: int | None = None) -> StudyRecord | None:  # fmt: skip
        """The record of one point, if it was measured."""
        return self.by_key.get((kind, model, precision, batch, seq, concurrency))

    def of(self, kind: str, model: str | None = None, precision: str | None = None) -> list[StudyRecord]:
        """Records of one kind (and model, precision), in store order."""
        return [
            r for r in self.records if r.kind == kind and model in (None, r.model) and precision in (None, r.precision)
        ]

    def p50(self, kind: str, model: str, precision: str, batch: int | None, seq: int | None) -> float | None:
        """p50 latency of one point in ms."""
        record = self.get(kind, model, precision, batch, seq)
        return record.latency.p50_ms if record and record.latency else None

    def speedup_cpu(self, model: str, precision: str, batch: int | None, seq: int | None) -> float | None:
        """CPU FP32 p50 ÷ in-process p50 at the same shape."""
        cpu, gpu = self.p50("cpu", model, "fp32", batch, seq), self.p50("inprocess", model, precision, batch, seq)
        return cpu / gpu if cpu and gpu else None

    def speedup_fp32(self, model: str, precision: str, batch: int | None, seq: int | None) -> float | None:
        """In-process FP32 p50 ÷ this precision's p50 at the same shape."""
        base, mine = (
            self.p50("inprocess", model, "fp32", batch, seq),
            self.p50("inprocess", model, precision, batch, seq),
        )
        return base / mine if base and mine else None

    def shapes(self, kind: str, model: str) -> list[tuple[int, int]]:
        """(batch, length) of a model's points of `kind`, by length then batch."""
        found = {(r.batch_size, r.seq_len) for r in self.of(kind, model) if r.batch_size and r.seq_len}
        return sorted(found, key=lambda bs: (bs[1], bs[0]))

    def metric(self, model: str, precision: str, output: str, inputs: str) -> list[tuple[int, Any]]:
        """(length, OutputMetrics) of one output on one input kind, over the variant's fidelity points."""
        return [
            (r.seq_len or 0, m)
            for r in self.of("fidelity", model, precision)
            for m in r.fidelity
            if m.output == output and m.inputs == inputs
        ]


# ------------------------------------------------------------------------------------------- tables


def speedup_tables(data: StudyData) -> list[Table]:
    """Per model: the best precision's speedup over the CPU FP32 baseline at every batch and length."""
    tables = []
    for model in data.models:
        shapes = [s for s in data.shapes("inprocess", model) if data.p50("cpu", model, "fp32", *s)]
        if not shapes:
            continue
        batches, lengths = sorted({b for b, _ in shapes}), sorted({s for _, s in shapes})
        rows = []
        for b in batches:
            cells = []
            for s in lengths:
                found = [(data.speedup_cpu(model, p, b, s), p) for p in data.precisions]
                best = max(((x, p) for x, p in found if x), default=None)
                cells.append(f"{ratio(best[0])} {best[1]}" if best else "–")
            rows.append((f"batch {b}", *cells))
        tables.append(
            Table(
                f"speedup-{model}",
                f"{model}: speedup over the CPU FP32 baseline (CPU p50 ÷ in-process p50; the best precision)",
                ("", *(f"length {s}" for s in lengths)),
                tuple(rows),
            )
        )
    return tables


def precision_table(data: StudyData, settings: ReportSettings) -> Table:
    """Each reduced precision against FP32 over every in-process shape, with the paper's FP16 range."""
    rows = []
    for model in data.models:
        shapes = data.shapes("inprocess", model)
        small, large = (min(b for b, _ in shapes), max(b for b, _ in shapes)) if shapes else (0, 0)
        for precision in (p for p in data.precisions if p != "fp32"):
            found = {s: data.speedup_fp32(model, precision, *s) for s in shapes}
            ratios = [x for x in found.values() if x]
            if not ratios:
                continue
            below = sum(x < settings.fp16_pays_at for x in ratios)
            ref = settings.reference_seq_len
            rows.append((model, precision, str(len(ratios)), ratio(min(ratios)), ratio(statistics.median(ratios)),
                         ratio(max(ratios)), ratio(found.get((small, ref))), ratio(found.get((large, ref))),
                         f"{below} of {len(ratios)}"))  # fmt: skip
    rows.append((PAPER, "fp16 (A100)", "–", "1.84×", "–", "2.00×", "–", "–", "–"))
    ref = settings.reference_seq_len
    return Table(
        "precision",
        "Reduced precision against FP32, in process (FP32 p50 ÷ p50 at the same shape)",
        (
            "model",
            "precision",
            "shapes",
            "min",
            "median",
            "max",
            f"smallest batch, s{ref}",
            f"largest batch, s{ref}",
            f"below {settings.fp16_pays_at:g}×",
        ),
        tuple(rows),
        left=2,
    )


def largest_point(data: StudyData, model: str, precision: str) -> StudyRecord | None:
    """The in-process point with the most tokens per call that has a peak memory."""
    found = [r for r in data.of("inprocess", model, precision) if r.peak_allocated_mb is not None]
    return max(found, key=lambda r: ((r.batch_size or 0) * (r.seq_len or 0), r.seq_len or 0), default=None)


def served_mb(data: StudyData, model: str, precision: str) -> float | None:
    """The most GPU memory NVML saw the variant's model instances hold while served."""
    values = [r.served_gpu_mb for r in data.of("served", model, precision) if r.served_gpu_mb is not None]
    return max(values) if values else None


def memory_table(data: StudyData) -> Table:
    """Weights, peak in process at the largest shape, served GPU memory and disk, each against FP32."""
    rows = []
    for model in data.models:
        base_mem = data.get("memory", model, "fp32")
        base_peak, base_served = largest_point(data, model, "fp32"), served_mb(data, model, "fp32")
        for precision in data.precisions:
            mem, peak, served = data.get("memory", model, precision), largest_point(data, model, precision), None
            served = served_mb(data, model, precision)
            if mem is None and peak is None and served is None:
                continue
            weights = mem.memory.weights_mb if mem and mem.memory else None
            base_weights = base_mem.memory.weights_mb if base_mem and base_mem.memory else None
            peak_mb, base_peak_mb = (r.peak_allocated_mb if r else None for r in (peak, base_peak))
            rows.append((model, precision, mb(weights), change(weights, base_weights),
                         f"{mb(peak_mb)} ({shape(peak.batch_size, peak.seq_len)})" if peak else "–",
                         change(peak_mb, base_peak_mb), mb(served), change(served, base_served),
                         mb(mem.memory.disk_mb) if mem and mem.memory else "–"))  # fmt: skip
    rows.append((PAPER, "fp16", "–", "–", "–", "−63 %", "–", "–", "–"))
    return Table(
        "memory",
        "Memory (MB): weights as held, CUDA peak of one forward at the largest shape, served GPU memory (NVML)",
        ("model", "precision", "weights", "vs fp32", "peak in process", "vs fp32", "served GPU", "vs fp32", "on disk"),
        tuple(rows),
        left=2,
        note="The paper's 63 % does not say which memory it measured. python-torch keeps FP32 weights on disk.",
    )


def worst(data: StudyData, model: str, precision: str, output: str, inputs: str, attr: str) -> float | None:
    """The worst value of one metric over lengths: the lowest cosine or agreement, the highest NaN/Inf rate."""
    values = [getattr(m, attr) for _, m in data.metric(model, precision, output, inputs)]
    values = [v for v in values if v is not None]
    if not values:
        return None
    return max(values) if attr == "nonfinite_rate" else min(values)


def nan_rate(data: StudyData, model: str, precision: str, inputs: str) -> float | None:
    """The largest NaN/Inf rate of any output at any length on one kind of input."""
    rates = [worst(data, model, precision, o, inputs, "nonfinite_rate") for o in (HIDDEN, POOLED, LOGITS)]
    known = [r for r in rates if r is not None]
    return max(known) if known else None


def task_output(data: StudyData, model: str) -> str:
    """The output whose agreement is the task's: logits (label, next token), else the pooled embedding."""
    has_logits = any(m.output == LOGITS for r in data.of("fidelity", model) for m in r.fidelity)
    return LOGITS if has_logits else POOLED


def fidelity_table(data: StudyData) -> Table:
    """Worst case over lengths of each variant against FP32, real text beside random ids."""
    rows = []
    for model in data.models:
        task = task_output(data, model)
        for precision in data.precisions:
            if not data.of("fidelity", model, precision):
                continue
            kind = next((m.agreement_kind for _, m in data.metric(model, precision, task, REAL)), "")
            cells = [
                cosine(worst(data, model, precision, output, inputs, "min_cosine"))
                for output in (HIDDEN, POOLED)
                for inputs in (REAL, RANDOM)
            ]
            agree = [worst(data, model, precision, task, i, "agreement") for i in (REAL, RANDOM)]
            rows.append((model, precision, *cells, *(f"{a:.4f}" if a is not None else "–" for a in agree), kind,
                         fraction(nan_rate(data, model, precision, REAL)),
                         fraction(nan_rate(data, model, precision, RANDOM))))  # fmt: skip
    rows.append((PAPER, "hybrid", "≥ 0.9998", "–", "–", "–", "–", "–", "–", "0", "–"))
    return Table(
        "fidelity",
        "Fidelity against PyTorch FP32, worst over lengths: real text and random ids of the same shapes",
        (
            "model",
            "precision",
            "per-token min cos, real",
            "random",
            "pooled min cos, real",
            "random",
            "task agreement, real",
            "random",
            "agreement on",
            "NaN/Inf, real",
            "random",
        ),
        tuple(rows),
        left=2,
        note="The paper: random inputs understated full FP16's NaN rate by up to 6× (WikiText-2 against random).",
    )


def served_table(data: StudyData) -> Table:
    """Every served point: latency, throughput, against served FP32 and against the same shape in process."""
    rows = []
    for r in data.of("served"):
        assert r.latency is not None and r.throughput_seq_per_s is not None
        base = data.get("served", r.model, "fp32", r.batch_size, r.seq_len, r.concurrency)
        inproc = data.get("inprocess", r.model, r.precision, r.batch_size, r.seq_len)
        over_fp32 = r.throughput_seq_per_s / base.throughput_seq_per_s if base and base.throughput_seq_per_s else None
        kept = r.throughput_seq_per_s / inproc.throughput_seq_per_s if inproc and inproc.throughput_seq_per_s else None
        triton_mb = r.served.gpu.get("memory_used_mb") if r.served else None
        rows.append((r.model, r.precision, str(r.batch_size), str(r.seq_len), str(r.concurrency), ms(r.latency.p50_ms),
                     ms(r.latency.p99_ms), rate(r.throughput_seq_per_s), ratio(over_fp32), ratio(kept),
                     mb(r.served_gpu_mb), mb(triton_mb)))  # fmt: skip
    return Table(
        "served",
        "Served through tritonserver (texts of exactly the length, over the network path)",
        (
            "model",
            "precision",
            "batch",
            "length",
            "concurrency",
            "p50 ms",
            "p99 ms",
            "seq/s",
            "× served fp32",
            "÷ in process",
            "variant GPU MB",
            "GPU MB in use",
        ),
        tuple(rows),
        left=2,
        note="÷ in process: served seq/s over the in-process Runner's at the same shape (one caller there).",
    )


def best_within(data: StudyData, model: str, budget_ms: float, seq: int) -> StudyRecord | None:
    """The in-process point at length `seq` with the most throughput whose p99 fits the budget."""
    fitting = [
        r
        for r in data.of("inprocess", model)
        if r.seq_len == seq and r.latency and r.latency.p99_ms <= budget_ms and r.throughput_seq_per_s
    ]
    return max(fitting, key=lambda r: r.throughput_seq_per_s or 0.0, default=None)


def budget_table(data: StudyData, settings: ReportSettings) -> Table:
    """The best configuration per latency budget, in process, at the reference length."""
    rows = []
    seq = settings.reference_seq_len
    for model in data.models:
        for budget in settings.latency_budgets_ms:
            best = best_within(data, model, budget, seq)
            if best is None or best.latency is None:
                rows.append((model, f"{budget:g}", "none fits", "–", "–"))
                continue
            rows.append((model, f"{budget:g}", f"{best.precision}, batch {best.batch_size}",
                         rate(best.throughput_seq_per_s), ms(best.latency.p99_ms)))  # fmt: skip
    return Table(
        "budgets",
        f"Best configuration per p99 latency budget, in process, length {seq}",
        ("model", "p99 budget ms", "best", "seq/s", "p99 ms"),
        tuple(rows),
        left=3,
    )


def study_tables(data: StudyData, settings: ReportSettings) -> list[Table]:
    """Every table of the report, in reading order (the seed's comparison first: study_report adds it)."""
    return [
        *speedup_tables(data),
        budget_table(data, settings),
        precision_table(data, settings),
        memory_table(data),
        fidelity_table(data),
        served_table(data),
    ]


# ------------------------------------------------------------------------------------- chart rows


def geometric_mean(values: Sequence[float]) -> float:
    """The mean of ratios."""
    return math.exp(sum(math.log(v) for v in values) / len(values))


def chart_rows(data: StudyData, settings: ReportSettings) -> list[dict[str, Any]]:
    """Flat rows the study's charts (client.experiments.study_report.STUDY_CHARTS) select from."""
    rows: list[dict[str, Any]] = []
    ref, first_batch = settings.reference_seq_len, min((r.batch_size or 1 for r in data.of("inprocess")), default=1)
    for r in data.records:
        if r.kind in ("inprocess", "cpu") and r.latency:
            rows.append({
                "kind": r.kind, "model": r.model, "precision": r.precision,
                "variant": r.precision if r.kind == "inprocess" else "cpu fp32",
                "batch_size": r.batch_size, "seq_len": r.seq_len, "p50_ms": r.latency.p50_ms,
                "seq_per_s": r.throughput_seq_per_s, "at_ref": r.seq_len == ref, "at_b1": r.batch_size == first_batch,
                "speedup_cpu": data.speedup_cpu(r.model, r.precision, r.batch_size, r.seq_len)
                if r.kind == "inprocess" else None,
            })  # fmt: skip
    for model in data.models:
        for precision in data.precisions:
            rows += _memory_rows(data, model, precision)
            rows += _tradeoff_rows(data, model, precision)
    return rows


def _memory_rows(data: StudyData, model: str, precision: str) -> list[dict[str, Any]]:
    mem, peak = data.get("memory", model, precision), largest_point(data, model, precision)
    measures = {
        "weights": mem.memory.weights_mb if mem and mem.memory else None,
        "peak in process, largest shape": peak.peak_allocated_mb if peak else None,
        "served GPU (NVML)": served_mb(data, model, precision),
    }
    return [
        {"kind": "memory", "label": f"{model} {precision}", "measure": k, "mb": v}
        for k, v in measures.items()
        if v is not None
    ]


def _tradeoff_rows(data: StudyData, model: str, precision: str) -> list[dict[str, Any]]:
    speedups = [x for s in data.shapes("inprocess", model) if (x := data.speedup_fp32(model, precision, *s))]
    cosines = [worst(data, model, precision, HIDDEN, i, "min_cosine") for i in (REAL, RANDOM)]
    known = [c for c in cosines if c is not None]
    if not speedups or not known:
        return []
    error = max(1.0 - min(known), ERROR_FLOOR)
    return [{"kind": "tradeoff", "model": model, "precision": precision, "speedup": geometric_mean(speedups),
             "error": error}]  # fmt: skip
