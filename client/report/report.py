"""`tritonbench report`: a flat CSV, Markdown tables and PNG charts of sweep records, written to one folder.

Pure apart from the files it is asked to write, so a CLI, the demo or a notebook can call it with records
loaded from one or more results folders (``client.records.load_records``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from builder.common.errors import OutputError
from client.records import PointRecord
from client.report.charts import Chart
from client.report.sweep_charts import draw_charts
from client.report.tables import baseline_of, compare_table, markdown_table, require_records, values_of, write_csv


@dataclass
class ReportFiles:
    """What write_report wrote, and which charts it left out and why (so a caller can say so)."""

    folder: Path
    csv: Path
    markdown: Path
    charts: list[Path] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # chart file name → reason


# ------------------------------------------------------------------------------------------- report


def _prepare(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"cannot write the report to {folder}: {exc.strerror}", hint="choose a writable output folder"
        ) from exc


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
        f"- protocols: {listed('protocol')}; generators: {listed('generator')}; hosts: {listed('host') or '?'}",
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
    if len(values_of(records, "variant")) > 1:
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
    require_records(records)
    base = baseline_of(records, "variant", baseline)
    _prepare(out_dir)
    csv_path = write_csv(records, out_dir / "results.csv")
    charts = draw_charts(records, out_dir, base)
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
