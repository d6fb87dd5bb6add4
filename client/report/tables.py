"""Sweep records as tables: a flat CSV, a Markdown table, and values side by side at matching points.

Pure functions apart from the files they are asked to write, so a CLI, the demo or a notebook can call them
with records loaded from one or more results folders (``client.records.load_records``).
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from builder.common.errors import OutputError, UserError
from client.records import PointRecord
from client.report.sorting import sortable

NESTED = ("server", "gpu", "versions", "settings")
SCALAR_COLUMNS = tuple(f.name for f in fields(PointRecord) if f.name not in NESTED)
# What identifies a point (PointRecord.key's fields), in the order comparison rows are sorted by.
POINT_FIELDS = (
    "model",
    "variant",
    "protocol",
    "generator",
    "mode",
    "arrival",
    "batch_size",
    "seq_len",
    "concurrency",
    "request_rate",
)
COMPARE_BY = ("variant", "model", "generator", "protocol")  # what compare can put side by side


@dataclass(frozen=True)
class Speedup:
    """One point of a compared variant against the baseline's point at the same batch, length and load."""

    record: PointRecord
    reference: PointRecord
    ratio: float  # throughput (seq/s) of record ÷ reference: above 1 is faster


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


def load_of(record: PointRecord) -> float:
    """How hard a point pushed: its concurrency, or its request rate."""
    value = record.concurrency if record.mode == "concurrency" else record.request_rate
    return float(value or 0)


def load_text(record: PointRecord, arrival: bool = True) -> str:
    """The load as a reader writes it: "4" (concurrency), "20/s poisson" (request rate, with its arrival)."""
    if record.mode == "concurrency":
        return str(record.concurrency)
    arrival_text = f" {record.arrival}" if arrival and record.arrival else ""
    return f"{record.request_rate or 0:g}/s{arrival_text}"


def _sort_key(record: PointRecord) -> tuple[Any, ...]:
    return sortable(
        (
            record.model,
            record.variant,
            record.generator,
            record.protocol,
            record.mode,
            record.batch_size,
            record.seq_len,
            load_of(record),
            record.arrival,
        )
    )


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|")


def _markdown(header: Sequence[str], align: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def load_header(records: Sequence[PointRecord]) -> str:
    """The load column's heading for these records."""
    modes = {r.mode for r in records}
    if modes == {"concurrency"}:
        return "concurrency"
    return "rate (req/s)" if modes == {"request_rate"} else "concurrency or rate"


def markdown_table(records: Sequence[PointRecord]) -> str:
    """One row per record, sorted by model, variant, generator, protocol, mode, batch, length and load."""
    header = [
        "model",
        "variant",
        "generator",
        "protocol",
        "mode",
        "batch",
        "seq_len",
        load_header(records),
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
            r.generator,
            r.protocol,
            r.mode,
            r.batch_size,
            r.seq_len,
            load_text(r),
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


def require_records(records: Sequence[PointRecord]) -> None:
    """Refuse to report nothing."""
    if not records:
        raise UserError("no records to report", hint="run a sweep first, or point at its --out folder")


def values_of(records: Sequence[PointRecord], by: str) -> list[str]:
    """The distinct values of ``by``, in order of first appearance (the first is the default baseline)."""
    return list(dict.fromkeys(str(getattr(r, by)) for r in records))


def baseline_of(records: Sequence[PointRecord], by: str, baseline: str | None) -> str:
    """The value of ``by`` the others are divided by: ``baseline`` if the records have it, else the first."""
    if by not in COMPARE_BY:
        raise UserError(f"cannot compare by {by!r}", hint=f"compare by one of: {', '.join(COMPARE_BY)}")
    values = values_of(records, by)
    if baseline is None:
        return values[0]
    if baseline not in values:
        present = ", ".join(sorted(values))
        raise UserError(
            f"no {by} named {baseline!r} in the records; {by}s present: {present}",
            hint=f"pass one of them as the baseline {by}",
        )
    return baseline


def match_fields(records: Sequence[PointRecord], by: str) -> tuple[str, ...]:
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
    return dict(sorted(table.items(), key=lambda item: sortable(item[0])))


def _ratio(value: float, reference: float) -> float | None:
    return value / reference if reference > 0 else None


def speedups(records: Sequence[PointRecord], baseline: str | None = None, by: str = "variant") -> list[Speedup]:
    """Throughput of every non-baseline record over the baseline's at the same point (unmatched are left out)."""
    require_records(records)
    base = baseline_of(records, by, baseline)
    found = []
    for row in _matched(records, by, match_fields(records, by)).values():
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

    ``by`` is variant, model, protocol or generator; the baseline defaults to the first value recorded.
    """
    require_records(records)
    base = baseline_of(records, by, baseline)
    values = [base, *(v for v in values_of(records, by) if v != base)]
    names = match_fields(records, by)
    shown = [n for n in names if n in ("batch_size", "seq_len") or len({getattr(r, n) for r in records}) > 1]
    shown = [n for n in shown if n not in ("concurrency", "request_rate", "arrival")]
    header = [n.replace("batch_size", "batch") for n in shown] + [load_header(records)]
    align = ["---:" if n in ("batch_size", "seq_len") else "---" for n in shown] + ["---:"]
    for value in values:
        header += [f"{value} seq/s", f"{value} p99 ms"]
        header += [] if value == base else [f"{value} speedup", f"{value} p99 ratio"]
    align += ["---:"] * (len(header) - len(align))
    rows = []
    for row in _matched(records, by, names).values():
        first = next(iter(row.values()))
        rows.append([getattr(first, n) for n in shown] + [load_text(first), *_compare_cells(row, values, base)])
    intro = (
        f"Baseline {by}: **{base}**. speedup = seq/s ÷ baseline seq/s (above 1 is faster); "
        "p99 ratio = p99 ÷ baseline p99 (below 1 is faster).\n\n"
    )
    return intro + _markdown(header, align, rows)
