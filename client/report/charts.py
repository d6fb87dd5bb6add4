"""Charts as data: one ChartSpec row per chart (name, title, axes, series), drawn by one function.

A chart reads plain rows (mappings of column → value): `where` picks the rows, `series` the columns that
tell its lines apart, `x` and `y` the axes, `facets` the columns that split it into panels. Only series
columns that vary get into the legend; those every row shares go into the title's second line. Figures
are bare `Figure` objects on the Agg canvas: no pyplot state, no display. A new chart is a new row;
`tritonbench report` and `tritonbench study` both draw here.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from builder.common.errors import OutputError
from client.report.sorting import sortable

LOG_SPAN = 20.0  # an axis whose values span more than this factor is drawn on a log scale
DPI = 110
Row = Mapping[str, Any]


@dataclass(frozen=True)
class Chart:
    """One chart: drawn at ``path``, or skipped (nothing written) for the stated ``reason``."""

    title: str
    path: Path
    reason: str = ""

    @property
    def drawn(self) -> bool:
        """Whether the PNG was written."""
        return not self.reason


@dataclass(frozen=True)
class ChartSpec:
    """What one chart shows; `draw` turns it and the rows into a PNG.

    `y` names one column, or several: one panel each, titled by `panels`. `facets` split the rows into one
    panel per distinct value of those columns instead (each scaled on its own rows; a series keeps its colour
    in every panel). Titles and labels may name `{placeholders}` filled from draw's context.
    """

    name: str  # the file is NAME.png
    title: str
    kind: str  # line | scatter | bar (x is then a category)
    x: str
    y: str | tuple[str, ...]
    xlabel: str
    ylabel: str  # "{panel}" is the panel's title
    series: tuple[str, ...] = ()
    where: Mapping[str, Any] = field(default_factory=dict)  # column → value (a tuple: any of them)
    labels: Mapping[str, str] = field(default_factory=dict)  # column → format of its value in legends
    panels: tuple[str, ...] = ()
    facets: tuple[str, ...] = ()  # one panel per distinct value of these columns, titled by their labels
    order: str = ""  # the column a series' points are joined in (default: x)
    colour_order: tuple[str, ...] = ()  # series take colours in order of first appearance sorted by these
    subtitle: str = ""  # (in parentheses) after the title on the figure only, not in the chart's title
    xticks: bool = False  # a labelled tick at every distinct x
    annotate: str = ""  # a column whose value labels each point
    frontier: bool = False  # per series, a dashed line through the points nothing beats (higher x, lower y)
    mark: str = ""  # a column whose truthy rows get a ring, labelled with the column's name (the chosen one)
    baseline: float | None = None  # a dashed horizontal reference line
    width: float = 8.0
    height: float = 4.8  # of one row of panels
    empty: str = "no measured point to draw"
    single: str = ""  # set: skipped when only one x was measured, with this reason ("{x}": that x)

    def __post_init__(self) -> None:
        if self.kind not in ("line", "scatter", "bar"):
            raise ValueError(f"chart {self.name}: unknown kind {self.kind!r}")
        if self.panels and len(self.panels) != len(self.ys):
            raise ValueError(f"chart {self.name}: one panel title per y column")
        if self.facets and len(self.ys) > 1:
            raise ValueError(f"chart {self.name}: facets or several y columns, not both")

    @property
    def ys(self) -> tuple[str, ...]:
        """The y columns, one per panel."""
        return (self.y,) if isinstance(self.y, str) else self.y


# ------------------------------------------------------------------------------------------- helpers


def wants_log(values: Iterable[float]) -> bool:
    """Whether an axis needs a log scale: its positive values span more than LOG_SPAN×."""
    positive = [v for v in values if v is not None and v > 0 and math.isfinite(v)]
    return bool(positive) and max(positive) / min(positive) > LOG_SPAN


def scale(ax: Axes, axis: str, values: Sequence[float], ticks: bool = False) -> None:
    """Log scale where the range is wide; ``ticks`` puts a labelled tick on every distinct value."""
    target = ax.xaxis if axis == "x" else ax.yaxis
    if wants_log(values):
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
        target.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        target.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        target.set_minor_formatter(NullFormatter())
    if ticks:
        distinct = sorted(set(values))
        (ax.set_xticks if axis == "x" else ax.set_yticks)(distinct, labels=[f"{v:g}" for v in distinct])


def figure(panels: int = 1, ncols: int = 1, width: float = 8.0, height: float = 4.8) -> tuple[Figure, list[Axes]]:
    """A figure on the Agg canvas (no pyplot, no display), with its panels in reading order."""
    ncols = max(1, min(ncols, panels))
    nrows = math.ceil(panels / ncols)
    fig = Figure(figsize=(width, height * nrows), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.subplots(nrows, ncols, squeeze=False)
    axes = [ax for row in grid for ax in row]
    for extra in axes[panels:]:
        extra.set_visible(False)
    return fig, axes[:panels]


def save(fig: Figure, path: Path) -> Path:
    """Write the figure as PNG; an unwritable folder is the user's to fix."""
    try:
        fig.savefig(path, format="png")
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror}", hint="choose a writable output folder") from exc
    return path


