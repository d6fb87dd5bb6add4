"""`tritonbench`: measure a running Triton server."""

from __future__ import annotations

from pathlib import Path

import click

from builder.common.cli import UserErrorGroup
from client.arguments import GENERATOR, GRID, MEASUREMENT, PROGRESS, RESULTS, TARGET, Grid, RenamedChoice, SweepTarget
from client.experiments.tune_cli import tune
from client.generators.measure import MeasurementConfig
from client.points import MIXED
from client.records import PointRecord, ResultStore
from client.report.tables import COMPARE_BY
from client.sweep import SweepConfig, point_line, run_sweep
from client.targets.texts import read_texts


@click.group(cls=UserErrorGroup)
@click.version_option(package_name="tritonbuild")
def main() -> None:
    """Load sweeps, reports and comparisons for models on a Triton server."""


@main.command()
@TARGET
@GRID
@MEASUREMENT
@click.option("--tokenizer", type=click.Path(path_type=Path), default=None, help="tokenizer.json for exact-length text")
@click.option(
    "--texts",
    type=click.Path(path_type=Path),
    default=None,
    help="send these texts (one per line) in their real proportions, one cycle through them per request pool, "
    "instead of texts cut to --seq-lens",
)
@click.option(
    "--repo",
    type=click.Path(path_type=Path),
    default=Path("repo"),
    show_default=True,
    help="model repository to find the tokenizer.json of MODEL_tokenizer (or of MODEL_model, --single-model) in",
)
@click.option(
    "--metrics-url", default=None, help="Prometheus endpoint for GPU metrics, e.g. http://127.0.0.1:8002/metrics"
)
@click.option("--variant", default="", help="label for comparisons (fp16, hybrid, an engine ...)")
@GENERATOR
@click.option("--out", type=click.Path(path_type=Path), default=Path("results"), show_default=True)
@PROGRESS
def sweep(
    target: SweepTarget,
    grid: Grid,
    measurement: MeasurementConfig,
    tokenizer: Path | None,
    texts: Path | None,
    repo: Path,
    metrics_url: str | None,
    variant: str,
    generator: str,
    out: Path,
    progress: bool,
) -> None:
    """Sweep batch × sequence length × load; one record per point in OUT/results.jsonl; reruns resume."""
    ctx = click.get_current_context()
    if texts is not None and ctx.get_parameter_source("seq_lens") is not click.core.ParameterSource.DEFAULT:
        raise click.UsageError("--texts sends the texts' own lengths: leave out --seq-lens")
    config = SweepConfig(
        target.client,
        grid.batch_sizes,
        grid.seq_lens if texts is None else (MIXED,),
        concurrency=grid.concurrency,
        request_rates=grid.request_rates,
        arrival=grid.arrival,
        measurement=measurement,
        variant=variant,
        generator=generator,
        tokenizer=tokenizer,
        metrics_url=metrics_url,
        texts=read_texts(texts) if texts is not None else (),
        urls=target.urls,
    )
    store = ResultStore(out)
    records = run_sweep(config, store, echo=click.echo, repo=repo, progress=progress)
    if progress:  # without the bar, each point had its line as it finished
        for record in records:
            click.echo(point_line(record))
    click.echo(f"records: {store.path} (tritonbench report {out} --out REPORT_DIR)")


@main.command()
@RESULTS
@click.option("--out", type=click.Path(path_type=Path), default=Path("report"), show_default=True)
@click.option("--baseline", default=None, help="variant the speedup chart divides by (default: the first)")
def report(records: list[PointRecord], out: Path, baseline: str | None) -> None:
    """CSV, Markdown tables and PNG charts from one or more sweep results folders."""
    from client.report.report import write_report

    files = write_report(records, out, baseline=baseline)
    click.echo(f"wrote {files.csv}, {files.markdown} and {len(files.charts)} charts in {files.folder}")
    for name, reason in files.skipped.items():
        click.echo(f"  not drawn: {name}: {reason}")


