"""`tritonbuild serve` and `demo`: the bundled tritonserver on a repository, and the README's first command."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import click
from click.core import ParameterSource

from builder.serving.cpu_latency import CpuLatencyHold
from builder.serving.endpoints import GRPC, HTTP, METRICS
from builder.serving.holds import Hold
from builder.serving.idle_poll import NICE, IdlePoll
from builder.serving.replicas import ReplicaSet
from builder.serving.server import TritonServer


@click.command()
@click.option("--repo", type=click.Path(path_type=Path), default=Path("repo"), show_default=True)
@click.option("--http-port", type=int, default=HTTP.port, show_default=True)
@click.option("--grpc-port", type=int, default=GRPC.port, show_default=True)
@click.option("--metrics-port", type=int, default=METRICS.port, show_default=True, help="one server's (not replicas')")
@click.option(
    "--replicas",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="servers to start behind one nginx (least connections, retries, readiness-gated) on --http-port and "
    "--grpc-port; each replica gets free ports of its own",
)
@click.option(
    "--log",
    type=click.Path(path_type=Path),
    default=None,
    help="server log file (with --replicas: a folder for each replica's log) [default: temporary]",
)
@click.option(
    "--cpu-latency-us",
    type=click.IntRange(min=0),
    default=None,
    help="hold Linux's PM QoS CPU latency limit at this many µs while serving (0: idle CPUs poll instead of "
    "sleeping, which takes the wake-up cost out of each hand-over on a VM, at the price of the idle CPUs' time; "
    "needs write access to /dev/cpu_dma_latency) [default: the host's setting]",
)
@click.option(
    "--idle-poll",
    is_flag=True,
    help="keep every CPU busy with a nice-19 spinning process while serving, so that no idle CPU halts: for VMs "
    "whose kernel halts idle CPUs whatever --cpu-latency-us says (cpuidle driver 'none'), at the price of every "
    "idle CPU's time; the spinners pause while other work keeps a third of the CPU time busy",
)
@click.option(
    "--mps",
    is_flag=True,
    help="share the GPU between the server's processes (every GPU instance's stub) through CUDA MPS, with an MPS "
    "control daemon of this command's own, so that their kernels run side by side instead of time-sliced; needs "
    "nvidia-cuda-mps-control",
)
def serve(
    repo: Path,
    http_port: int,
    grpc_port: int,
    metrics_port: int,
    replicas: int,
    log: Path | None,
    cpu_latency_us: int | None,
    idle_poll: bool,
    mps: bool,
) -> None:
    """Serve REPO with the bundled tritonserver on 127.0.0.1 until Ctrl-C.

    A model whose backend stub dies is reloaded (and said so here and in the log); exits 1 when the server
    dies or a model cannot be brought back. With --replicas N, a replica that stops serving is taken out of
    the balancer (and back in once ready); exits 1 when none is left.
    """

    def report(message: str) -> None:
        click.secho(f"supervisor: {message}", fg="yellow", err=True)

    for sig in (signal.SIGINT, signal.SIGTERM):  # also when started with SIGINT ignored (a shell's `&`)
        signal.signal(sig, signal.default_int_handler)
    if replicas > 1:
        given = click.get_current_context().get_parameter_source("metrics_port") != ParameterSource.DEFAULT
        if given:
            raise click.UsageError("--metrics-port is one server's: with --replicas each replica has its own (printed)")
        _serve_replicas(repo, replicas, http_port, grpc_port, log, report, cpu_latency_us, idle_poll, mps)
        return
    triton = TritonServer(
        repo,
        http_port,
        grpc_port,
        metrics_port,
        log_path=log,
        report=report,
        cpu_latency_us=cpu_latency_us,
        idle_poll=idle_poll,
        mps=mps,
    )
    with triton as server:
        click.echo(f"ready: HTTP {server.http_url}, gRPC {server.grpc_url}, metrics {server.metrics_url}")
        click.echo(f"log: {server.log_path}")
        _say_holds(server.holds)
        click.echo("Ctrl-C stops the server")
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


def _say_holds(holds: list[Hold]) -> None:
    """What is held besides the servers, when anything is: it changes the whole host or the GPU, so the user is told."""
    for hold in holds:
        if isinstance(hold, CpuLatencyHold):
            click.echo(f"CPU latency: held at {hold.limit_us} µs through {hold.device} until this command stops")
        elif isinstance(hold, IdlePoll):
            click.echo(
                f"idle poll: a nice-{NICE} spinning process on each of {len(hold.cpus)} CPUs until this command "
                "stops (paused while other work keeps a third of the CPU time busy)"
            )
        else:
            clients = hold.clients()
            joined = sum(len(c) for c in clients.values())
            where = hold.env["CUDA_MPS_PIPE_DIRECTORY"]
            if joined:
                servers = ", ".join(str(pid) for pid in clients)
                click.echo(f"MPS: {joined} CUDA processes share the GPU through MPS server {servers} (pipes {where})")
            else:
                click.secho(
                    f"MPS: the daemon runs (pipes {where}) but no CUDA process joined it: the GPU is shared as "
                    "without --mps (its log ends: " + (hold.log_tail() or "nothing") + ")",
                    fg="yellow",
                    err=True,
                )


def _serve_replicas(
    repo: Path,
    count: int,
    http_port: int,
    grpc_port: int,
    log: Path | None,
    report: Callable[[str], None],
    cpu_latency_us: int | None,
    idle_poll: bool,
    mps: bool,
) -> None:
    """`serve --replicas`: the balancer's URLs first (what clients use), each replica's own below."""
    click.echo(f"starting {count} replicas and nginx ...")
    balanced = ReplicaSet(
        repo,
        count,
        http_port,
        grpc_port,
        log_dir=log,
        report=report,
        cpu_latency_us=cpu_latency_us,
        idle_poll=idle_poll,
        mps=mps,
    )
    with balanced as replicas:
        click.echo(f"ready: HTTP {replicas.http_url}, gRPC {replicas.grpc_url} (nginx over {count} replicas)")
        for replica in replicas.replicas:
            assert replica.server is not None
            click.echo(
                f"  replica {replica.index}: HTTP {replica.http_url}, gRPC {replica.grpc_url}, "
                f"metrics {replica.server.metrics_url}, log {replica.server.log_path}"
            )
        click.echo(f"nginx: config {replicas.nginx.conf_path}, log {replicas.nginx.log_path}")
        _say_holds(replicas.holds)
        click.echo("Ctrl-C stops everything")
        try:
            while replicas.alive() and replicas.nginx.running():
                time.sleep(0.5)
        except KeyboardInterrupt:
            click.echo("stopping")
            return
        if not replicas.nginx.running():
            click.secho(f"nginx exited unexpectedly; its log ends:\n{replicas.nginx.log_tail()}", fg="red", err=True)
        else:
            click.secho(f"every replica's server exited; their logs are in {replicas.log_dir}", fg="red", err=True)
        raise SystemExit(1)


@click.command()
@click.option("--output", type=click.Path(path_type=Path), default=Path("repo"), show_default=True)
@click.option("--results", type=click.Path(path_type=Path), default=Path("results/demo"), show_default=True)
@click.option("--window", type=float, default=1.0, show_default=True, help="seconds per measurement window")
def demo(output: Path, results: Path, window: float) -> None:
    """Build the bundled MiniLM repository, serve it, query it, run a short sweep, write a report."""
    from builder.demo import run_demo

    run_demo(output, results, window, echo=click.echo)
