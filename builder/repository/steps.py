"""Run a list of named steps in order, timing each and reporting OK/FAIL as it goes."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    """A named unit of work; `run` does nothing until called."""

    name: str
    run: Callable[[], object]


@dataclass(frozen=True)
class StepResult:
    """How a step ended and how long it took."""

    name: str
    status: str  # OK or FAIL
    seconds: float


def run_steps(steps: list[Step], echo: Callable[[str], None]) -> list[StepResult]:
    """Run `steps`, printing one line each; the first failure is re-raised after its FAIL line."""
    results = []
    for i, step in enumerate(steps, 1):
        echo(f"[{i}/{len(steps)}] {step.name} ...")
        start = time.perf_counter()
        try:
            step.run()
        except BaseException:
            echo(f"[{i}/{len(steps)}] {step.name}: FAIL after {time.perf_counter() - start:.1f} s")
            raise
        elapsed = time.perf_counter() - start
        results.append(StepResult(step.name, "OK", elapsed))
        echo(f"[{i}/{len(steps)}] {step.name}: OK ({elapsed:.1f} s)")
    return results
