from pathlib import Path

import pytest

from builder.sources.random_models import RANDOM_MODELS
from client.experiments.study_config import EXAMPLE, StudyConfigError, default_config, parse_config
from client.experiments.study_plan import MEASURED, HostFacts, pending, plan_study, within_budget

H200 = HostFacts(gpu=True, cores=16)


def dims_of(config):
    return {m.name: RANDOM_MODELS[m.source].dims(m.task) for m in config.models}


@pytest.fixture(scope="module")
def seed_plan():
    config = default_config()
    return plan_study(config, dims_of(config), H200)


def test_the_default_study_is_the_seeds_grid_and_more_than_360_configurations(seed_plan):
    counts = seed_plan.counts()
    # 2 models × 6 batches × 5 lengths × 4 precisions, the CPU at the same 60 shapes, fidelity per length,
    # 2 models × 4 precisions × batch {1, 32} × concurrency {1, 4} served at length 128
    assert counts == {"inprocess": 240, "cpu": 60, "fidelity": 40, "memory": 8, "served": 32}
    assert sum(counts[k] for k in MEASURED) == 372
    assert len({p.key for p in seed_plan.points}) == len(seed_plan.points)
    kinds = [p.kind for p in seed_plan.points]
    assert kinds[0] == "cpu" and kinds[-1] == "served"  # the CPU baseline before any CUDA graph exists
    assert {(p.batch_size, p.seq_len) for p in seed_plan.points if p.kind == "served"} == {(1, 128), (32, 128)}
    assert all(p.precision == "fp32" for p in seed_plan.points if p.kind == "cpu")
    assert 5 * 60 < seed_plan.estimate_s() < 15 * 60  # the target for an H200


def test_estimates_grow_with_the_work(seed_plan):
    times = {(p.kind, p.model, p.precision, p.batch_size, p.seq_len): p.estimate_s for p in seed_plan.points}
    assert times["cpu", "bert-base", "fp32", 32, 512] > 10 * times["cpu", "bert-base", "fp32", 1, 32]
    assert times["inprocess", "bert-base", "fp32", 32, 512] > times["inprocess", "bert-base", "fp16", 32, 512]
    assert times["cpu", "gpt2", "fp32", 32, 512] > times["inprocess", "gpt2", "fp32", 32, 512]


def test_shared_setups_count_once(seed_plan):
    served = [p for p in seed_plan.points if p.kind == "served"]
    assert all("server" in p.setups for p in served)
    union = {s for p in served for s in p.setups}
    assert seed_plan.estimate_s(served) == pytest.approx(
        sum(p.estimate_s for p in served) + sum(seed_plan.setup_s[s] for s in union)
    )
    assert seed_plan.estimate_s(served) < sum(
        seed_plan.estimate_s([p]) - seed_plan.setup_s["server"] / 2 for p in served
    )
    config = default_config()
    again = plan_study(config, dims_of(config), H200, built=frozenset(seed_plan.setup_s))  # all set up already
    assert again.estimate_s() == pytest.approx(sum(p.estimate_s for p in again.points))


def test_a_budget_keeps_the_prefix_that_fits_and_says_what_is_left(seed_plan):
    kept, dropped = within_budget(seed_plan, seed_plan.points, 4.0)
    assert kept and dropped and kept + dropped == list(seed_plan.points)
    assert seed_plan.estimate_s(kept) <= 4 * 60 < seed_plan.estimate_s([*kept, dropped[0]])
    assert within_budget(seed_plan, seed_plan.points, None) == (list(seed_plan.points), [])
    assert within_budget(seed_plan, seed_plan.points, 0.0001) == ([], list(seed_plan.points))
    done = {p.key for p in kept}
    assert pending(seed_plan, done) == dropped  # a rerun measures exactly what the budget left out


def test_bf16_is_left_out_where_the_profile_has_none():
    config = parse_config(EXAMPLE.replace('gpu = "h200"', 'gpu = "t4"'), Path.cwd())
    plan = plan_study(config, dims_of(config), H200)
    assert {p.precision for p in plan.points} == {"fp32", "fp16", "hybrid"}
    assert any("bf16" in s and "t4" in s for s in plan.skipped)


def test_a_gpu_profile_without_a_gpu_serves_nothing_here_but_can_measure_elsewhere():
    config = default_config()
    with pytest.raises(StudyConfigError, match="this host has none") as err:
        plan_study(config, dims_of(config), HostFacts(gpu=False, cores=2))
    assert "--url" in err.value.hint
    plan = plan_study(config, dims_of(config), HostFacts(gpu=False, cores=2, local_server=False))
    assert plan.device == "cpu" and plan.setup_s["server"] == 0
    assert any("run on the CPU" in s for s in plan.skipped)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("seq_lens = [32, 64, 128, 256, 512]", "seq_lens = [32, 1024]", "1024 exceeds the 512 positions of bert-base"),
        ("batch_sizes = [1, 2, 4, 8, 16, 32]", "batch_sizes = [1, 256]", "256 exceeds the 128 of GPU profile h200"),
    ],
)
def test_impossible_shapes_fail_before_anything_runs(old, new, message):
    config = parse_config(EXAMPLE.replace(old, new, 1), Path.cwd())
    with pytest.raises(StudyConfigError, match=message):
        plan_study(config, dims_of(config), H200)
