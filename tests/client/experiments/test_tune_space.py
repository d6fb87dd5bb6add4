"""The tune search space: defaults are the GPU profile's, buckets follow the texts' lengths, neighbours and grid."""

from __future__ import annotations

import pytest

from builder.gpus import PROFILES, get_profile
from builder.repository.options import ServingOptions
from client.experiments.tune_space import (
    ORDER,
    Candidate,
    SpaceError,
    SpaceInputs,
    build_space,
    parse_restriction,
    preferred_sizes,
    profile_policy,
    quantile_buckets,
)

# 80 % short texts (about 12 tokens), 20 % long ones (about 200): a mix of queries and documents
LENGTHS = tuple([12] * 40 + [9] * 20 + [17] * 20 + [180] * 10 + [230] * 10)


def _space(gpu="cpu", engine="python-onnxruntime", p99_ms=20.0, **restrict):
    return build_space(SpaceInputs(get_profile(gpu), engine, 256, LENGTHS, p99_ms, restrict))


@pytest.mark.parametrize("name", list(PROFILES))
def test_every_profiles_preferred_sizes_follow_a_policy(name):
    gpu = PROFILES[name]
    assert preferred_sizes(profile_policy(gpu), gpu.max_batch_size) == gpu.preferred_batch_sizes


def test_preferred_policies():
    assert preferred_sizes("none", 32) == ()
    assert preferred_sizes("ladder", 32) == (8, 16, 32) and preferred_sizes("ladder", 2) == (1, 2)
    assert preferred_sizes("powers", 24) == (1, 2, 4, 8, 16, 24)


def test_quantile_buckets_follow_the_lengths_and_end_at_the_models_limit():
    assert quantile_buckets(LENGTHS, 2, 256) == (16, 232, 256)  # median 12 → 16; the longest 230 → 232
    assert quantile_buckets(LENGTHS, 4, 256) == (16, 24, 232, 256)
    assert quantile_buckets([300, 400], 2, 256) == (256,)  # capped at the model's length
    with pytest.raises(SpaceError):
        quantile_buckets([], 2, 256)


def test_the_default_candidate_is_the_profiles_configuration():
    for gpu in ("cpu", "h200"):
        profile = get_profile(gpu)
        default = _space(gpu).default
        assert (default.model_instances, default.max_batch_size, default.max_queue_delay_us) == (
            profile.model_instances, profile.max_batch_size, profile.max_queue_delay_us)  # fmt: skip
        assert default.preferred_batch_sizes == profile.preferred_batch_sizes
        assert default.buckets == profile.buckets_up_to(256) and not default.single_model
        assert default.tokenizer_instances == profile.tokenizer_instances


def test_default_candidate_plans_exactly_the_profiles_repository():
    from builder.repository.plan import plan_repository
    from builder.sources.source import inspect_model

    info = inspect_model("minilm", "feature-extraction")
    space = _space("h200", "python-torch", p99_ms=10)
    plain = plan_repository(info, "m", "python-torch", get_profile("h200"), "fp16")
    tuned = plan_repository(
        info, "m", "python-torch", get_profile("h200"), "fp16", space.default.serving(ServingOptions())
    )
    assert tuned.models == plain.models


def test_dimensions_the_budget_and_the_engine_allow():
    space = _space(p99_ms=2.0)
    assert [d.name for d in space.dimensions] == list(ORDER)
    assert space.dimension("max_queue_delay_us").values == (0, 100, 500, 1000)  # ≤ half of 2 ms
    assert space.dimension("single_model").values == (False,)  # the ensemble only, without python-torch
    assert _space(engine="python-torch").dimension("single_model").values == (False, True)
    assert space.dimension("max_batch_size").values == (4, 8, 16, 32, 64)  # up to twice the profile's
    buckets = space.dimension("buckets").values
    assert buckets[0] == get_profile("cpu").buckets_up_to(256) and (16, 232, 256) in buckets
    assert len(set(buckets)) == len(buckets)  # a scheme giving the same buckets as another is left out
    assert space.bucket_name((16, 24, 232, 256)) == "q4"


def test_restricted_dimensions_keep_the_default():
    space = _space(max_batch_size=(8,), preferred=("none",), buckets=("q2",))
    assert space.dimension("max_batch_size").values == (8, 32)
    assert space.dimension("preferred").values == ("ladder", "none")  # a choice: the default first
    assert space.dimension("buckets").values == (space.default.buckets, (16, 232, 256))
    with pytest.raises(SpaceError, match="no single-model deployment"):
        _space(single_model=(True,))


def test_parse_restriction():
    assert parse_restriction("max-batch-size=8,16") == ("max_batch_size", (8, 16))
    assert parse_restriction("single_model=ensemble,single") == ("single_model", (False, True))
    assert parse_restriction("buckets=profile,q4") == ("buckets", ("profile", "q4"))
    assert parse_restriction("max_queue_delay_us=0") == ("max_queue_delay_us", (0,))
    for bad, message in [("nope=1", "no dimension"), ("model_instances=0", ">= 1"), ("preferred=all", "no value"),
                         ("max_batch_size", "NAME=V1,V2")]:  # fmt: skip
        with pytest.raises(SpaceError, match=message):
            parse_restriction(bad)


def test_neighbours_step_ordered_dimensions_and_swap_choices():
    space = _space(engine="python-torch")
    d = space.default
    assert space.step(d, "max_batch_size", 1).max_batch_size == 64
    assert space.step(d, "max_batch_size", -1).max_batch_size == 16
    assert space.step(space.step(d, "model_instances", -1), "model_instances", -1) is None  # 1 is the lowest
    assert {c.preferred for c in space.others(d, "preferred")} == {"none", "powers"}
    single = space.others(d, "single_model")[0]
    assert single.single_model and space.others(single, "tokenizer_instances") == []  # no tokenizer step to scale
    assert space.step(single, "tokenizer_instances", 1) is None
    stepped = space.step(d, "tokenizer_instances", 1)
    assert space.canonical(Candidate(**{**stepped.__dict__, "single_model": True})) == single


def test_the_grid_holds_every_candidate_once_nearest_the_default_first():
    space = _space(model_instances=(1, 2), max_queue_delay_us=(0, 500), max_batch_size=(16, 32), preferred=("ladder",),
                   buckets=("profile", "q2"), tokenizer_instances=(2,))  # fmt: skip
    grid = space.grid
    assert grid[0] == space.default and len(grid) == len(set(grid)) == 2 * 2 * 2 * 2
    distances = [space.distance(c) for c in grid]
    assert distances == sorted(distances)
    single = _space(engine="python-torch", tokenizer_instances=(1, 2), model_instances=(2,), max_queue_delay_us=(500,),
                    max_batch_size=(32,), preferred=("ladder",), buckets=("profile",))  # fmt: skip
    assert len(single.grid) == 2 + 1  # the ensemble with 1 or 2 tokenizers; the single model once


def test_candidate_identity_options_and_round_trip():
    space = _space()
    d = space.default
    assert d.name == f"tune-{d.id}" and len(d.id) == 8 and space.step(d, "model_instances", 1).id != d.id
    assert Candidate.from_dict(d.to_dict()) == d
    options = d.serving(ServingOptions(kernels="hf"))
    assert options.kernels == "hf" and options.max_batch_size == 32 and options.preferred_batch_sizes == (8, 16, 32)
    assert options.seq_buckets == d.buckets and options.tokenizer_instances == 2
    assert "2 inst, batch ≤32 (pref 8,16,32), delay 500 µs" in d.label()
