"""The tune search without a server: concurrency search, outcomes and their order, quick and brute."""

from __future__ import annotations

import pytest

from builder.gpus import get_profile
from client.experiments.tune_search import (
    FAILED,
    OK,
    OVER,
    Budget,
    LoadPoint,
    Outcome,
    better,
    brute_next,
    choose,
    next_concurrency,
    quick_next,
    ranked,
)
from client.experiments.tune_space import Candidate, Space, SpaceInputs, build_space

LENGTHS = tuple([12] * 80 + [200] * 20)


def _space(**restrict) -> Space:
    return build_space(SpaceInputs(get_profile("cpu"), "python-torch", 256, LENGTHS, 50.0, restrict))


# ----------------------------------------------------------------------------------------- concurrency


def _server(c: int, per_request_ms: float = 2.0, capacity: int = 8) -> LoadPoint:
    """A server that answers `capacity` requests in parallel: beyond that, requests queue."""
    p99 = per_request_ms * max(1.0, c / capacity) * 1.2
    return LoadPoint(c, min(c, capacity) * 1000 / per_request_ms, p99 / 1.2, p99, 0.0)


def _search(budget: Budget, start: int = 1, limit: int = 256, server=_server) -> list[int]:
    points: list[LoadPoint] = []
    while (c := next_concurrency(points, budget, start, limit)) is not None:
        assert c not in [p.concurrency for p in points]  # never measured twice
        points.append(server(c))
    return [p.concurrency for p in points]


def test_concurrency_doubles_until_throughput_stops_growing():
    assert _search(Budget(100.0)) == [1, 2, 4, 8, 16]  # 16 gives no more than 8: stop


