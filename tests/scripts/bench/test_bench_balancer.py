"""The balancer bench's verdict over rounds (scripts/bench/bench_balancer.py)."""

from __future__ import annotations

from scripts.bench.bench_balancer import median_round, turns


def test_the_verdict_is_the_median_round_with_every_round_kept():
    rounds = [{"overhead_p50_ms": v, "seen": i} for i, v in enumerate((0.384, 0.297, 0.342))]
    verdict = median_round(rounds)
    assert verdict["seen"] == 2 and verdict["overhead_p50_ms"] == 0.342
    assert verdict["rounds_ms"] == [0.384, 0.297, 0.342]  # in the order they ran
    assert median_round(rounds[:2])["overhead_p50_ms"] == 0.297  # an even count: the lower middle one


def test_the_paths_take_turns_request_by_request_each_first_as_often():
    order = turns(["direct", "balancer"], 4)
    assert order == ["direct", "balancer", "balancer", "direct", "direct", "balancer", "balancer", "direct"]
    firsts = [order[i] for i in range(0, len(order), 2)]
    assert firsts.count("direct") == firsts.count("balancer")
