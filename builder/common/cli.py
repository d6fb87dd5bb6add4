"""Shared CLI plumbing: one place where user errors become a message, a hint and exit code 1."""

from __future__ import annotations

import click

from builder.common.errors import UserError


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