def legend(fig: Figure, axes: Sequence[Axes], title: str = "") -> None:
    """One legend for the whole figure, below the plots (clear of titles), without repeated entries."""
    entries: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            entries.setdefault(label, handle)
    if entries:
        fig.legend(
            list(entries.values()),
            list(entries),
            loc="outside lower center",
            fontsize="small",
            title=title,
            ncols=min(4, len(entries)),
        )


def label(row: Row, names: Sequence[str], formats: Mapping[str, str]) -> str:
    """The values of `names` in `row`, formatted and joined ("fp16 · batch 8"); None values are left out."""
    return " · ".join(formats.get(n, "{}").format(row[n]) for n in names if row.get(n) is not None)


# --------------------------------------------------------------------------------------------- draw


def _matches(row: Row, where: Mapping[str, Any]) -> bool:
    return all(row.get(k) in v if isinstance(v, tuple) else row.get(k) == v for k, v in where.items())


def _groups(rows: Sequence[Row], names: Sequence[str], order: str) -> dict[tuple[Any, ...], list[Row]]:
    groups: dict[tuple[Any, ...], list[Row]] = defaultdict(list)
    for row in rows:
        groups[tuple(row.get(n) for n in names)].append(row)
    return {key: sorted(groups[key], key=lambda r: sortable([r[order]])) for key in sorted(groups, key=sortable)}


