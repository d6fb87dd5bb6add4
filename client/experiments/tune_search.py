"""How `tritonbench tune` searches, as pure functions of what has been measured so far.

- A candidate's outcome: the most throughput at a concurrency whose p99 (and error rate) stays within the budget;
  found by a short search over concurrency (double from a start, halve when over, bisect the last gap).
- Candidates compare by outcome: within the budget beats over it, which beats a failure; then throughput (or, over
  the budget, the lower p99); a move needs `min_gain` more than the noise of one measurement.
- quick: coordinate ascent from the GPU profile's defaults, one dimension at a time (an ordered dimension is
  climbed while each step improves, a choice takes its best other value), pass after pass, until a whole pass
  moves nowhere: then every neighbour of where it stands is measured and none is better.
- brute: the whole grid, nearest the defaults first.

Each function replays the search from the outcomes known so far and returns what to measure next: the search
resumes from a store of outcomes without a state of its own, and re-measures nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from client.experiments.tune_space import Candidate, Space

SEARCHES = ("quick", "brute")
OK, OVER, FAILED = "ok", "over", "failed"  # within the budget; measured but never within it; not measured


@dataclass(frozen=True)
class LoadPoint:
    """One concurrency level of a candidate, as measured."""

    concurrency: int
    throughput: float  # texts/s
    p50_ms: float
    p99_ms: float
    error_rate: float  # failed requests / all requests of the point
    gpu_memory_mb: float | None = None  # the metrics endpoint's whole-GPU figure; None without a GPU
    failed: str = ""  # why the level gave no numbers (no request finished in its windows): over the budget


@dataclass(frozen=True)
class Budget:
    """What a point must keep to: p99 and error rate."""

    p99_ms: float
    max_error_rate: float = 0.001

    def keeps(self, point: LoadPoint) -> bool:
        """Whether `point` stays within the budget."""
        return not point.failed and point.p99_ms <= self.p99_ms and point.error_rate <= self.max_error_rate


def next_concurrency(
    points: Sequence[LoadPoint], budget: Budget, start: int, limit: int, saturation: float = 1.05
) -> int | None:
    """The next concurrency to measure, or None when the highest one within the budget is found closely enough.

    From `start`: double while within the budget and throughput still grows by `saturation`; halve while over it;
    once a level within and one above it over are known, bisect until they are within a quarter of each other.
    """
    by_level = {p.concurrency: p for p in points}
    if not by_level:
        return max(1, min(start, limit))
    good = sorted(c for c, p in by_level.items() if budget.keeps(p))
    if not good:
        lowest = min(by_level)
        return None if lowest == 1 else lowest // 2
    top = good[-1]
    over = sorted(c for c in by_level if c > top and not budget.keeps(by_level[c]))
    if over:
        gap = over[0] - top
        return top + gap // 2 if gap > max(1, top // 4) else None
    below = [c for c in good if c < top]
    if below and by_level[top].throughput < by_level[below[-1]].throughput * saturation:
        return None  # more requests in flight would only queue
    return None if top >= limit else min(limit, top * 2)


def best_point(points: Sequence[LoadPoint], budget: Budget) -> LoadPoint | None:
    """The point with the most throughput within the budget (the lower p99 on a tie)."""
    kept = [p for p in points if budget.keeps(p)]
    return max(kept, key=lambda p: (p.throughput, -p.p99_ms)) if kept else None


@dataclass(frozen=True)
class Outcome:
    """What a candidate gave: its best point within the budget, the lowest p99 it reached, or a failure."""

    status: str  # OK | OVER | FAILED
    throughput: float = 0.0  # at the best point within the budget
    p99_ms: float | None = None  # there, or the lowest p99 measured when none was within the budget
    concurrency: int | None = None

    @classmethod
    def of(cls, points: Sequence[LoadPoint], budget: Budget) -> Outcome:
        """The outcome of a candidate's measured points."""
        best = best_point(points, budget)
        if best is not None:
            return cls(OK, best.throughput, best.p99_ms, best.concurrency)
        measured = [p for p in points if not p.failed]
        if not measured:
            return cls(FAILED)
        lowest = min(measured, key=lambda p: p.p99_ms)
        return cls(OVER, 0.0, lowest.p99_ms, lowest.concurrency)


