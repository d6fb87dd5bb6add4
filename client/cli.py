"""`tritonbench`: measure a running Triton server."""

from __future__ import annotations

from pathlib import Path

import click

from builder.cli_util import UserErrorGroup, float_list, int_list
from client.measure import MeasurementConfig
from client.records import ResultStore
from client.sweep import SweepConfig, point_line, run_sweep
from client.text_client import PROTOCOLS, ClientConfig


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
        int_list(seq_lens),
        concurrency=int_list(concurrency or "1") if not request_rate else (),
        request_rates=float_list(request_rate) if request_rate else (),
        arrival=arrival,
        measurement=measurement,
        variant=variant,
        engine=engine,
        tokenizer=tokenizer,
        metrics_url=metrics_url,
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
