"""`tritonbuild serve` and `demo`: the bundled tritonserver on a repository, and the README's first command."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import click

from builder.serving.endpoints import GRPC, HTTP, METRICS
from builder.serving.server import TritonServer


@click.command()
@click.option("--repo", type=click.Path(path_type=Path), default=Path("repo"), show_default=True)
@click.option("--http-port", type=int, default=HTTP.port, show_default=True)
@click.option("--grpc-port", type=int, default=GRPC.port, show_default=True)
@click.option("--metrics-port", type=int, default=METRICS.port, show_default=True)
@click.option("--log", type=click.Path(path_type=Path), default=None, help="server log file (default: temporary)")
def serve(repo: Path, http_port: int, grpc_port: int, metrics_port: int, log: Path | None) -> None:
    """Serve REPO with the bundled tritonserver on 127.0.0.1 until Ctrl-C.

    A model whose backend stub dies is reloaded (and said so here and in the log); exits 1 when the server
    dies or a model cannot be brought back.
    """

    def report(message: str) -> None:
        click.secho(f"supervisor: {message}", fg="yellow", err=True)

    with TritonServer(repo, http_port, grpc_port, metrics_port, log_path=log, report=report) as server:
        click.echo(f"ready: HTTP {server.http_url}, gRPC {server.grpc_url}, metrics {server.metrics_url}")
        click.echo(f"log: {server.log_path}")
        click.echo("Ctrl-C stops the server")
        for sig in (signal.SIGINT, signal.SIGTERM):  # also when started with SIGINT ignored (a shell's `&`)
            signal.signal(sig, signal.default_int_handler)
        try:
            while server.is_alive() and server.failure is None:
                time.sleep(0.5)
        except KeyboardInterrupt:
            click.echo("stopping")
            return
        if server.failure is not None:
            click.secho(f"error: {server.failure}; stopping the server:\n{server.log_tail()}", fg="red", err=True)
        else:
            code = server.returncode
            click.secho(
                f"tritonserver exited unexpectedly (code {code}); its log ends:\n{server.log_tail()}",
                fg="red",
                err=True,
            )
        raise SystemExit(1)


@click.command()
@click.option("--output", type=click.Path(path_type=Path), default=Path("repo"), show_default=True)
@click.option("--results", type=click.Path(path_type=Path), default=Path("results/demo"), show_default=True)
@click.option("--window", type=float, default=1.0, show_default=True, help="seconds per measurement window")
def demo(output: Path, results: Path, window: float) -> None:
    """Build the bundled MiniLM repository, serve it, query it, run a short sweep, write a report."""
    from builder.demo import run_demo

    run_demo(output, results, window, echo=click.echo)
