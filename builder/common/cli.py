"""Shared CLI plumbing: user errors become a message, a hint and exit code 1; options come in owned groups."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

import click

from builder.common.errors import UserError

T = TypeVar("T")
Command = Callable[..., Any]
Decorator = Callable[[Command], Command]


class UserErrorGroup(click.Group):
    """A click group that prints UserError without a traceback and exits 1."""

    def invoke(self, ctx: click.Context) -> object:
        """Run the subcommand, turning UserError into a clean message."""
        try:
            return super().invoke(ctx)
        except UserError as exc:
            click.secho(f"error: {exc.message}", fg="red", err=True)
            if exc.hint:
                click.echo(f"hint: {exc.hint}", err=True)
            ctx.exit(1)


def _number_list(value: str, kind: type[float] | type[int], what: str) -> tuple:
    try:
        items = tuple(kind(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"'{value}' is not a comma-separated list of {what}") from None
    if not items or any(i <= 0 for i in items):
        raise click.BadParameter(f"'{value}' needs positive {what}")
    return items


def int_list(value: str) -> tuple[int, ...]:
    """Parse '1,8,32' into (1, 8, 32), all positive."""
    return _number_list(value, int, "integers")


def float_list(value: str) -> tuple[float, ...]:
    """Parse '100,200.5' into positive floats."""
    return _number_list(value, float, "numbers")


class ArgGroup(Generic[T]):
    """A block of options that one group owns: it adds them to a command and parses them into one object.

    Decorate a command with an instance (below `@click.command`): the command then takes one parameter named
    `dest`, the object `parse` makes, instead of the group's options. `parse`'s parameters are the options'
    names; one with a default may be left out of `options` (a group used with fewer options).
    """

    dest: str
    parse: Callable[..., T]  # the object the command needs, from the group's option values

    def options(self) -> Sequence[Decorator]:
        """The group's click options, in the order --help lists them."""
        raise NotImplementedError

    def __call__(self, command: Command) -> Command:
        """`command` with the group's options, receiving their parsed object as `dest`."""
        names = tuple(inspect.signature(self.parse).parameters)

        @functools.wraps(command)
        def run(**values: Any) -> Any:
            own = {name: values.pop(name) for name in names if name in values}
            return command(**values, **{self.dest: self.parse(**own)})

        decorated: Command = run
        for option in reversed(self.options()):
            decorated = option(decorated)
        return decorated


def deprecated_option(old: str, new: str, **attrs: Any) -> Decorator:
    """A hidden option under an old spelling; `renamed` warns when it is used."""
    return click.option(old, hidden=True, help=f"deprecated: use {new}", **attrs)


def renamed(old: str, new: str, old_value: Any, new_value: Any) -> Any:
    """The value of option `new`, or of its deprecated spelling `old` (with a warning on stderr) when given."""
    if old_value in (None, False, ()):
        return new_value
    click.secho(f"warning: {old} is deprecated and will be removed: use {new}", fg="yellow", err=True)
    return old_value
