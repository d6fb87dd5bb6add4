"""The study's one-page report: Markdown and one self-contained HTML page (charts as base64 PNG).

Everything in it is computed from the store's records (client.experiments.study_tables): the seed's figures beside
this run's, the seed's tables, the five charts (speedup, throughput scaling, latency, memory, the
accuracy/speed frontier) as rows of client.report.charts, and a few lines of "what this run shows" written
from the same numbers. `tritonbench study CONFIG --report-only` writes it again from the store alone.
"""

from __future__ import annotations

import base64
import csv
import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from builder.common.errors import OutputError
from client.experiments.study_config import ReportSettings
from client.experiments.study_records import StudyRecord
from client.experiments.study_tables import (
    HIDDEN,
    PAPER,
    RANDOM,
    REAL,
    StudyData,
    Table,
    best_within,
    change,
    chart_rows,
    cosine,
    fraction,
    largest_point,
    ms,
    nan_rate,
    rate,
    ratio,
    served_mb,
    shape,
    study_tables,
    worst,
)
from client.report.charts import Chart, ChartSpec, draw

_BATCH = "batch size (texts per call)"
STUDY_CHARTS = (
    ChartSpec("speedup", "Speedup over the CPU FP32 baseline (in process, length {ref})", "line", x="batch_size",
              y="speedup_cpu", xlabel=_BATCH, ylabel="speedup (CPU p50 ÷ p50)", series=("model", "precision"),
              where={"kind": "inprocess", "at_ref": True}, xticks=True, empty="no CPU baseline at length {ref}"),
    ChartSpec("throughput", "Throughput scaling with batch size (length {ref})", "line", x="batch_size",
              y="seq_per_s", xlabel=_BATCH, ylabel="sequences/s (one caller)", series=("model", "variant"),
              where={"kind": ("inprocess", "cpu"), "at_ref": True}, xticks=True),
    ChartSpec("latency", "p50 latency per call against sequence length (batch {first_batch})", "line", x="seq_len",
              y="p50_ms", xlabel="sequence length (tokens)", ylabel="p50 latency (ms)", series=("model", "variant"),
              where={"kind": ("inprocess", "cpu"), "at_b1": True}, xticks=True),
    ChartSpec("memory", "Memory per variant", "bar", x="label", y="mb", xlabel="variant", ylabel="MB",
              series=("measure",), where={"kind": "memory"}),
    ChartSpec("tradeoff", "Accuracy against speed: worst per-token error and speedup over FP32", "scatter",
              x="speedup", y="error", xlabel="speedup over FP32 (geometric mean over shapes)",
              ylabel="1 − worst per-token cosine", series=("model",), where={"kind": "tradeoff"},
              annotate="precision", frontier=True, baseline=1 - 0.9998,
              empty="needs fidelity and in-process points"),
)  # fmt: skip


@dataclass(frozen=True)
class StudyReport:
    """What was written, and which charts were left out and why."""

    folder: Path
    markdown: Path
    html: Path
    csv: Path
    charts: list[Chart] = field(default_factory=list)


# ------------------------------------------------------------------------------------- the seed's


def _max_speedup(data: StudyData) -> str:
    found = [
        (x, r.model, r.precision, r.batch_size, r.seq_len)
        for r in data.of("inprocess")
        if (x := data.speedup_cpu(r.model, r.precision, r.batch_size, r.seq_len))
    ]
    if not found:
        return "–"
    x, model, precision, batch, seq = max(found)
    return f"{ratio(x)} ({model} {precision}, {shape(batch, seq)})"


def _single_sample(data: StudyData, settings: ReportSettings) -> str:
    seq, parts = settings.reference_seq_len, []
    for model in data.models:
        found = [(r.latency.p50_ms, r.precision) for r in data.of("inprocess", model) if r.batch_size == 1
                 and r.seq_len == seq and r.latency]  # fmt: skip
        served = [r.latency.p50_ms for r in data.of("served", model) if r.batch_size == 1 and r.seq_len == seq
                  and r.concurrency == 1 and r.latency]  # fmt: skip
        if found:
            best = min(found)
            parts.append(f"{model} {ms(best[0])} ms in process ({best[1]})"
                         + (f", {ms(min(served))} ms served" if served else ""))  # fmt: skip
    return "; ".join(parts) or "–"


def _fp16_range(data: StudyData) -> str:
    parts = []
    for model in data.models:
        found = [x for s in data.shapes("inprocess", model) if (x := data.speedup_fp32(model, "fp16", *s))]
        if found:
            parts.append(f"{model} {ratio(min(found))}–{ratio(max(found))}")
    return "; ".join(parts) or "–"


