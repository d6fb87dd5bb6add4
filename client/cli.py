"""`tritonbench`: measure a running Triton server."""

from __future__ import annotations

from pathlib import Path

import click

from builder.cli_util import UserErrorGroup, int_list
from client.sweep import SweepConfig, markdown_table, run_sweep
from client.text_client import PROTOCOLS, ClientConfig


@click.group(cls=UserErrorGroup)
def main() -> None:
    """Load sweeps against a Triton server serving a tritonbuild ensemble."""


@main.command()
@click.option("--url", default="127.0.0.1:8001", show_default=True, help="host:port of the gRPC or HTTP endpoint")
@click.option("--protocol", type=click.Choice(PROTOCOLS), default="grpc", show_default=True)
@click.option("--model", required=True, help="ensemble name (its input is TEXT)")
@click.option("--batch-sizes", default="1", show_default=True, help="comma-separated texts per request")
@click.option("--concurrency", default="1,4", show_default=True, help="comma-separated requests in flight")
@click.option("--duration", type=float, default=5.0, show_default=True, help="seconds measured per point")
@click.option("--warmup", type=float, default=1.0, show_default=True, help="seconds of warm-up per point")
@click.option("--out", type=click.Path(path_type=Path), default=Path("results"), show_default=True)
def sweep(
    url: str, protocol: str, model: str, batch_sizes: str, concurrency: str, duration: float, warmup: float, out: Path
) -> None:
    """Closed-loop sweep over batch sizes × concurrency; one JSON line per point in OUT/results.jsonl."""
    config = SweepConfig(
        ClientConfig(url, model, protocol),
        int_list(batch_sizes),
        int_list(concurrency),
        duration_s=duration,
        warmup_s=warmup,
    )
    results = run_sweep(config, out, echo=click.echo)
    click.echo(markdown_table(results))
    click.echo(f"records: {out / 'results.jsonl'}")
