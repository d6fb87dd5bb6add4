"""Charts as data: one ChartSpec row per chart (name, title, axes, series), drawn by one function.

A chart reads plain rows (mappings of column → value): `where` picks the rows, `series` the columns that
tell its lines apart, `x` and `y` the axes. Only series columns that vary get into the legend; those every
row shares go into the title's second line. Figures are bare `Figure` objects on the Agg canvas: no pyplot
state, no display. A new chart is a new row; `tritonbench report` and `tritonbench study` both draw here.
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

    `y` names one column, or several: one panel each, titled by `panels`. Titles and labels may name
    `{placeholders}` filled from draw's context.
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
    xticks: bool = False  # a labelled tick at every distinct x
    annotate: str = ""  # a column whose value labels each point
    frontier: bool = False  # per series, a dashed line through the points nothing beats (higher x, lower y)
    mark: str = ""  # a column whose truthy rows get a ring, labelled with the column's name (the chosen one)
    baseline: float | None = None  # a dashed horizontal reference line
    width: float = 8.0
    empty: str = "no measured point to draw"

    def __post_init__(self) -> None:
        if self.kind not in ("line", "scatter", "bar"):
            raise ValueError(f"chart {self.name}: unknown kind {self.kind!r}")
        if self.panels and len(self.panels) != len(self.ys):
            raise ValueError(f"chart {self.name}: one panel title per y column")

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


def sortable(values: Iterable[Any]) -> tuple[Any, ...]:
    """A sort key that tolerates None next to numbers or strings."""
    return tuple((v is None, 0 if v is None else v) for v in values)


def label(row: Row, names: Sequence[str], formats: Mapping[str, str]) -> str:
    """The values of `names` in `row`, formatted and joined ("fp16 · batch 8"); None values are left out."""
    return " · ".join(formats.get(n, "{}").format(row[n]) for n in names if row.get(n) is not None)


# --------------------------------------------------------------------------------------------- draw


def _matches(row: Row, where: Mapping[str, Any]) -> bool:
    return all(row.get(k) in v if isinstance(v, tuple) else row.get(k) == v for k, v in where.items())


def _groups(rows: Sequence[Row], names: Sequence[str], x: str) -> dict[tuple[Any, ...], list[Row]]:
    groups: dict[tuple[Any, ...], list[Row]] = defaultdict(list)
    for row in rows:
        groups[tuple(row.get(n) for n in names)].append(row)
    return {key: sorted(groups[key], key=lambda r: sortable([r[x]])) for key in sorted(groups, key=sortable)}


def pareto(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other beats on both axes (higher x, lower y), by increasing x."""
    kept = [p for p in points if not any(q != p and q[0] >= p[0] and q[1] <= p[1] for q in points)]
    return sorted(set(kept))


def _points(ax: Axes, spec: ChartSpec, y: str, group: list[Row], text: str) -> None:
    xs, ys = [float(r[spec.x]) for r in group], [float(r[y]) for r in group]
    if spec.kind == "line":
        ax.plot(xs, ys, marker="o", label=text)
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


def draw(spec: ChartSpec, rows: Iterable[Row], folder: Path, context: Mapping[str, Any] | None = None) -> Chart:
    """Draw `spec` from `rows` into folder/NAME.png; nothing is written when no row has the y value."""
    ctx = dict(context or {})
    title = spec.title.format(**ctx)
    path = folder / f"{spec.name}.png"
    chosen = [r for r in rows if _matches(r, spec.where) and all(r.get(y) is not None for y in spec.ys)]
    if not chosen:
        return Chart(title, path, spec.empty.format(**ctx))
    varying = [n for n in spec.series if len({r.get(n) for r in chosen}) > 1]
    fixed = [n for n in spec.series if n not in varying]
    groups = _groups(chosen, spec.series, spec.x)
    texts = [label(group[0], varying, spec.labels) or "all" for group in groups.values()]
    fig, axes = figure(len(spec.ys), ncols=len(spec.ys), width=spec.width)
    for ax, y, panel in zip(axes, spec.ys, spec.panels or ("",) * len(spec.ys), strict=True):
        if spec.kind == "bar":
            _bars(ax, spec, y, groups, texts)
        else:
            for group, text in zip(groups.values(), texts, strict=True):
                _points(ax, spec, y, group, text)
        if spec.baseline is not None:
            ax.axhline(spec.baseline, color="grey", linestyle="--", linewidth=1)
        if panel:
            ax.set_title(panel)
        ax.set_xlabel(spec.xlabel.format(**ctx))
        ax.set_ylabel(spec.ylabel.format(panel=panel, **ctx))
        ax.grid(True, alpha=0.3) if spec.kind != "bar" else ax.grid(True, axis="y", alpha=0.3)
        if spec.kind != "bar":
            scale(ax, "x", [float(r[spec.x]) for r in chosen], ticks=spec.xticks)
        scale(ax, "y", [float(r[y]) for r in chosen for y in spec.ys])
    shared = label(chosen[0], fixed, spec.labels)
    fig.suptitle(f"{title}\n{shared}" if shared else title)
    legend(fig, axes)
    return Chart(title, save(fig, path))
