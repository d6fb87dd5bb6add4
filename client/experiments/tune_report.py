"""The report of a tuning search, written from its store alone: report.md, candidates.csv and the frontier chart.

The frontier is one point per candidate, throughput against p99 (at its best level within the budget, or its
lowest p99 when it never kept to it), the chosen one ringed and the budget drawn across; the table lists every
candidate best first, failures included with the reason.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from builder.common.errors import OutputError
from client.experiments.tune_records import CANDIDATE, CONFIRM, FINISH, SEARCH, TuneRecord
from client.experiments.tune_search import FAILED, OK, Budget, LoadPoint, Outcome, best_point, choose, ranked
from client.experiments.tune_space import Candidate
from client.report.charts import Chart, ChartSpec, draw

FRONTIER = ChartSpec(
    "frontier", "Throughput against p99: every candidate, the chosen one ringed (budget {budget} ms dashed)",
    "scatter", x="throughput", y="p99_ms", xlabel="texts/s (best level within the budget; lowest p99 when over)",
    ylabel="p99 latency (ms)", annotate="rank", frontier=True, mark="chosen",
    empty="no candidate was measured",
)  # fmt: skip
COLUMNS = ("rank", "name", "deployment", "model_instances", "max_batch_size", "preferred", "max_queue_delay_us",
           "buckets", "tokenizer_instances", "status", "texts_per_s", "p99_ms", "p50_ms", "concurrency", "levels",
           "requests", "errors", "error_rate", "gpu_memory_mb", "model_gpu_mb", "build_s", "load_s", "measure_s",
           "failure")  # fmt: skip


@dataclass(frozen=True)
class TuneReport:
    """What was written."""

    folder: Path
    markdown: Path
    csv: Path
    chart: Chart


def _shown(points: Sequence[LoadPoint], budget: Budget) -> LoadPoint | None:
    """The point a candidate is drawn at: its best within the budget, else its lowest p99."""
    measured = [p for p in points if not p.failed]
    return best_point(points, budget) or (min(measured, key=lambda p: p.p99_ms) if measured else None)


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None or value == "":
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


@dataclass(frozen=True)
class _Data:
    """The store read back: the search, its candidates and their order, the confirmations, the last finish."""

    settings: dict[str, Any]
    budget: Budget
    records: dict[Candidate, TuneRecord]
    outcomes: dict[Candidate, Outcome]
    order: list[Candidate]
    default: Candidate
    chosen: Candidate | None
    confirmed: dict[str, TuneRecord]
    finishes: list[TuneRecord]
    host: str

    @classmethod
    def of(cls, records: Sequence[TuneRecord]) -> _Data:
        searches = [r for r in records if r.kind == SEARCH]
        if not searches:
            raise OutputError("the tune store has no search record", hint="run tritonbench tune first")
        settings = searches[-1].settings
        budget = Budget(settings["p99_ms"], settings["max_error_rate"])
        measured = {r.the_candidate(): r for r in records if r.kind == CANDIDATE}
        outcomes = {c: r.outcome(budget) for c, r in measured.items()}
        confirmed = {r.settings.get("role", ""): r for r in records if r.kind == CONFIRM and r.candidate}
        finishes = [r for r in records if r.kind == FINISH]
        default = Candidate.from_dict(settings["default"])
        return cls(settings, budget, measured, outcomes, ranked(outcomes), default, choose(outcomes), confirmed,
                   finishes, searches[-1].host)  # fmt: skip

    def row(self, candidate: Candidate) -> dict[str, Any]:
        """One candidate as a table row."""
        record, outcome = self.records[candidate], self.outcomes[candidate]
        shown = _shown(record.load_points(), self.budget)
        return {
            "rank": self.order.index(candidate) + 1,
            "name": candidate.name,
            "deployment": "single model" if candidate.single_model else "ensemble",
            "model_instances": candidate.model_instances,
            "max_batch_size": candidate.max_batch_size,
            "preferred": ",".join(map(str, candidate.preferred_batch_sizes)) or "none",
            "max_queue_delay_us": candidate.max_queue_delay_us,
            "buckets": ",".join(map(str, candidate.buckets)),
            "tokenizer_instances": "–" if candidate.single_model else candidate.tokenizer_instances,
            "status": {OK: "within", "over": "over budget", FAILED: "failed"}[outcome.status]
            + (" (default)" if candidate == self.default else "")
            + (" (chosen)" if candidate == self.chosen else ""),
            "texts_per_s": shown.throughput if shown else None,
            "p99_ms": shown.p99_ms if shown else None,
            "p50_ms": shown.p50_ms if shown else None,
            "concurrency": shown.concurrency if shown else None,
            "levels": " ".join(str(p.concurrency) for p in record.load_points()),
            "requests": record.requests,
            "errors": record.errors,
            "error_rate": record.error_rate,
            "gpu_memory_mb": record.gpu_memory_mb,
            "model_gpu_mb": record.model_gpu_mb,
            "build_s": record.build_s,
            "load_s": record.load_s,
            "measure_s": record.measure_s,
            "failure": record.failure,
        }


def _result_lines(data: _Data) -> list[str]:
    if data.chosen is None:
        seen = [o.p99_ms for o in data.outcomes.values() if o.p99_ms is not None]
        best = f"; the best p99 seen was {min(seen):.2f} ms" if seen else ""
        return [f"**No candidate kept p99 within {data.budget.p99_ms:g} ms{best}.**", ""]
    default, chosen = data.outcomes.get(data.default), data.outcomes[data.chosen]
    lines = ["| | configuration | texts/s within the budget | at concurrency | p99 ms | confirmed texts/s | "
             "confirmed p99 ms |", "|---|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    gains = []
    for role, candidate, outcome in (("default", data.default, default), ("chosen", data.chosen, chosen)):
        if outcome is None:
            continue
        confirm = data.confirmed.get("default" if candidate == data.default else role)
        point = confirm.load_points()[0] if confirm and confirm.points else None
        lines.append(f"| {role} | {candidate.label()} | {_fmt(outcome.throughput)} | {_fmt(outcome.concurrency)} | "
                     f"{_fmt(outcome.p99_ms, 2)} | {_fmt(point.throughput if point else None)} | "
                     f"{_fmt(point.p99_ms if point else None, 2)} |")  # fmt: skip
        gains.append((outcome.throughput, point.throughput if point else None))
    if default is not None and default.status == OK and len(gains) == 2 and gains[0][0]:
        text = f"Gain over the default profile: **{gains[1][0] / gains[0][0]:.2f}×** in the search"
        if gains[0][1] and gains[1][1]:
            text += f", {gains[1][1] / gains[0][1]:.2f}× when both were measured again back to back"
        lines += ["", text + "."]
    elif data.chosen == data.default:
        lines += ["", "The default profile's configuration was the best measured."]
    return [*lines, ""]


def _header(data: _Data) -> list[str]:
    s = data.settings
    lengths = s.get("token_lengths", {})
    seconds = sum(r.settings.get("seconds", 0.0) for r in data.finishes)
    stopped = data.finishes[-1].settings.get("stopped", "") if data.finishes else "not finished (rerun to resume)"
    window = s["measurement"]
    return [
        f"# tritonbench tune: {s['model']} on {s['gpu']} ({s['engine']}, {s['precision']})",
        "",
        f"- Budget: p99 ≤ {s['p99_ms']:g} ms with at most {s['max_error_rate']:.1%} errors, {s['protocol']}, "
        f"{s['client_batch']} text(s) per request, concurrency ≤ {s['max_concurrency']}",
        f"- Texts: {s['texts_count']} ({s['texts_source']}); tokens per text min {_fmt(lengths.get('min'), 0)}, "
        f"median {_fmt(lengths.get('p50'), 0)}, p90 {_fmt(lengths.get('p90'), 0)}, max {_fmt(lengths.get('max'), 0)}",
        f"- Search: {s['search']}, {len(data.records)} candidates measured; {stopped}; search time "
        f"{seconds / 60:.1f} min over {len(data.finishes)} finished run(s)",
        f"- Windows: {window['window_s']:g} s, {window['stable_windows']} within ±{window['stability_pct']:g} %, "
        f"at most {window['max_trials']}, {window['warmup_s']:g} s warm-up; host {data.host or '–'}",
        "",
    ]  # fmt: skip


TABLE = (("rank", "#"), ("name", "name"), ("status", "status"), ("deployment", "deployment"),
         ("model_instances", "inst"), ("max_batch_size", "max batch"), ("preferred", "preferred"),
         ("max_queue_delay_us", "delay µs"), ("buckets", "buckets"), ("tokenizer_instances", "tok"),
         ("texts_per_s", "texts/s"), ("p99_ms", "p99 ms"), ("concurrency", "conc."), ("levels", "levels measured"),
         ("errors", "errors"), ("error_rate", "error rate"), ("gpu_memory_mb", "GPU MB (metrics)"),
         ("model_gpu_mb", "GPU MB (NVML)"), ("build_s", "build s"), ("load_s", "load s"), ("measure_s", "measure s"),
         ("failure", "why it failed or stopped"))  # fmt: skip


def _table(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| " + " | ".join(title for _, title in TABLE) + " |", "|" + "---|" * len(TABLE)]
    for row in rows:
        cells = [f"{row[k]:.2%}" if k == "error_rate" else _fmt(row[k], 2 if k == "p99_ms" else 1) for k, _ in TABLE]
        lines.append("| " + " | ".join(" ".join(c.replace("|", "/").split()) for c in cells) + " |")
    return lines


def write_tune_report(records: Sequence[TuneRecord], folder: Path) -> TuneReport:
    """report.md, candidates.csv and frontier.png in `folder`, from the store's records."""
    data = _Data.of(records)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot write the report to {folder}: {exc.strerror}") from exc
    rows = [data.row(c) for c in data.order]
    chart_rows = [{"throughput": r["texts_per_s"], "p99_ms": r["p99_ms"], "rank": r["rank"],
                   "chosen": data.chosen is not None and r["name"] == data.chosen.name} for r in rows]  # fmt: skip
    spec = replace(FRONTIER, baseline=data.budget.p99_ms)
    chart = draw(spec, chart_rows, folder, {"budget": f"{data.budget.p99_ms:g}"})
    command = data.finishes[-1].settings.get("command") if data.finishes else None
    lines = [*_header(data), "## Result", "", *_result_lines(data)]
    if command:
        lines += ["Rebuild the chosen configuration:", "", "```bash", command, "```", ""]
    lines += ["## Frontier", ""]
    lines += [f"![frontier]({chart.path.name})", ""] if chart.drawn else [f"(not drawn: {chart.reason})", ""]
    lines += ["## Every candidate, best first", "", *_table(rows), ""]
    markdown = folder / "report.md"
    markdown.write_text("\n".join(lines))
    table = folder / "candidates.csv"
    with table.open("w", newline="") as sink:
        writer = csv.DictWriter(sink, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return TuneReport(folder, markdown, table, chart)
