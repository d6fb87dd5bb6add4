"""Sorting rows whose values may be None: shared by the tables and the charts, and light (no matplotlib)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def sortable(values: Iterable[Any]) -> tuple[Any, ...]:
    """A sort key that tolerates None next to numbers or strings."""
    return tuple((v is None, 0 if v is None else v) for v in values)