def pareto(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other beats on both axes (higher x, lower y), by increasing x."""
    kept = [p for p in points if not any(q != p and q[0] >= p[0] and q[1] <= p[1] for q in points)]
    return sorted(set(kept))


def _points(ax: Axes, spec: ChartSpec, y: str, group: list[Row], text: str, colour: str) -> None:
    xs, ys = [float(r[spec.x]) for r in group], [float(r[y]) for r in group]
    if spec.kind == "line":
        ax.plot(xs, ys, marker="o", color=colour, label=text)
    else:
        drawn = ax.scatter(xs, ys, label=text, zorder=3)
        if spec.frontier:
            front = pareto(list(zip(xs, ys, strict=True)))
            color = drawn.get_facecolor()[0]
            ax.plot([p[0] for p in front], [p[1] for p in front], linestyle="--", color=color, linewidth=1)
        marked = [i for i, row in enumerate(group) if spec.mark and row.get(spec.mark)]
        if marked:
            ax.scatter([xs[i] for i in marked], [ys[i] for i in marked], s=260, facecolors="none",
                       edgecolors="crimson", linewidths=2, zorder=4, label=spec.mark)  # fmt: skip
    if spec.annotate:
        for row, px, py in zip(group, xs, ys, strict=True):
            ax.annotate(str(row[spec.annotate]), (px, py), textcoords="offset points", xytext=(4, 4), fontsize=7)


def _bars(ax: Axes, spec: ChartSpec, y: str, groups: dict[tuple[Any, ...], list[Row]], texts: list[str]) -> None:
    categories = list(dict.fromkeys(str(r[spec.x]) for group in groups.values() for r in group))
    width = 0.8 / len(groups)
    for i, (group, text) in enumerate(zip(groups.values(), texts, strict=True)):
        values = {str(r[spec.x]): float(r[y]) for r in group}
        xs = np.arange(len(categories)) + (i - (len(groups) - 1) / 2) * width
        bars = ax.bar(xs, [values.get(c, np.nan) for c in categories], width, label=text)
        if len(categories) * len(groups) <= 48:
            ax.bar_label(bars, fmt="%.0f", fontsize=7)
    ax.set_xticks(range(len(categories)), labels=categories, rotation=30, ha="right")


@dataclass(frozen=True)
class _Panel:
    title: str
    y: str
    rows: list[Row]


def _panels(spec: ChartSpec, chosen: list[Row]) -> list[_Panel]:
    """One panel per y column over every row, or one per facet value over its rows."""
    if not spec.facets:
        return [_Panel(title, y, chosen) for y, title in zip(spec.ys, spec.panels or ("",) * len(spec.ys), strict=True)]
    facets = _groups(chosen, spec.facets, spec.order or spec.x)
    return [_Panel(label(rows[0], spec.facets, spec.labels), spec.ys[0], rows) for rows in facets.values()]


def _colours(spec: ChartSpec, chosen: list[Row], varying: list[str]) -> dict[str, str]:
    """Each series' colour by its legend text: in series order, or by first appearance sorted by colour_order."""
    if spec.colour_order:
        ordered = sorted(chosen, key=lambda r: sortable([r.get(n) for n in spec.colour_order]))
    else:
        ordered = [group[0] for group in _groups(chosen, spec.series, spec.order or spec.x).values()]
    texts = dict.fromkeys(label(row, varying, spec.labels) or "all" for row in ordered)
    return {text: f"C{i % 10}" for i, text in enumerate(texts)}


def _skipped(spec: ChartSpec, chosen: list[Row], ctx: Mapping[str, Any]) -> str:
    """Why nothing is drawn, or ""."""
    if not chosen:
        return spec.empty.format(**ctx)
    xs = sorted({r[spec.x] for r in chosen})
    return spec.single.format(x=xs[0], **ctx) if spec.single and len(xs) < 2 else ""


def _axes(ax: Axes, spec: ChartSpec, panel: _Panel, varying: list[str], colours: dict[str, str], ctx: Row) -> None:
    groups = _groups(panel.rows, spec.series, spec.order or spec.x)
    texts = [label(group[0], varying, spec.labels) or "all" for group in groups.values()]
    if spec.kind == "bar":
        _bars(ax, spec, panel.y, groups, texts)
    else:
        for group, text in zip(groups.values(), texts, strict=True):
            _points(ax, spec, panel.y, group, text, colours[text])
    if spec.baseline is not None:
        ax.axhline(spec.baseline, color="grey", linestyle="--", linewidth=1)
    if panel.title:
        ax.set_title(panel.title)
    ax.set_xlabel(spec.xlabel.format(**ctx))
    ax.set_ylabel(spec.ylabel.format(panel=panel.title, **ctx))
    ax.grid(True, alpha=0.3) if spec.kind != "bar" else ax.grid(True, axis="y", alpha=0.3)
    if spec.kind != "bar":
        scale(ax, "x", [float(r[spec.x]) for r in panel.rows], ticks=spec.xticks)
    scale(ax, "y", [float(r[y]) for r in panel.rows for y in spec.ys])


def draw(spec: ChartSpec, rows: Iterable[Row], folder: Path, context: Mapping[str, Any] | None = None) -> Chart:
    """Draw `spec` from `rows` into folder/NAME.png; nothing is written when no row has the y value."""
    ctx = dict(context or {})
    title = spec.title.format(**ctx)
    path = folder / f"{spec.name}.png"
    chosen = [r for r in rows if _matches(r, spec.where) and all(r.get(y) is not None for y in spec.ys)]
    reason = _skipped(spec, chosen, ctx)
    if reason:
        return Chart(title, path, reason)
    varying = [n for n in spec.series if len({r.get(n) for r in chosen}) > 1]
    fixed = [n for n in spec.series if n not in varying]
    colours = _colours(spec, chosen, varying)
    panels = _panels(spec, chosen)
    ncols = (3 if len(panels) > 4 else 2) if spec.facets else len(panels)
    fig, axes = figure(len(panels), ncols=ncols, width=spec.width, height=spec.height)
    for ax, panel in zip(axes, panels, strict=True):
        _axes(ax, spec, panel, varying, colours, ctx)
    heading = f"{title} ({spec.subtitle.format(**ctx)})" if spec.subtitle else title
    shared = label(chosen[0], fixed, spec.labels)
    fig.suptitle(f"{heading}\n{shared}" if shared else heading)
    legend(fig, axes)
    return Chart(title, save(fig, path))
