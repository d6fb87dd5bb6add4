"""Reports from sweep records: a flat CSV, Markdown tables and PNG charts, written to one folder.

Every function is pure apart from the files it is asked to write, so a CLI, the demo or a notebook can
call them with records loaded from one or more results folders (``client.records.load_records``).
Throughput and latency charts are rows of client.report.charts (charts as data); the frontier, speedup and
memory charts, with their per-shape panels, bar labels and ticks, are still drawn here with its helpers.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from builder.common.errors import OutputError, UserError
from client.records import PointRecord
from client.report.charts import Chart, ChartSpec, draw
from client.report.charts import figure as _figure
from client.report.charts import legend as _legend
from client.report.charts import save as _save
from client.report.charts import scale as _scale

NESTED = ("server", "gpu", "versions", "settings")
SCALAR_COLUMNS = tuple(f.name for f in fields(PointRecord) if f.name not in NESTED)
# What tells two lines of a chart apart: everything that identifies a point except its load.
SERIES_FIELDS = ("model", "variant", "protocol", "engine", "mode", "arrival", "batch_size", "seq_len")
# What identifies a point (PointRecord.key's fields), in the order comparison rows are sorted by.
POINT_FIELDS = (
    "model",
    "variant",
    "protocol",
    "engine",
    "mode",
    "arrival",
    "batch_size",
    "seq_len",
    "concurrency",
    "request_rate",
)
COMPARE_BY = ("variant", "model", "protocol", "engine")
PERCENTILES = ("p50", "p90", "p95", "p99")
LONG_LABELS = {
    "mode": "{} mode",
    "batch_size": "batch {}",
    "seq_len": "seq {}",
    "concurrency": "conc {}",
    "request_rate": "{:g} req/s",
}
SHORT_LABELS = {"batch_size": "b{}", "seq_len": "s{}", "concurrency": "c{}", "request_rate": "{:g}/s"}
AXIS_LABELS = {
    "batch_size": "batch size (texts per request)",
    "seq_len": "sequence length (tokens)",
    "concurrency": "concurrency (requests in flight)",
}


@dataclass(frozen=True)
class Speedup:
    """One point of a compared variant against the baseline's point at the same batch, length and load."""

    record: PointRecord
    reference: PointRecord
    ratio: float  # throughput (seq/s) of record ÷ reference: above 1 is faster


@dataclass
class ReportFiles:
    """What write_report wrote, and which charts it left out and why (so a caller can say so)."""

    folder: Path
    csv: Path
    markdown: Path
    charts: list[Path] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # chart file name → reason


# ---------------------------------------------------------------------------------------------- CSV


def flatten(record: PointRecord) -> dict[str, Any]:
    """One CSV row: scalar fields as they are, nested ones as ``server.<model>.<field>``, ``gpu.<key>``."""
    row: dict[str, Any] = {name: getattr(record, name) for name in SCALAR_COLUMNS}
    for model, times in record.server.items():
        for name, value in asdict(times).items():
            row[f"server.{model}.{name}"] = value
    for prefix in NESTED[1:]:
        for key, value in getattr(record, prefix).items():
            plain = value is None or isinstance(value, (str, int, float))
            row[f"{prefix}.{key}"] = value if plain else json.dumps(value, sort_keys=True)
    return row


def _column_order(name: str) -> tuple[int, str]:
    return NESTED.index(name.split(".", 1)[0]), name


def write_csv(records: Sequence[PointRecord], path: Path) -> Path:
    """Every record as one row; columns are the union over records, so mixed sweeps share one file."""
    rows = [flatten(r) for r in records]
    extra = sorted({name for row in rows for name in row} - set(SCALAR_COLUMNS), key=_column_order)
    try:
        with path.open("w", newline="") as sink:
            writer = csv.DictWriter(sink, fieldnames=[*SCALAR_COLUMNS, *extra], restval="")
            writer.writeheader()
            writer.writerows(rows)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror}", hint="choose a writable output folder") from exc
    return path


# ------------------------------------------------------------------------------------------- tables


def _load(record: PointRecord) -> float:
    """How hard a point pushed: its concurrency, or its request rate."""
    value = record.concurrency if record.mode == "concurrency" else record.request_rate
    return float(value or 0)


def _load_text(record: PointRecord, arrival: bool = True) -> str:
    if record.mode == "concurrency":
        return str(record.concurrency)
    arrival_text = f" {record.arrival}" if arrival and record.arrival else ""
    return f"{record.request_rate or 0:g}/s{arrival_text}"