_CLASS = {FAILED: 0, OVER: 1, OK: 2}


def rank(outcome: Outcome) -> tuple[float, float]:
    """A sort key, larger is better: within the budget by throughput, then over it by lower p99, then failures."""
    value = outcome.throughput if outcome.status == OK else -(outcome.p99_ms or 0.0)
    return (_CLASS[outcome.status], value if outcome.status != FAILED else 0.0)


def better(a: Outcome, b: Outcome, min_gain: float) -> bool:
    """Whether `a` beats `b` by more than `min_gain` (a fraction): what a quick-search move needs."""
    if a.status != b.status:
        return _CLASS[a.status] > _CLASS[b.status]
    if a.status == OK:
        return a.throughput > b.throughput * (1 + min_gain)
    if a.status == OVER:
        assert a.p99_ms is not None and b.p99_ms is not None
        return a.p99_ms < b.p99_ms * (1 - min_gain)
    return False


def ranked(known: Mapping[Candidate, Outcome]) -> list[Candidate]:
    """Candidates best first (ties: in the order they were measured)."""
    order = {c: i for i, c in enumerate(known)}
    return sorted(known, key=lambda c: (rank(known[c]), -order[c]), reverse=True)


def choose(known: Mapping[Candidate, Outcome]) -> Candidate | None:
    """The candidate with the most throughput within the budget; None when none kept to it."""
    best = ranked(known)
    return best[0] if best and known[best[0]].status == OK else None


@dataclass(frozen=True)
class Next:
    """What the search wants measured next (None: it is finished), and where a quick climb stands."""

    candidate: Candidate | None
    current: Candidate


def _climb(space: Space, known: Mapping[Candidate, Outcome], current: Candidate, name: str, gain: float) -> Next:
    """One dimension of a quick pass: the move it makes (`current` changes), or the neighbour it must measure."""
    dim = space.dimension(name)
    if not dim.ordered:
        others = space.others(current, name)
        missing = next((c for c in others if c not in known), None)
        if missing is not None:
            return Next(missing, current)
        best = max(others, key=lambda c: rank(known[c]), default=None)
        return Next(None, best if best is not None and better(known[best], known[current], gain) else current)
    for direction in (1, -1):
        moved = False
        while (step := space.step(current, name, direction)) is not None:
            if step not in known:
                return Next(step, current)
            if not better(known[step], known[current], gain):
                break
            current, moved = step, True
        if moved:
            break
    return Next(None, current)


def quick_next(space: Space, known: Mapping[Candidate, Outcome], min_gain: float) -> Next:
    """The quick search replayed over `known`: the next candidate it measures, or None once no neighbour improves.

    Every move strictly improves the outcome, so the climb cannot cycle.
    """
    current = space.default
    if current not in known:
        return Next(current, current)
    while True:
        start = current
        for dim in space.dimensions:
            step = _climb(space, known, current, dim.name, min_gain)
            if step.candidate is not None:
                return step
            current = step.current
        if current == start:
            return Next(None, current)


def brute_next(space: Space, known: Mapping[Candidate, Outcome]) -> Next:
    """The first candidate of the grid (nearest the defaults first) not yet measured."""
    missing = next((c for c in space.grid if c not in known), None)
    return Next(missing, choose(known) or space.default)


def next_candidate(search: str, space: Space, known: Mapping[Candidate, Outcome], min_gain: float) -> Next:
    """What `search` measures next."""
    if search == "quick":
        return quick_next(space, known, min_gain)
    if search == "brute":
        return brute_next(space, known)
    raise ValueError(f"unknown search {search!r}")