@main.command()
@RESULTS
@click.option(
    "--by",
    type=RenamedChoice(COMPARE_BY, {"engine": "generator"}),
    default="variant",
    show_default=True,
    help="what to put side by side",
)
@click.option("--baseline", default=None, help="the value the others are divided by (default: the first)")
def compare(records: list[PointRecord], by: str, baseline: str | None) -> None:
    """Models, variants, load generators or protocols side by side at matching points, with ratios."""
    from client.report.tables import compare_table

    click.echo(compare_table(records, by=by, baseline=baseline))


@main.command()
@click.argument("config", required=False, type=click.Path(path_type=Path))
@click.option("--example", is_flag=True, help="print a commented config (the seed's design, the default) and exit")
@click.option("--out", type=click.Path(path_type=Path), default=Path("results/study"), show_default=True,
              help="the store (study.jsonl), the report and the server log")  # fmt: skip
@click.option("--work", type=click.Path(path_type=Path), default=None,
              help="built-in models and the repository [default: OUT/work]")  # fmt: skip
@click.option("--max-minutes", type=float, default=None, help="measure what fits this estimate; rerun for the rest")
@click.option("--url", default=None, help="measure a running server serving WORK/repo instead of starting one")
@click.option("--metrics-url", default=None, help="its Prometheus endpoint, with --url")
@click.option("--vocab", type=click.Path(path_type=Path), default=None,
              help="BERT uncased tokenizer folder for built-in BERT models (overrides [study] vocab)")  # fmt: skip
@click.option("--dry-run", is_flag=True, help="print the plan and its estimate; measure nothing")
@click.option("--report-only", is_flag=True, help="write the report from the store; measure nothing")
@PROGRESS
def study(
    config: Path | None,
    example: bool,
    out: Path,
    work: Path | None,
    max_minutes: float | None,
    url: str | None,
    metrics_url: str | None,
    vocab: Path | None,
    dry_run: bool,
    report_only: bool,
    progress: bool,
) -> None:
    """Run a whole study (TOML CONFIG): build, serve and measure every variant, then write a one-page report.

    Each point goes to OUT/study.jsonl as it finishes; the same command again measures only what is missing.
    """
    import dataclasses

    from client.experiments.study_config import EXAMPLE, load_config
    from client.experiments.study_records import study_store
    from client.experiments.study_report import write_study_report
    from client.experiments.study_run import StudyOptions, StudyPaths, prepare, run_study

    if example:
        click.echo(EXAMPLE, nl=False)
        return
    if config is None:
        raise click.UsageError("give a CONFIG file (tritonbench study --example > study.toml writes the default)")
    if max_minutes is not None and max_minutes <= 0:
        raise click.UsageError("--max-minutes must be positive")
    settings = load_config(config)
    if vocab is not None:
        settings = dataclasses.replace(settings, vocab=vocab.resolve())
    paths = StudyPaths(out, work or out / "work")
    options = StudyOptions(max_minutes, url, metrics_url, progress=progress)
    if dry_run:
        _print_plan(prepare(settings, paths, options), study_store(out).done_keys(), max_minutes)
        return
    plan = None if report_only else run_study(settings, paths, options, echo=click.echo)
    records = study_store(out).load()
    planned = len(plan.points) if plan else None
    files = write_study_report(records, paths.report, settings.report, settings.name, planned)
    click.echo(f"store: {study_store(out).path} ({len(records)} points)")
    click.echo(f"report: {files.markdown} and {files.html} ({sum(c.drawn for c in files.charts)} charts)")
    for chart in files.charts:
        if not chart.drawn:
            click.echo(f"  not drawn: {chart.title}: {chart.reason}")


def _print_plan(plan: object, done: set, max_minutes: float | None) -> None:
    from client.experiments.study_plan import StudyPlan, describe, pending, within_budget

    assert isinstance(plan, StudyPlan)
    todo, dropped = within_budget(plan, pending(plan, done), max_minutes)
    click.echo(f"plan: {describe(plan, plan.points)} on {plan.device}; {len(done)} in the store")
    for line in plan.skipped:
        click.echo(f"  left out: {line}")
    click.echo(f"would measure now: {describe(plan, todo)}")
    if dropped:
        click.echo(f"beyond --max-minutes: {describe(plan, dropped)}")
    for point in todo:
        click.echo(f"  {point.label:<44} {point.estimate_s:8.2f} s")


main.add_command(tune)