def _sortable(values: Iterable[Any]) -> tuple[Any, ...]:
    """A sort key that tolerates None next to numbers or strings."""
    return tuple((v is None, 0 if v is None else v) for v in values)


def _sort_key(record: PointRecord) -> tuple[Any, ...]:
    return _sortable(
        (
            record.model,
            record.variant,
            record.engine,
            record.protocol,
            record.mode,
            record.batch_size,
            record.seq_len,
            _load(record),
            record.arrival,
        )
    )


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|")


def _markdown(header: Sequence[str], align: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _load_header(records: Sequence[PointRecord]) -> str:
    modes = {r.mode for r in records}
    if modes == {"concurrency"}:
        return "concurrency"
    return "rate (req/s)" if modes == {"request_rate"} else "concurrency or rate"


def markdown_table(records: Sequence[PointRecord]) -> str:
    """One row per record, sorted by model, variant, engine, protocol, mode, batch, length and load."""
    header = [
        "model",
        "variant",
        "engine",
        "protocol",
        "mode",
        "batch",
        "seq_len",
        _load_header(records),
        "infer/s",
        "seq/s",
        "tokens/s",
        "p50 ms",
        "p90 ms",
        "p95 ms",
        "p99 ms",
        "errors",
        "stable",
    ]
    align = ["---"] * 5 + ["---:"] * 11 + ["---"]
    rows = [
        [
            r.model,
            r.variant,
            r.engine,
            r.protocol,
            r.mode,
            r.batch_size,
            r.seq_len,
            _load_text(r),
            f"{r.throughput_infer_per_s:.1f}",
            f"{r.throughput_seq_per_s:.1f}",
            f"{r.throughput_tokens_per_s:.0f}",
            f"{r.latency_p50_ms:.2f}",
            f"{r.latency_p90_ms:.2f}",
            f"{r.latency_p95_ms:.2f}",
            f"{r.latency_p99_ms:.2f}",
            r.errors,
            "yes" if r.stable else "no",
        ]
        for r in sorted(records, key=_sort_key)
    ]
    return _markdown(header, align, rows)


# -------------------------------------------------------------------------------------- comparisons


def _require_records(records: Sequence[PointRecord]) -> None:
    if not records:
        raise UserError("no records to report", hint="run a sweep first, or point at its --out folder")


def _values(records: Sequence[PointRecord], by: str) -> list[str]:
    """The distinct values of ``by``, in order of first appearance (the first is the default baseline)."""
    return list(dict.fromkeys(str(getattr(r, by)) for r in records))


def _baseline(records: Sequence[PointRecord], by: str, baseline: str | None) -> str:
    if by not in COMPARE_BY:
        raise UserError(f"cannot compare by {by!r}", hint=f"compare by one of: {', '.join(COMPARE_BY)}")
    values = _values(records, by)
    if baseline is None:
        return values[0]
    if baseline not in values:
        present = ", ".join(sorted(values))
        raise UserError(
            f"no {by} named {baseline!r} in the records; {by}s present: {present}",
            hint=f"pass one of them as the baseline {by}",
        )
    return baseline


def _match_fields(records: Sequence[PointRecord], by: str) -> tuple[str, ...]:
    """Fields that must agree for two records to be the same point under different values of ``by``.

    Variants are often deployed under their own model names (minilm_fp32, minilm_fp16): when every
    variant has exactly one model, the model name is treated as part of the variant and not matched.
    """
    skip = {by}
    if by == "variant":
        models: dict[str, set[str]] = defaultdict(set)
        for r in records:
            models[r.variant].add(r.model)
        if all(len(names) == 1 for names in models.values()):
            skip.add("model")
    return tuple(name for name in POINT_FIELDS if name not in skip)


def _match_key(record: PointRecord, names: Sequence[str]) -> tuple[Any, ...]:
    values = [getattr(record, name) for name in names]
    return tuple(
        round(float(v), 6) if name == "request_rate" and v is not None else v
        for name, v in zip(names, values, strict=True)
    )


def _matched(
    records: Sequence[PointRecord], by: str, names: Sequence[str]
) -> dict[tuple[Any, ...], dict[str, PointRecord]]:
    """Point key → {value of ``by`` → record}, sorted by point; a repeated point keeps its last record."""
    table: dict[tuple[Any, ...], dict[str, PointRecord]] = defaultdict(dict)
    for r in records:
        table[_match_key(r, names)][str(getattr(r, by))] = r
    return dict(sorted(table.items(), key=lambda item: _sortable(item[0])))


def _ratio(value: float, reference: float) -> float | None:
    return value / reference if reference > 0 else None


def speedups(records: Sequence[PointRecord], baseline: str | None = None, by: str = "variant") -> list[Speedup]:
    """Throughput of every non-baseline record over the baseline's at the same point (unmatched are left out)."""
    _require_records(records)
    base = _baseline(records, by, baseline)
    found = []
    for row in _matched(records, by, _match_fields(records, by)).values():
        reference = row.get(base)
        if reference is None:
            continue
        for value, record in row.items():
            ratio = _ratio(record.throughput_seq_per_s, reference.throughput_seq_per_s)
            if value != base and ratio is not None:
                found.append(Speedup(record, reference, ratio))
    return found


def _format_ratio(ratio: float | None) -> str:
    return "–" if ratio is None else f"{ratio:.2f}×"


def _compare_cells(row: dict[str, PointRecord], values: Sequence[str], base: str) -> list[str]:
    reference = row.get(base)
    cells = []
    for value in values:
        record = row.get(value)
        if record is None:
            cells += ["–", "–"] if value == base else ["–", "–", "–", "–"]
            continue
        cells += [f"{record.throughput_seq_per_s:.1f}", f"{record.latency_p99_ms:.2f}"]
        if value != base:
            speed = None if reference is None else _ratio(record.throughput_seq_per_s, reference.throughput_seq_per_s)
            slow = None if reference is None else _ratio(record.latency_p99_ms, reference.latency_p99_ms)
            cells += [_format_ratio(speed), _format_ratio(slow)]
    return cells


def compare_table(records: Sequence[PointRecord], by: str = "variant", baseline: str | None = None) -> str:
    """Values of ``by`` side by side at matching points, with speedup and p99 ratio to the baseline.

    ``by`` is variant, model, protocol or engine; the baseline defaults to the first value recorded.
    """
    _require_records(records)
    base = _baseline(records, by, baseline)
    values = [base, *(v for v in _values(records, by) if v != base)]
    names = _match_fields(records, by)
    shown = [n for n in names if n in ("batch_size", "seq_len") or len({getattr(r, n) for r in records}) > 1]
    shown = [n for n in shown if n not in ("concurrency", "request_rate", "arrival")]
    header = [n.replace("batch_size", "batch") for n in shown] + [_load_header(records)]
    align = ["---:" if n in ("batch_size", "seq_len") else "---" for n in shown] + ["---:"]
    for value in values:
        header += [f"{value} seq/s", f"{value} p99 ms"]
        header += [] if value == base else [f"{value} speedup", f"{value} p99 ratio"]
    align += ["---:"] * (len(header) - len(align))
    rows = []
    for row in _matched(records, by, names).values():
        first = next(iter(row.values()))
        rows.append([getattr(first, n) for n in shown] + [_load_text(first), *_compare_cells(row, values, base)])
    intro = (
        f"Baseline {by}: **{base}**. speedup = seq/s ÷ baseline seq/s (above 1 is faster); "
        "p99 ratio = p99 ÷ baseline p99 (below 1 is faster).\n\n"
    )
    return intro + _markdown(header, align, rows)


# ------------------------------------------------------------------------------------ chart helpers


def _group(records: Sequence[PointRecord], names: Sequence[str]) -> dict[tuple[Any, ...], list[PointRecord]]:
    """Records grouped by the values of ``names``, groups sorted, each group ordered by load."""
    groups: dict[tuple[Any, ...], list[PointRecord]] = defaultdict(list)
    for r in records:
        groups[tuple(getattr(r, n) for n in names)].append(r)
    return {key: sorted(groups[key], key=_load) for key in sorted(groups, key=_sortable)}


def _varying(records: Sequence[PointRecord], names: Sequence[str]) -> list[str]:
    return [n for n in names if len({getattr(r, n) for r in records}) > 1]


def _label(record: PointRecord, names: Sequence[str], short: bool = False) -> str:
    formats = SHORT_LABELS if short else LONG_LABELS
    parts = [formats.get(n, "{}").format(getattr(record, n)) for n in names if getattr(record, n) is not None]
    return " · ".join(parts)


def _constants(records: Sequence[PointRecord], names: Sequence[str]) -> str:
    """What every record shares (model, protocol …), for the title, so legends need not repeat it."""
    fixed = [n for n in names if len({getattr(r, n) for r in records}) == 1]
    return _label(records[0], fixed)


def _title(figure: Figure, title: str, records: Sequence[PointRecord], names: Sequence[str]) -> None:
    shared = _constants(records, names)
    figure.suptitle(f"{title}\n{shared}" if shared else title)


# ------------------------------------------------------------------------------------------- charts


THROUGHPUT = ChartSpec(
    "throughput_vs_concurrency",
    "Throughput vs concurrency",
    "line",
    x="concurrency",
    y="throughput_seq_per_s",
    xlabel=AXIS_LABELS["concurrency"],
    ylabel="throughput (sequences/s)",
    series=SERIES_FIELDS,
    labels=LONG_LABELS,
    xticks=True,
    empty="no record was measured in concurrency mode",
)


def _rows(records: Iterable[PointRecord]) -> list[dict[str, Any]]:
    return [{name: getattr(r, name) for name in SCALAR_COLUMNS} for r in records]


def plot_throughput(records: Sequence[PointRecord], path: Path) -> Chart:
    """Throughput against concurrency, one line per model/variant/batch/length: where it stops scaling."""
    points = [r for r in records if r.mode == "concurrency" and r.concurrency]
    return draw(THROUGHPUT, _rows(points), path.parent)


def _lowest_load(records: Sequence[PointRecord], names: Sequence[str]) -> list[PointRecord]:
    """The least loaded record of each group: latency against shape is read without queueing."""
    return [group[0] for group in _group(records, names).values()]


def plot_latency(records: Sequence[PointRecord], path: Path, dimension: str = "batch_size") -> Chart:
    """p50/p90/p99 latency against batch size or sequence length, at the lowest load measured."""
    if dimension not in ("batch_size", "seq_len"):
        raise ValueError(f"latency is plotted against batch_size or seq_len, not {dimension!r}")
    other = "seq_len" if dimension == "batch_size" else "batch_size"
    title = f"Latency vs {'batch size' if dimension == 'batch_size' else 'sequence length'}"
    series = ("model", "variant", "protocol", "engine", "mode", "arrival", other)
    chosen = _lowest_load(records, (*series, dimension))
    xs = sorted({getattr(r, dimension) for r in chosen})
    if len(xs) < 2:
        return Chart(title, path, f"only one {AXIS_LABELS[dimension].split(' (')[0]} was measured ({xs[0]})")
    loads = {_load_text(r) for r in chosen}
    prefix = "concurrency " if chosen[0].mode == "concurrency" else ""
    at = f"at {prefix}{loads.pop()}" if len(loads) == 1 else "at the lowest load measured"
    spec = ChartSpec(
        path.stem,
        f"{title} ({at})",
        "line",
        x=dimension,
        y=tuple(f"latency_{p}_ms" for p in ("p50", "p90", "p99")),
        xlabel=AXIS_LABELS[dimension],
        ylabel="{panel} latency (ms)",
        series=series,
        labels=LONG_LABELS,
        panels=("p50", "p90", "p99"),
        xticks=True,
        width=13.0,
    )
    return Chart(title, draw(spec, _rows(chosen), path.parent).path)


def _frontier_panel(
    ax: Axes, panel: Sequence[PointRecord], attr: str, colors: dict[str, str], names: list[str]
) -> None:
    for group in _group(panel, SERIES_FIELDS).values():
        label = _label(group[0], names) or "all"
        xs = [r.throughput_seq_per_s for r in group]
        ys = [getattr(r, attr) for r in group]
        ax.plot(xs, ys, marker="o", color=colors[label], label=label)
        for r, x, y in zip(group, xs, ys, strict=True):
            ax.annotate(_load_text(r, arrival=False), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    _scale(ax, "x", [r.throughput_seq_per_s for r in panel])
    _scale(ax, "y", [getattr(r, attr) for r in panel])
    ax.grid(True, alpha=0.3)


def plot_frontier(records: Sequence[PointRecord], path: Path, percentile: str = "p99") -> Chart:
    """Latency against throughput, one panel per batch/length, one line per variant in load order.

    The knee of each line is the most throughput a variant gives before its latency runs away.
    """
    if percentile not in PERCENTILES:
        raise ValueError(f"percentile must be one of {PERCENTILES}, not {percentile!r}")
    attr = f"latency_{percentile}_ms"
    title = f"{percentile} latency vs throughput"
    panels = _group(records, ("batch_size", "seq_len"))
    lines = ("model", "variant", "protocol", "engine", "mode", "arrival")
    names = _varying(records, lines)
    labels = list(dict.fromkeys(_label(r, names) or "all" for r in sorted(records, key=_sort_key)))
    colors = {label: f"C{i % 10}" for i, label in enumerate(labels)}
    figure, axes = _figure(len(panels), ncols=3 if len(panels) > 4 else 2, width=11.0, height=4.2)
    for ax, ((batch, seq_len), panel) in zip(axes, panels.items(), strict=True):
        _frontier_panel(ax, panel, attr, colors, names)
        ax.set_title(f"batch {batch} · seq {seq_len}")
        ax.set_xlabel("throughput (sequences/s)")
        ax.set_ylabel(f"{percentile} latency (ms)")
    _title(figure, f"{title} (point labels: {_load_header(records)})", records, lines)
    _legend(figure, axes)
    return Chart(title, _save(figure, path))


def _short_key(names: Sequence[str]) -> str:
    """Explains the short point labels: "point (b = batch size, c = concurrency)"."""
    parts = [f"{SHORT_LABELS[n].split('{')[0]} = {AXIS_LABELS[n].split(' (')[0]}" for n in names if n in AXIS_LABELS]
    return f"point ({', '.join(parts)})" if parts else "point"


def plot_speedup(records: Sequence[PointRecord], path: Path, baseline: str | None = None, by: str = "variant") -> Chart:
    """Throughput ratio of each variant over the baseline at matching points (bars above 1 are faster)."""
    _require_records(records)
    base = _baseline(records, by, baseline)
    title = f"Throughput speedup over {base}"
    others = [v for v in _values(records, by) if v != base]
    if not others:
        return Chart(title, path, f"only one {by} ({base}): nothing to compare")
    found = speedups(records, base, by)
    if not found:
        return Chart(title, path, f"no point of {', '.join(others)} matches a point of the baseline {base}")
    names = _match_fields(records, by)
    shown = _varying([s.record for s in found], names)
    points = list(dict.fromkeys(_label(s.record, shown, short=True) for s in found))
    compared = [v for v in others if any(str(getattr(s.record, by)) == v for s in found)]
    figure, (ax,) = _figure(width=max(8.0, min(30.0, 0.45 * len(points) * len(compared) + 3)))
    width = 0.8 / len(compared)
    for i, value in enumerate(compared):
        mine = {_label(s.record, shown, short=True): s.ratio for s in found if str(getattr(s.record, by)) == value}
        xs = np.arange(len(points)) + (i - (len(compared) - 1) / 2) * width
        bars = ax.bar(xs, [mine.get(p, np.nan) for p in points], width, label=value)
        if len(points) * len(compared) <= 48:
            ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.axhline(1.0, color="grey", linestyle="--", linewidth=1, label=f"{base} (1.0)")
    ax.set_xticks(range(len(points)), labels=points, rotation=60, ha="right")
    _scale(ax, "y", [s.ratio for s in found] + [1.0])
    ax.set_xlabel(_short_key(shown))
    ax.set_ylabel(f"speedup (× {base} sequences/s)")
    ax.grid(True, axis="y", alpha=0.3)
    _title(figure, title, [s.record for s in found], names)
    _legend(figure, [ax], title=by)
    return Chart(title, _save(figure, path))


def plot_memory(records: Sequence[PointRecord], path: Path) -> Chart:
    """Peak (bar) and lowest (tick) GPU memory used per variant over its points; skipped without data."""
    title = "GPU memory per variant"
    measured = [r for r in records if r.gpu.get("memory_used_mb") is not None]
    if not measured:
        return Chart(title, path, "no record has GPU memory (gpu.memory_used_mb): measured without a GPU")
    groups = _group(measured, ("model", "variant"))
    several = len({r.model for r in measured}) > 1
    labels = [f"{model} · {variant}" if several else variant for model, variant in groups]
    peaks = [max(r.gpu["memory_used_mb"] for r in group) for group in groups.values()]
    lows = [min(r.gpu["memory_used_mb"] for r in group) for group in groups.values()]
    figure, (ax,) = _figure(width=max(6.0, 1.2 * len(labels) + 3))
    bars = ax.bar(labels, peaks, color=[f"C{i % 10}" for i in range(len(labels))], label="peak over its points (bar)")
    ax.bar_label(bars, fmt="%.0f MB", fontsize=8)
    ax.scatter(labels, lows, marker="_", s=600, color="black", zorder=3, label="lowest of its points (tick)")
    _scale(ax, "y", peaks + lows)
    ax.set_xlabel("variant")
    ax.set_ylabel("GPU memory used (MB)")
    ax.grid(True, axis="y", alpha=0.3)
    note = "" if len(measured) == len(records) else f" (from {len(measured)} of {len(records)} points)"
    figure.suptitle(title + note)
    _legend(figure, [ax])
    return Chart(title, _save(figure, path))


# ------------------------------------------------------------------------------------------- report


def _prepare(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"cannot write the report to {folder}: {exc.strerror}", hint="choose a writable output folder"
        ) from exc


def _draw_charts(records: Sequence[PointRecord], folder: Path, baseline: str) -> list[Chart]:
    return [
        plot_throughput(records, folder / "throughput_vs_concurrency.png"),
        plot_latency(records, folder / "latency_vs_batch.png", "batch_size"),
        plot_latency(records, folder / "latency_vs_seq_len.png", "seq_len"),
        plot_frontier(records, folder / "latency_throughput_p99.png", "p99"),
        plot_frontier(records, folder / "latency_throughput_p50.png", "p50"),
        plot_speedup(records, folder / "speedup.png", baseline),
        plot_memory(records, folder / "memory.png"),
    ]


def _summary(records: Sequence[PointRecord]) -> str:
    def listed(name: str) -> str:
        return ", ".join(sorted({str(getattr(r, name)) for r in records}))

    stamps = sorted(r.timestamp for r in records if r.timestamp)
    when = f", measured {stamps[0]} to {stamps[-1]}" if stamps else ""
    versions = sorted({f"{k} {v}" for r in records for k, v in r.versions.items()})
    lines = [
        f"{len(records)} points{when}.",
        "",
        f"- models: {listed('model')}; variants: {listed('variant')}",
        f"- protocols: {listed('protocol')}; engines: {listed('engine')}; hosts: {listed('host') or '?'}",
    ]
    if versions:
        lines.append(f"- versions: {', '.join(versions)}")
    unstable = sum(not r.stable for r in records)
    failed = sum(r.errors > 0 for r in records)
    if unstable or failed:
        lines.append(f"- of {len(records)} points, {unstable} not stable across trials, {failed} with errors")
    return "\n".join(lines) + "\n"


def _report_markdown(records: Sequence[PointRecord], baseline: str, charts: Sequence[Chart]) -> str:
    parts = ["# Benchmark report\n", _summary(records), "All numbers: [results.csv](results.csv)\n"]
    parts += ["## Results\n", markdown_table(records)]
    if len(_values(records, "variant")) > 1:
        parts += ["## Variants compared\n", compare_table(records, "variant", baseline)]
    parts.append("## Charts\n")
    parts += [f"### {c.title}\n\n![{c.title}]({c.path.name})\n" for c in charts if c.drawn]
    skipped = [f"- {c.path.name} ({c.title}): {c.reason}" for c in charts if not c.drawn]
    if skipped:
        parts += ["### Not drawn\n", "\n".join(skipped) + "\n"]
    return "\n".join(parts)


def write_report(records: Sequence[PointRecord], out_dir: Path, baseline: str | None = None) -> ReportFiles:
    """results.csv, report.md and the charts in ``out_dir``; ``baseline`` is the variant to compare against.

    Inputs are checked before anything is written, so a wrong baseline leaves no half-written report.
    """
    records = list(records)
    _require_records(records)
    base = _baseline(records, "variant", baseline)
    _prepare(out_dir)
    csv_path = write_csv(records, out_dir / "results.csv")
    charts = _draw_charts(records, out_dir, base)
    markdown = out_dir / "report.md"
    try:
        markdown.write_text(_report_markdown(records, base, charts))
    except OSError as exc:
        raise OutputError(f"cannot write {markdown}: {exc.strerror}", hint="choose a writable output folder") from exc
    return ReportFiles(
        folder=out_dir,
        csv=csv_path,
        markdown=markdown,
        charts=[c.path for c in charts if c.drawn],
        skipped={c.path.name: c.reason for c in charts if not c.drawn},
    )
