"""Argument groups of tritonbench's commands: each owns its options, parses them and hands the command one object.

A group decorates a command: it adds its options and replaces their values by what `parse` makes of them,
passed under the group's `key` (the target's ClientConfig, the grid, the MeasurementConfig, the generator's
name, the loaded records ...). A command that needs the same options uses the same group, so no option block
is written twice and every check of an option lives beside its declaration.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import click

from builder.common.cli import float_list, int_list
from client.generators import GENERATORS
from client.generators.measure import MeasurementConfig
from client.points import ARRIVALS
from client.records import PointRecord, load_records
from client.transport.text_client import PROTOCOLS, ClientConfig

T = TypeVar("T")
Command = Callable[..., Any]


@dataclass(frozen=True)
class Param:
    """One option or argument as click declares it."""

    decls: tuple[str, ...]
    attrs: Mapping[str, Any]
    argument: bool = False

    @property
    def name(self) -> str:
        """The keyword click passes its value under."""
        made = (click.Argument if self.argument else click.Option)(list(self.decls), **self.attrs)
        assert made.name is not None
        return made.name

    def add_to(self, command: Command) -> Command:
        """`command` with this parameter declared on it."""
        return (click.argument if self.argument else click.option)(*self.decls, **self.attrs)(command)


def option(*decls: str, **attrs: Any) -> Param:
    """An option of a group (click.option's arguments)."""
    return Param(decls, attrs)


def argument(*decls: str, **attrs: Any) -> Param:
    """An argument of a group (click.argument's arguments)."""
    return Param(decls, attrs, argument=True)


@dataclass(frozen=True)
class ArgGroup(Generic[T]):
    """Options that belong together, and the one object they become."""

    key: str  # the command's keyword for the object
    params: tuple[Param, ...]
    parse: Callable[..., T]  # called with the parameters' values by name

    def __call__(self, command: Command) -> Command:
        """Declare the group's parameters on `command`, which receives `parse`'s object under `key` instead."""
        names = [p.name for p in self.params]

        @functools.wraps(command)
        def parsed(**values: Any) -> Any:
            own = {name: values.pop(name) for name in names}
            return command(**values, **{self.key: self.parse(**own)})

        declared: Command = parsed
        for param in reversed(self.params):
            declared = param.add_to(declared)
        return declared


# ------------------------------------------------------------------------------------------- target


def host_port(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """Accept host:port with a port of 1-65535: a bad port must not dial another one, a missing one 443."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or "/" in value:
        raise click.BadParameter(f"'{value}' is not host:port (for example 127.0.0.1:8001)")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise click.BadParameter(f"'{value}': the port must be a number from 1 to 65535")
    return value


def host_ports(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    """Every value of a repeated option host:port (host_port)."""
    return tuple(host_port(ctx, param, value) for value in values)


@dataclass(frozen=True)
class SweepTarget:
    """The model and every URL a sweep sends to: `client` talks to the first, requests go round robin over all."""

    client: ClientConfig
    urls: tuple[str, ...]


TARGET = ArgGroup(
    "target",
    (
        option(
            "--url",
            multiple=True,
            default=("127.0.0.1:8001",),
            show_default=True,
            callback=host_ports,
            help="host:port of the gRPC or HTTP endpoint: a server, or the balancer of `tritonbuild serve --replicas` "
            "(its replicas' statistics are read too); repeat it to spread the requests over several (round robin)",
        ),
        option("--protocol", type=click.Choice(PROTOCOLS), default="grpc", show_default=True),
        option("--model", required=True, help="an ensemble taking TEXT, or a model taking input_ids/attention_mask"),
        option("--timeout", type=float, default=60.0, show_default=True, help="seconds per request"),
    ),
    lambda url, protocol, model, timeout: SweepTarget(ClientConfig(url[0], model, protocol, timeout), url),
)


# --------------------------------------------------------------------------------------------- grid


@dataclass(frozen=True)
class Grid:
    """The points of a sweep: batch sizes × sequence lengths × concurrency levels or request rates."""

    batch_sizes: tuple[int, ...]
    seq_lens: tuple[int, ...]
    concurrency: tuple[int, ...]
    request_rates: tuple[float, ...]
    arrival: str


def _grid(batch_sizes: str, seq_lens: str, concurrency: str | None, request_rate: str | None, arrival: str) -> Grid:
    if concurrency and request_rate:
        raise click.UsageError("give --concurrency or --request-rate, not both")
    rates = float_list(request_rate) if request_rate else ()
    levels = () if rates else int_list(concurrency or "1")
    return Grid(int_list(batch_sizes), int_list(seq_lens), levels, rates, arrival)


GRID = ArgGroup(
    "grid",
    (
        option("--batch-sizes", default="1", show_default=True, help="comma-separated texts per request"),
        option("--seq-lens", default="128", show_default=True, help="comma-separated tokens per text"),
        option("--concurrency", default=None, help="comma-separated requests in flight (closed loop) [default: 1]"),
        option("--request-rate", default=None, help="comma-separated requests/s (open loop), instead of --concurrency"),
        option(
            "--arrival",
            type=click.Choice(ARRIVALS),
            default="constant",
            show_default=True,
            help="arrival process for --request-rate",
        ),
    ),
    _grid,
)


# -------------------------------------------------------------------------------------- measurement


def _measurement(
    measurement_interval: int,
    measurement_request_count: int,
    stability_percentage: float,
    stable_windows: int,
    max_trials: int,
    warmup: float,
) -> MeasurementConfig:
    try:
        return MeasurementConfig(
            measurement_interval / 1000,
            measurement_request_count,
            stability_percentage,
            stable_windows,
            max_trials,
            warmup,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


MEASUREMENT = ArgGroup(
    "measurement",
    (
        option("--measurement-interval", type=int, default=2000, show_default=True, help="window length, ms"),
        option(
            "--measurement-request-count",
            type=int,
            default=0,
            help="count windows: at least this many requests per window (0: time windows)",
        ),
        option(
            "--stability-percentage",
            type=float,
            default=10.0,
            show_default=True,
            help="the last windows must agree within ± this % (throughput and latency)",
        ),
        option("--stable-windows", type=int, default=3, show_default=True),
        option("--max-trials", type=int, default=10, show_default=True, help="windows before giving up (unstable)"),
        option("--warmup", type=float, default=1.0, show_default=True, help="seconds of load before measuring"),
    ),
    _measurement,
)


# ---------------------------------------------------------------------------------------- generator


def _generator(generator: str, engine: str | None) -> str:
    """--generator, or the deprecated --engine (click has said so on stderr); both must agree."""
    if engine is None:
        return generator
    given = click.get_current_context().get_parameter_source("generator") != click.core.ParameterSource.DEFAULT
    if given and generator != engine:
        raise click.UsageError(f"--generator {generator} and --engine {engine} disagree: give --generator only")
    return engine


GENERATOR = ArgGroup(
    "generator",
    (
        option(
            "--generator",
            type=click.Choice(list(GENERATORS)),
            default="tritonbench",
            show_default=True,
            help="our asyncio load generator, or NVIDIA's perf_analyzer binary",
        ),
        option(
            "--engine",
            type=click.Choice(list(GENERATORS)),
            default=None,
            deprecated="use --generator; engine names make-repo's serving backend",
            help="the old name of --generator",
        ),
    ),
    _generator,
)


# ---------------------------------------------------------------------------------- records, progress


def _records(results: tuple[Path, ...]) -> list[PointRecord]:
    return load_records(list(results))


RESULTS = ArgGroup(
    "records",
    (argument("results", nargs=-1, required=True, type=click.Path(path_type=Path)),),
    _records,
)

PROGRESS = ArgGroup(
    "progress",
    (option("--no-progress", is_flag=True, help="no progress bar"),),
    lambda no_progress: not no_progress,
)


class RenamedChoice(click.Choice):
    """A choice that still takes the old spellings of renamed values, saying so on stderr."""

    def __init__(self, choices: tuple[str, ...], renamed: Mapping[str, str]) -> None:
        super().__init__(choices)
        self.renamed = dict(renamed)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """The value, with an old spelling replaced by its new one."""
        if value in self.renamed:
            name = param.opts[0] if param else "the option"
            new = self.renamed[value]
            click.echo(f"DeprecationWarning: {name} {value} is deprecated. use {name} {new}", err=True)
            value = new
        return super().convert(value, param, ctx)