def _memory_cut(data: StudyData) -> str:
    parts = []
    for model in data.models:
        found = []
        weights = [data.get("memory", model, p) for p in ("fp16", "fp32")]
        if all(w and w.memory for w in weights):
            found.append(f"{change(*(w.memory.weights_mb for w in weights if w and w.memory))} weights")
        mine, base = largest_point(data, model, "fp16"), largest_point(data, model, "fp32")
        if mine and base:
            peak = change(mine.peak_allocated_mb, base.peak_allocated_mb)
            found.append(f"{peak} peak in process ({shape(mine.batch_size, mine.seq_len)})")
        served = change(served_mb(data, model, "fp16"), served_mb(data, model, "fp32"))
        if served != "–":
            found.append(f"{served} served GPU memory")
        if found:
            parts.append(f"{model} {', '.join(found)}")
    return "; ".join(parts) or "–"


def _hybrid(data: StudyData) -> str:
    parts = []
    for model in data.models:
        cos = [worst(data, model, "hybrid", HIDDEN, i, "min_cosine") for i in (REAL, RANDOM)]
        nan = [nan_rate(data, model, "hybrid", i) for i in (REAL, RANDOM)]
        if cos[0] is not None:
            known = [n for n in nan if n is not None]
            rates = fraction(max(known)) if known else "–"
            parts.append(f"{model} {cosine(cos[0])} real / {cosine(cos[1])} random, NaN/Inf {rates}")
    return "; ".join(parts) or "–"


def _nan_gap(data: StudyData) -> str:
    gaps = []
    for model in data.models:
        for precision in data.precisions:
            real, rand = nan_rate(data, model, precision, REAL), nan_rate(data, model, precision, RANDOM)
            if real and rand:
                gaps.append(f"{model} {precision} {ratio(real / rand)}")
            elif real and not rand:
                gaps.append(f"{model} {precision}: NaN on real text only ({fraction(real)})")
    if gaps:
        return "; ".join(gaps)
    measured = bool(data.of("fidelity"))
    return "no NaN/Inf on either input kind" if measured else "–"


def seed_table(data: StudyData, settings: ReportSettings) -> Table:
    """The seed's published figures beside this run's."""
    rows = (
        ("speedup over the CPU baseline", "up to 64.4×", _max_speedup(data)),
        (f"single-sample latency (batch 1, length {settings.reference_seq_len})", "sub-10 ms",
         _single_sample(data, settings)),
        ("FP16 over FP32", "1.84–2.00× (A100)", _fp16_range(data)),
        ("memory, FP16 against FP32", "−63 %", _memory_cut(data)),
        ("hybrid fidelity", "cosine ≥ 0.9998, 0 % NaN", _hybrid(data)),
        ("NaN rate, real text ÷ random ids", "up to 6× (full FP16)", _nan_gap(data)),
    )  # fmt: skip
    return Table("seed", "The seed's published figures and this run's", ("", PAPER, "this run"), rows, left=3)


# -------------------------------------------------------------------------------------- findings


def _budget_lines(data: StudyData, settings: ReportSettings) -> list[str]:
    lines = []
    for budget in settings.latency_budgets_ms:
        picks = []
        for model in data.models:
            best = best_within(data, model, budget, settings.reference_seq_len)
            if best:
                picks.append(f"{model} {best.precision} at batch {best.batch_size} ({rate(best.throughput_seq_per_s)}"
                             " seq/s)")  # fmt: skip
        lines.append(f"p99 ≤ {budget:g} ms: " + ("; ".join(picks) if picks else "nothing fits"))
    return lines


def _fp16_line(data: StudyData, model: str, pays_at: float) -> str | None:
    found = {s: x for s in data.shapes("inprocess", model) if (x := data.speedup_fp32(model, "fp16", *s))}
    if not found:
        return None
    lagging = sorted((b * s, (b, s), x) for (b, s), x in found.items() if x < pays_at)
    if not lagging:
        return f"{model}: FP16 pays at every shape ({ratio(min(found.values()))} at least)"
    if len(lagging) == len(found):
        return f"{model}: FP16 never reaches {pays_at:g}× over FP32 here (at most {ratio(max(found.values()))})"
    limit = lagging[-1][0]
    above = [x for (b, s), x in found.items() if b * s > limit]
    _tokens, (b, s), x = lagging[0]
    tail = f"; above {limit} tokens per call it gives {ratio(min(above))}–{ratio(max(above))}" if above else ""
    return (f"{model}: FP16 gains less than {pays_at:g}× at {len(lagging)} of {len(found)} shapes, all at ≤ {limit} "
            f"tokens per call (e.g. {shape(b, s)}: {ratio(x)}){tail}")  # fmt: skip


