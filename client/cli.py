"""`tritonbench`: measure a running Triton server."""

from __future__ import annotations

from pathlib import Path

import click

from builder.common.cli import UserErrorGroup, float_list, int_list
from client.measure import MeasurementConfig
from client.records import ResultStore
from client.sweep import MIXED, SweepConfig, point_line, run_sweep
from client.text_client import PROTOCOLS, ClientConfig
from client.texts import read_texts
from client.tune_cli import tune


@click.group(cls=UserErrorGroup)
@click.version_option(package_name="tritonbuild")
def main() -> None:
    """Load sweeps, reports and comparisons for models on a Triton server."""


def host_port(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """Accept host:port with a port of 1-65535: a bad port must not dial another one, a missing one 443."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or "/" in value:
        raise click.BadParameter(f"'{value}' is not host:port (for example 127.0.0.1:8001)")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise click.BadParameter(f"'{value}': the port must be a number from 1 to 65535")
    return value


@main.command()
@click.option(
    "--url",
    default="127.0.0.1:8001",
    show_default=True,
    callback=host_port,
    help="host:port of the gRPC or HTTP endpoint",
)
@click.option("--protocol", type=click.Choice(PROTOCOLS), default="grpc", show_default=True)
@click.option("--model", required=True, help="an ensemble taking TEXT, or a model taking input_ids/attention_mask")
@click.option("--batch-sizes", default="1", show_default=True, help="comma-separated texts per request")
@click.option("--seq-lens", default="128", show_default=True, help="comma-separated tokens per text")
@click.option("--concurrency", default=None, help="comma-separated requests in flight (closed loop) [default: 1]")
@click.option("--request-rate", default=None, help="comma-separated requests/s (open loop), instead of --concurrency")
@click.option(
    "--arrival",
    type=click.Choice(["constant", "poisson"]),
    default="constant",
    show_default=True,
    help="arrival process for --request-rate",
)
@click.option("--measurement-interval", type=int, default=2000, show_default=True, help="window length, ms")
@click.option(
    "--measurement-request-count",
    type=int,
    default=0,
    help="count windows: at least this many requests per window (0: time windows)",
)
@click.option(
    "--stability-percentage",
    type=float,
    default=10.0,
    show_default=True,
    help="the last windows must agree within ± this % (throughput and latency)",
)
@click.option("--stable-windows", type=int, default=3, show_default=True)
@click.option("--max-trials", type=int, default=10, show_default=True, help="windows before giving up (unstable)")
@click.option("--warmup", type=float, default=1.0, show_default=True, help="seconds of load before measuring")
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
@click.option(
    "--engine",
    type=click.Choice(["tritonbench", "perf_analyzer"]),
    default="tritonbench",
    show_default=True,
    help="our asyncio load generator, or NVIDIA's perf_analyzer binary",
)
@click.option("--timeout", type=float, default=60.0, show_default=True, help="seconds per request")
@click.option("--out", type=click.Path(path_type=Path), default=Path("results"), show_default=True)
@click.option("--no-progress", is_flag=True, help="no progress bar")
def sweep(
    url: str,
    protocol: str,
    model: str,
    batch_sizes: str,
    seq_lens: str,
    concurrency: str | None,
    request_rate: str | None,
    arrival: str,
    measurement_interval: int,
    measurement_request_count: int,
    stability_percentage: float,
    stable_windows: int,
    max_trials: int,
    warmup: float,
    tokenizer: Path | None,
    texts: Path | None,
    repo: Path,
    metrics_url: str | None,
    variant: str,
    engine: str,
    timeout: float,
    out: Path,
    no_progress: bool,
) -> None:
    """Sweep batch × sequence length × load; one record per point in OUT/results.jsonl; reruns resume."""
    if concurrency and request_rate:
        raise click.UsageError("give --concurrency or --request-rate, not both")
    ctx = click.get_current_context()
    if texts is not None and ctx.get_parameter_source("seq_lens") is not click.core.ParameterSource.DEFAULT:
        raise click.UsageError("--texts sends the texts' own lengths: leave out --seq-lens")
    try:
        measurement = MeasurementConfig(
            measurement_interval / 1000,
            measurement_request_count,
            stability_percentage,
            stable_windows,
            max_trials,
            warmup,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    config = SweepConfig(
        ClientConfig(url, model, protocol, timeout),
        int_list(batch_sizes),
        int_list(seq_lens) if texts is None else (MIXED,),
        concurrency=int_list(concurrency or "1") if not request_rate else (),
        request_rates=float_list(request_rate) if request_rate else (),
        arrival=arrival,
        measurement=measurement,
        variant=variant,
        engine=engine,
        tokenizer=tokenizer,
        metrics_url=metrics_url,
        texts=read_texts(texts) if texts is not None else (),
    )
    store = ResultStore(out)
    records = run_sweep(config, store, echo=click.echo, repo=repo, progress=not no_progress)
    if not no_progress:  # without the bar, each point had its line as it finished
        for record in records:
            click.echo(point_line(record))
    click.echo(f"records: {store.path} (tritonbench report {out} --out REPORT_DIR)")


@main.command()
@click.argument("results", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=Path("report"), show_default=True)
@click.option("--baseline", default=None, help="variant the speedup chart divides by (default: the first)")
def report(results: tuple[Path, ...], out: Path, baseline: str | None) -> None:
    """CSV, Markdown tables and PNG charts from one or more sweep results folders."""
    from client.records import load_records
    from client.report import write_report

    files = write_report(load_records(list(results)), out, baseline=baseline)
    click.echo(f"wrote {files.csv}, {files.markdown} and {len(files.charts)} charts in {files.folder}")
    for name, reason in files.skipped.items():
        click.echo(f"  not drawn: {name}: {reason}")


@main.command()
@click.argument("results", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--by",
    type=click.Choice(["variant", "model", "engine", "protocol"]),
    default="variant",
    show_default=True,
    help="what to put side by side",
)
@click.option("--baseline", default=None, help="the value the others are divided by (default: the first)")
def compare(results: tuple[Path, ...], by: str, baseline: str | None) -> None:
    """Models, variants, engines or protocols side by side at matching points, with ratios."""
    from client.records import load_records
    from client.report import compare_table

    click.echo(compare_table(load_records(list(results)), by=by, baseline=baseline))


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
@click.option("--no-progress", is_flag=True, help="no progress bar")
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
    no_progress: bool,
) -> None:
    """Run a whole study (TOML CONFIG): build, serve and measure every variant, then write a one-page report.

    Each point goes to OUT/study.jsonl as it finishes; the same command again measures only what is missing.
    """
    import dataclasses

    from client.study_config import EXAMPLE, load_config
    from client.study_records import study_store
    from client.study_report import write_study_report
    from client.study_run import StudyOptions, StudyPaths, prepare, run_study

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
    options = StudyOptions(max_minutes, url, metrics_url, progress=not no_progress)
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
    from client.study_plan import StudyPlan, describe, pending, within_budget

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
