"""The charts of `tritonbench report`, from sweep records.

Throughput, latency and the latency/throughput frontier are rows of client.report.charts (charts as data),
drawn from the records' flat rows. The speedup and memory charts are still drawn here with its helpers: their
bars are aggregates over points (a ratio per matched point, a peak and a low per variant) with per-bar labels,
a labelled reference line, per-bar colours and a width that grows with the data, which the one draw function
does not express without knobs for these two charts alone.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from client.records import PointRecord
from client.report.charts import Chart, ChartSpec, draw
from client.report.charts import figure as _figure
from client.report.charts import legend as _legend
from client.report.charts import save as _save
from client.report.charts import scale as _scale
from client.report.sorting import sortable
from client.report.tables import (
    SCALAR_COLUMNS,
    baseline_of,
    load_header,
    load_of,
    load_text,
    match_fields,
    require_records,
    speedups,
    values_of,
)

# What tells two lines of a chart apart: everything that identifies a point except its load.
SERIES_FIELDS = ("model", "variant", "protocol", "generator", "mode", "arrival", "batch_size", "seq_len")
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


# ------------------------------------------------------------------------------------ chart helpers


def _group(records: Sequence[PointRecord], names: Sequence[str]) -> dict[tuple[Any, ...], list[PointRecord]]:
    """Records grouped by the values of ``names``, groups sorted, each group ordered by load."""
    groups: dict[tuple[Any, ...], list[PointRecord]] = defaultdict(list)
    for r in records:
        groups[tuple(getattr(r, n) for n in names)].append(r)
    return {key: sorted(groups[key], key=load_of) for key in sorted(groups, key=sortable)}


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
    """The records as chart rows: their scalar columns, with the load as a number and as a point label."""
    return [
        {**{name: getattr(r, name) for name in SCALAR_COLUMNS}, "load": load_of(r), "load_label": load_text(r, False)}
        for r in records
    ]


def plot_throughput(records: Sequence[PointRecord], path: Path) -> Chart:
    """Throughput against concurrency, one line per model/variant/batch/length: where it stops scaling."""
    points = [r for r in records if r.mode == "concurrency" and r.concurrency]
    return draw(THROUGHPUT, _rows(points), path.parent)


def _lowest_load(records: Sequence[PointRecord], names: Sequence[str]) -> list[PointRecord]:
    """The least loaded record of each group: latency against shape is read without queueing."""
    return [group[0] for group in _group(records, names).values()]


def latency_spec(name: str, dimension: str) -> ChartSpec:
    """p50/p90/p99 latency against batch size or sequence length, one line per everything else but the load."""
    other = "seq_len" if dimension == "batch_size" else "batch_size"
    what = AXIS_LABELS[dimension].split(" (")[0]
    return ChartSpec(
        name,
        f"Latency vs {what}",
        "line",
        x=dimension,
        y=tuple(f"latency_{p}_ms" for p in ("p50", "p90", "p99")),
        xlabel=AXIS_LABELS[dimension],
        ylabel="{panel} latency (ms)",
        series=("model", "variant", "protocol", "generator", "mode", "arrival", other),
        labels=LONG_LABELS,
        panels=("p50", "p90", "p99"),
        subtitle="{at}",
        xticks=True,
        width=13.0,
        single=f"only one {what} was measured ({{x}})",
    )


def plot_latency(records: Sequence[PointRecord], path: Path, dimension: str = "batch_size") -> Chart:
    """p50/p90/p99 latency against batch size or sequence length, at the lowest load measured."""
    if dimension not in ("batch_size", "seq_len"):
        raise ValueError(f"latency is plotted against batch_size or seq_len, not {dimension!r}")
    spec = latency_spec(path.stem, dimension)
    chosen = _lowest_load(records, (*spec.series, dimension))
    loads = {load_text(r) for r in chosen}
    prefix = "concurrency " if chosen[0].mode == "concurrency" else ""
    at = f"at {prefix}{loads.pop()}" if len(loads) == 1 else "at the lowest load measured"
    return draw(spec, _rows(chosen), path.parent, {"at": at})


# Lines of a frontier, and the order its series take their colours in (the Markdown table's order).
FRONTIER_LINES = ("model", "variant", "protocol", "generator", "mode", "arrival")
TABLE_ORDER = ("model", "variant", "generator", "protocol", "mode", "batch_size", "seq_len", "load", "arrival")


def frontier_spec(name: str, percentile: str) -> ChartSpec:
    """Latency at `percentile` against throughput: one panel per batch × length, one line per variant."""
    return ChartSpec(
        name,
        f"{percentile} latency vs throughput",
        "line",
        x="throughput_seq_per_s",
        y=f"latency_{percentile}_ms",
        xlabel="throughput (sequences/s)",
        ylabel=f"{percentile} latency (ms)",
        series=FRONTIER_LINES,
        labels=LONG_LABELS,
        facets=("batch_size", "seq_len"),
        order="load",
        colour_order=TABLE_ORDER,
        subtitle="point labels: {load_header}",
        annotate="load_label",
        width=11.0,
        height=4.2,
    )


def plot_frontier(records: Sequence[PointRecord], path: Path, percentile: str = "p99") -> Chart:
    """Latency against throughput, one panel per batch/length, one line per variant in load order.

    The knee of each line is the most throughput a variant gives before its latency runs away.
    """
    if percentile not in PERCENTILES:
        raise ValueError(f"percentile must be one of {PERCENTILES}, not {percentile!r}")
    return draw(
        frontier_spec(path.stem, percentile), _rows(records), path.parent, {"load_header": load_header(records)}
    )


def _short_key(names: Sequence[str]) -> str:
    """Explains the short point labels: "point (b = batch size, c = concurrency)"."""
    parts = [f"{SHORT_LABELS[n].split('{')[0]} = {AXIS_LABELS[n].split(' (')[0]}" for n in names if n in AXIS_LABELS]
    return f"point ({', '.join(parts)})" if parts else "point"


def plot_speedup(records: Sequence[PointRecord], path: Path, baseline: str | None = None, by: str = "variant") -> Chart:
    """Throughput ratio of each variant over the baseline at matching points (bars above 1 are faster)."""
    require_records(records)
    base = baseline_of(records, by, baseline)
    title = f"Throughput speedup over {base}"
    others = [v for v in values_of(records, by) if v != base]
    if not others:
        return Chart(title, path, f"only one {by} ({base}): nothing to compare")
    found = speedups(records, base, by)
    if not found:
        return Chart(title, path, f"no point of {', '.join(others)} matches a point of the baseline {base}")
    names = match_fields(records, by)
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


def draw_charts(records: Sequence[PointRecord], folder: Path, baseline: str) -> list[Chart]:
    """Every chart of the report, in its order; `baseline` is the variant the speedup chart divides by."""
    return [
        plot_throughput(records, folder / "throughput_vs_concurrency.png"),
        plot_latency(records, folder / "latency_vs_batch.png", "batch_size"),
        plot_latency(records, folder / "latency_vs_seq_len.png", "seq_len"),
        plot_frontier(records, folder / "latency_throughput_p99.png", "p99"),
        plot_frontier(records, folder / "latency_throughput_p50.png", "p50"),
        plot_speedup(records, folder / "speedup.png", baseline),
        plot_memory(records, folder / "memory.png"),
    ]