def findings(data: StudyData, settings: ReportSettings) -> list[str]:
    """What this run shows, in a few lines written from its numbers."""
    lines = [f"Speedup over the CPU FP32 baseline: {_max_speedup(data)}; the paper reports up to 64.4×."]
    lines += [f"Best in process within {line}" for line in _budget_lines(data, settings)]
    lines += [line for m in data.models if (line := _fp16_line(data, m, settings.fp16_pays_at))]
    gap = _nan_gap(data)
    if gap == "no NaN/Inf on either input kind":
        lines.append("No NaN/Inf on real text or on random ids, at any length, for any variant: random inputs did "
                     "not understate NaN here (the paper saw up to 6× for full FP16).")  # fmt: skip
    elif gap != "–":
        lines.append(f"NaN/Inf, real text against random ids: {gap} (the paper: random inputs understate it up to 6×).")
    lines += _understated(data)
    memory = _memory_cut(data)
    if memory != "–":
        lines.append(f"FP16 memory against FP32: {memory}; the paper reports −63 %.")
    return lines


def _understated(data: StudyData) -> list[str]:
    """Whether random ids gave a rosier worst cosine than real text."""
    pairs = [
        (model, precision, real, rand)
        for model in data.models
        for precision in data.precisions
        if precision != "fp32"
        and (real := worst(data, model, precision, HIDDEN, REAL, "min_cosine")) is not None
        and (rand := worst(data, model, precision, HIDDEN, RANDOM, "min_cosine")) is not None
    ]
    if not pairs:
        return []
    rosier = [f"{m} {p}" for m, p, real, rand in pairs if rand > real]
    return [f"Random ids gave a higher worst per-token cosine than real text for {len(rosier)} of {len(pairs)} "
            f"reduced-precision variants{': ' + ', '.join(rosier) if rosier else ''}."]  # fmt: skip


# ----------------------------------------------------------------------------------------- writing


def _summary(records: Sequence[StudyRecord], planned: int | None) -> str:
    kinds: dict[str, int] = {}
    for r in records:
        kinds[r.kind] = kinds.get(r.kind, 0) + 1
    stamps = sorted(r.timestamp for r in records if r.timestamp)
    devices = sorted({r.device for r in records})
    versions = sorted({f"{k} {v}" for r in records for k, v in r.versions.items()})
    done = f"{len(records)} points" + (f" of {planned} planned" if planned is not None else "")
    counted = ", ".join(f"{n} {k}" for k, n in kinds.items())
    when = f", {stamps[0]} to {stamps[-1]}" if stamps else ""
    return (f"{done} ({counted}){when}. Devices: {'; '.join(devices)}. Hosts: "
            f"{', '.join(sorted({r.host for r in records}))}. Versions: {', '.join(versions)}.")  # fmt: skip


METHOD = (
    "How it was measured: each variant is a repository built by make-repo (python-torch engine, one folder "
    "per precision, one repository for all). In process, the engine's own Runner runs on host arrays (ids in, "
    "outputs out, synchronised): CUDA graphs per batch bucket and length on a GPU, eager on the CPU; "
    "latency per call, throughput = batch ÷ mean call. The CPU baseline is the fp32 variant's engine on the "
    "CPU. FP32 is strict FP32 on the GPU (TF32 off). Peak memory is one eager forward at the shape, before "
    "graphs exist. Served points go through tritonserver with texts of exactly the length. Fidelity compares "
    "each variant with PyTorch FP32 on the same device, on real text cut to the length and on random ids."
)


def _sections(tables: list[Table]) -> list[tuple[str, list[Table], list[str]]]:
    """(heading, tables, chart names) in reading order."""
    by_key = {t.key: t for t in tables}
    speedups = [t for t in tables if t.key.startswith("speedup-")]
    return [
        ("Speedup over the CPU baseline", speedups, ["speedup"]),
        ("Throughput and latency", [by_key["budgets"]], ["throughput", "latency"]),
        ("Reduced precision against FP32", [by_key["precision"]], []),
        ("Memory", [by_key["memory"]], ["memory"]),
        ("Fidelity: real text against random ids", [by_key["fidelity"]], ["tradeoff"]),
        ("Served", [by_key["served"]], []),
    ]


def _markdown(title: str, summary: str, lines: list[str], seed: Table, sections: list, charts: dict) -> str:
    parts = [f"# {title}\n", summary + "\n", "## What this run shows\n", "\n".join(f"- {x}" for x in lines) + "\n"]
    parts += ["## The seed's figures and this run's\n", seed.markdown()]
    for heading, tables, names in sections:
        parts.append(f"## {heading}\n")
        parts += [t.markdown() for t in tables]
        for name in names:
            chart = charts[name]
            parts.append(f"![{chart.title}](charts/{chart.path.name})\n" if chart.drawn else f"({chart.title}: "
                         f"{chart.reason})\n")  # fmt: skip
    parts += ["## Method\n", METHOD + "\n", "All points: [points.csv](points.csv).\n"]
    return "\n".join(parts)