def test_concurrency_bisects_to_the_highest_level_within_the_budget():
    def queueing(c):  # throughput grows with c, p99 too: 1 ms per request in flight
        return LoadPoint(c, 100.0 * c, c * 0.8, float(c), 0.0)

    levels = _search(Budget(20.0), server=queueing)
    assert levels[:6] == [1, 2, 4, 8, 16, 32] and max(c for c in levels if c <= 20) >= 16
    top = max(c for c in levels if c <= 20)
    over = min(c for c in levels if c > 20)
    assert over - top <= max(1, top // 4)  # found within a quarter


def test_concurrency_halves_from_a_start_over_the_budget_and_gives_up_at_one():
    one_at_a_time = _search(Budget(5.0), start=64, server=lambda c: _server(c, capacity=1))
    assert one_at_a_time == [64, 32, 16, 8, 4, 2, 3]  # 2 in flight: 4.8 ms; 3: 7.2 ms
    hopeless = _search(Budget(5.0), start=64, server=lambda c: _server(c, per_request_ms=9.0, capacity=1))
    assert hopeless == [64, 32, 16, 8, 4, 2, 1]  # over the budget even alone: nothing left to try


def test_concurrency_stops_at_the_limit_and_errors_break_the_budget():
    assert _search(Budget(1e9), limit=4, server=lambda c: _server(c, capacity=100)) == [1, 2, 4]
    erring = LoadPoint(1, 100.0, 1.0, 1.0, error_rate=0.01)
    assert not Budget(10.0).keeps(erring) and Budget(10.0, max_error_rate=0.05).keeps(erring)


# ------------------------------------------------------------------------------------------ outcomes


def test_outcome_of_points():
    budget = Budget(10.0)
    points = [LoadPoint(1, 100, 2, 3, 0), LoadPoint(2, 180, 4, 9, 0), LoadPoint(4, 200, 8, 14, 0)]
    assert Outcome.of(points, budget) == Outcome(OK, 180, 9, 2)
    assert Outcome.of(points[2:], budget) == Outcome(OVER, 0.0, 14, 4)
    assert Outcome.of([], budget) == Outcome(FAILED)


def test_order_and_min_gain():
    fast, faster, over, worse_over, failed = (Outcome(OK, 100, 5, 1), Outcome(OK, 102, 5, 1), Outcome(OVER, 0, 12, 1),
                                              Outcome(OVER, 0, 20, 1), Outcome(FAILED))  # fmt: skip
    assert better(faster, fast, 0.0) and not better(faster, fast, 0.03)  # 2 % is within the noise
    assert better(fast, over, 0.5) and better(over, worse_over, 0.1) and better(worse_over, failed, 0.9)
    assert not better(failed, failed, 0.0) and not better(fast, fast, 0.0)
    c = [Candidate(False, i, 0, 8, "none", (8,), 1) for i in range(5)]
    known = {c[0]: over, c[1]: fast, c[2]: failed, c[3]: faster, c[4]: worse_over}
    assert ranked(known) == [c[3], c[1], c[0], c[4], c[2]]
    assert choose(known) == c[3] and choose({c[0]: over, c[2]: failed}) is None


# -------------------------------------------------------------------------------------------- quick


def _objective(candidate: Candidate) -> Outcome:
    """A throughput landscape with one peak: 3 instances, batch 16, delay 100 µs, no preferred sizes."""
    score = 1000.0
    score -= 120 * abs(candidate.model_instances - 3)
    score -= 80 * abs(candidate.max_batch_size.bit_length() - (16).bit_length())
    score -= 60 * abs([0, 100, 500, 1000, 2000, 5000].index(candidate.max_queue_delay_us) - 1)
    score -= 0 if candidate.preferred == "none" else 50
    score -= 10 * candidate.tokenizer_instances
    if candidate.single_model:
        return Outcome(OVER, 0.0, 80.0, 1)  # the single model never keeps to the budget here
    return Outcome(OK, score, 9.0, 4)


def _run(search, space: Space, objective=_objective, limit: int = 500) -> list[Candidate]:
    known: dict[Candidate, Outcome] = {}
    while (step := search(space, known)).candidate is not None:
        assert step.candidate not in known  # nothing measured twice
        known[step.candidate] = objective(step.candidate)
        assert len(known) < limit
    return list(known)


def test_quick_starts_at_the_default_and_climbs_to_the_peak():
    space = _space()
    measured = _run(lambda s, k: quick_next(s, k, 0.03), space)
    assert measured[0] == space.default
    best = choose({c: _objective(c) for c in measured})
    assert (best.model_instances, best.max_batch_size, best.max_queue_delay_us, best.preferred) == (3, 16, 100, "none")
    assert best.tokenizer_instances == 1
    assert len(measured) < len(space.grid) / 10  # a climb, not a walk of the grid


def test_quick_stops_only_when_no_neighbour_improves():
    space = _space()
    known = {c: _objective(c) for c in _run(lambda s, k: quick_next(s, k, 0.03), space)}
    final = quick_next(space, known, 0.03)
    assert final.candidate is None
    neighbours = [n for d in space.dimensions for n in (
        (space.step(final.current, d.name, 1), space.step(final.current, d.name, -1)) if d.ordered
        else space.others(final.current, d.name)) if n]  # fmt: skip
    assert neighbours and all(n in known for n in neighbours)
    assert not any(better(known[n], known[final.current], 0.03) for n in neighbours)


def test_quick_resumes_from_any_prefix_of_its_own_measurements():
    space = _space()
    full = _run(lambda s, k: quick_next(s, k, 0.03), space)
    for cut in (1, 5, len(full) // 2):
        known = {c: _objective(c) for c in full[:cut]}
        assert quick_next(space, known, 0.03).candidate == full[cut]


def test_quick_on_a_flat_landscape_measures_the_default_and_its_neighbours_only():
    space = _space()

    def flat(candidate):
        return Outcome(OK, 500.0, 5.0, 2)

    measured = _run(lambda s, k: quick_next(s, k, 0.03), space, flat)
    assert measured[0] == space.default
    assert all(space.distance(c)[0] == 1 for c in measured[1:])
    assert choose({c: flat(c) for c in measured}) == space.default  # ties go to the first measured


def test_quick_moves_towards_lower_latency_when_nothing_keeps_to_the_budget():
    space = _space()

    def slow(candidate):  # over the budget everywhere; fewer instances are faster
        return Outcome(OVER, 0.0, 20.0 * candidate.model_instances, 1)

    measured = _run(lambda s, k: quick_next(s, k, 0.03), space, slow)
    assert min(c.model_instances for c in measured) == 1
    assert choose({c: slow(c) for c in measured}) is None


# -------------------------------------------------------------------------------------------- brute


def test_brute_walks_the_whole_grid_nearest_the_default_first():
    space = _space(model_instances=(1, 2), max_queue_delay_us=(500,), max_batch_size=(16, 32), preferred=("ladder",),
                   buckets=("profile",), tokenizer_instances=(2,))  # fmt: skip
    measured = _run(brute_next, space)
    assert measured == list(space.grid) and measured[0] == space.default
    assert len(measured) == 2 * 2 * 2  # instances × max batch × deployment
    assert brute_next(space, {c: _objective(c) for c in measured}).candidate is None


@pytest.mark.parametrize("cut", [0, 3, 7])
def test_brute_resumes_where_it_stopped(cut):
    space = _space(model_instances=(1, 2), max_batch_size=(16, 32), tokenizer_instances=(2,))
    full = list(space.grid)
    assert brute_next(space, {c: _objective(c) for c in full[:cut]}).candidate == full[cut]


def test_a_level_without_numbers_counts_as_over_the_budget():
    budget = Budget(10.0)
    failed = LoadPoint(8, 0.0, 0.0, 0.0, 1.0, failed="no request finished in the windows")
    assert not budget.keeps(failed)
    ok = LoadPoint(4, 400.0, 3.0, 6.0, 0.0)
    assert next_concurrency([ok, failed], budget, 4, 64) == 6  # bisect below the level that gave nothing
    assert Outcome.of([failed], budget) == Outcome(FAILED)
    assert Outcome.of([ok, failed], budget) == Outcome(OK, 400.0, 6.0, 4)
    assert Outcome.of([LoadPoint(1, 5.0, 30.0, 40.0, 0.0), failed], budget) == Outcome(OVER, 0.0, 40.0, 1)