_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1180px;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:.8em 0;font-size:13px}caption{text-align:left;font-weight:600;"
    "padding:.3em 0}th,td{border:1px solid #ccc;padding:3px 7px}td.r,th.r{text-align:right}"
    "td.l,th.l{text-align:left}img{max-width:100%}.note{font-size:12px;color:#555}"
)


def _html(title: str, summary: str, lines: list[str], seed: Table, sections: list, charts: dict) -> str:
    body = [f"<h1>{html.escape(title)}</h1>", f"<p>{html.escape(summary)}</p>", "<h2>What this run shows</h2>",
            "<ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in lines) + "</ul>",
            "<h2>The seed's figures and this run's</h2>", seed.html()]  # fmt: skip
    for heading, tables, names in sections:
        body.append(f"<h2>{html.escape(heading)}</h2>")
        body += [t.html() for t in tables]
        for name in names:
            chart = charts[name]
            if chart.drawn:
                data = base64.b64encode(chart.path.read_bytes()).decode()
                body.append(f'<img alt="{html.escape(chart.title)}" src="data:image/png;base64,{data}">')
            else:
                body.append(f'<p class="note">{html.escape(chart.title)}: {html.escape(chart.reason)}</p>')
    body += ["<h2>Method</h2>", f"<p>{html.escape(METHOD)}</p>"]
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{_STYLE}</style></head><body>{''.join(body)}</body></html>\n")  # fmt: skip


CSV_COLUMNS = ("kind", "model", "precision", "batch_size", "seq_len", "concurrency", "device", "p50_ms", "p90_ms",
               "p99_ms", "seq_per_s", "speedup_over_cpu", "speedup_over_fp32", "calls", "peak_allocated_mb",
               "served_gpu_mb", "timestamp")  # fmt: skip


def write_csv(data: StudyData, path: Path) -> Path:
    """One row per point: the numbers the tables are made from, with an in-process point's two speedups."""
    with path.open("w", newline="") as sink:
        writer = csv.writer(sink)
        writer.writerow(CSV_COLUMNS)
        for r in data.records:
            lat, inproc = r.latency, r.kind == "inprocess"
            over_cpu = data.speedup_cpu(r.model, r.precision, r.batch_size, r.seq_len) if inproc else None
            over_fp32 = data.speedup_fp32(r.model, r.precision, r.batch_size, r.seq_len) if inproc else None
            writer.writerow([r.kind, r.model, r.precision, r.batch_size, r.seq_len, r.concurrency, r.device,
                             lat and lat.p50_ms, lat and lat.p90_ms, lat and lat.p99_ms, r.throughput_seq_per_s,
                             over_cpu, over_fp32, r.calls, r.peak_allocated_mb, r.served_gpu_mb,
                             r.timestamp])  # fmt: skip
    return path


def write_study_report(
    records: Sequence[StudyRecord], folder: Path, settings: ReportSettings, name: str, planned: int | None = None
) -> StudyReport:
    """report.md, report.html (charts inside), charts/*.png and points.csv in `folder`, from `records` alone."""
    if not records:
        raise OutputError("the store holds no points yet", hint="run the study first (without --report-only)")
    data = StudyData(records)
    try:
        (folder / "charts").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"cannot write the report to {folder}: {exc.strerror}", hint="choose a writable --out"
        ) from exc
    rows = chart_rows(data, settings)
    first_batch = min((r.batch_size or 1 for r in data.of("inprocess")), default=1)
    context = {"ref": settings.reference_seq_len, "first_batch": first_batch}
    charts = {spec.name: draw(spec, rows, folder / "charts", context) for spec in STUDY_CHARTS}
    seed, *tables = report_tables(data, settings)
    lines, summary = findings(data, settings), _summary(records, planned)
    title = f"Study {name}: the first seed's experiment, reproduced"
    sections = _sections(tables)
    markdown, page = folder / "report.md", folder / "report.html"
    markdown.write_text(_markdown(title, summary, lines, seed, sections, charts))
    page.write_text(_html(title, summary, lines, seed, sections, charts))
    return StudyReport(folder, markdown, page, write_csv(data, folder / "points.csv"), list(charts.values()))


def report_tables(data: StudyData, settings: ReportSettings) -> list[Table]:
    """Every table the report prints: the seed's comparison, then the rest (what a test regenerates)."""
    return [seed_table(data, settings), *study_tables(data, settings)]
