import dataclasses

import pytest

from builder.common.errors import ConfigError
from builder.repository.modelconfig import EnsembleStep, ModelConfigSpec, TensorSpec, check_ensemble, parse_config


def _model(name, inputs, outputs, mbs=8):
    return ModelConfigSpec(name=name, backend="python", max_batch_size=mbs, inputs=inputs, outputs=outputs)


TEXT = TensorSpec("TEXT", "TYPE_STRING", (1,))
IDS = TensorSpec("ids", "TYPE_INT64", (-1,))
EMB = TensorSpec("EMB", "TYPE_FP32", (4,))


def _ensemble(steps, outputs=(EMB,)):
    return ModelConfigSpec(
        name="e", platform="ensemble", max_batch_size=8, inputs=(TEXT,), outputs=outputs, steps=steps
    )


GOOD_MEMBERS = {"tok": _model("tok", (TEXT,), (IDS,)), "enc": _model("enc", (IDS,), (EMB,))}
GOOD_STEPS = (
    EnsembleStep("tok", (("TEXT", "TEXT"),), (("ids", "ids"),)),
    EnsembleStep("enc", (("ids", "ids"),), (("EMB", "EMB"),)),
)


def test_good_wiring_passes():
    check_ensemble(_ensemble(GOOD_STEPS), GOOD_MEMBERS)


@pytest.mark.parametrize(
    ("members", "steps", "message"),
    [
        (
            {**GOOD_MEMBERS, "enc": _model("enc", (TensorSpec("ids", "TYPE_INT32", (-1,)),), (EMB,))},
            GOOD_STEPS,
            "dtype TYPE_INT64 vs TYPE_INT32",
        ),
        (
            {**GOOD_MEMBERS, "enc": _model("enc", (TensorSpec("ids", "TYPE_INT64", (-1, 3)),), (EMB,))},
            GOOD_STEPS,
            "dims",
        ),
        (GOOD_MEMBERS, GOOD_STEPS[::-1], "produced by no earlier step"),
        (GOOD_MEMBERS, (GOOD_STEPS[0], EnsembleStep("enc", (("idz", "ids"),), (("EMB", "EMB"),))), "has no input idz"),
        (GOOD_MEMBERS, (GOOD_STEPS[0], EnsembleStep("enc", (), (("EMB", "EMB"),))), "is not mapped"),
        (GOOD_MEMBERS, (GOOD_STEPS[0], EnsembleStep("nope", (), ())), "not in the repository"),
        ({**GOOD_MEMBERS, "enc": _model("enc", (IDS,), (EMB,), mbs=4)}, GOOD_STEPS, "max_batch_size 4"),
    ],
)
def test_broken_wiring_is_reported(members, steps, message):
    with pytest.raises(ConfigError, match=message):
        check_ensemble(_ensemble(steps), members)


def test_every_problem_is_listed_at_once():
    bad = {**GOOD_MEMBERS, "enc": _model("enc", (TensorSpec("ids", "TYPE_INT32", (-1,)),), (EMB,), mbs=2)}
    with pytest.raises(ConfigError) as err:
        check_ensemble(_ensemble(GOOD_STEPS, outputs=(EMB, TensorSpec("MISSING", "TYPE_FP32", (1,)))), bad)
    text = err.value.message
    assert "dtype" in text and "max_batch_size 2" in text and "MISSING" in text


def test_specs_validate_on_construction():
    with pytest.raises(ConfigError, match="unknown dtype"):
        TensorSpec("x", "TYPE_FLOAT", (1,))
    with pytest.raises(ConfigError, match="invalid dims"):
        TensorSpec("x", "TYPE_FP32", (0,))
    with pytest.raises(ConfigError, match="exactly one of backend or platform"):
        dataclasses.replace(GOOD_MEMBERS["tok"], platform="ensemble")
    with pytest.raises(ConfigError, match="duplicate"):
        _model("m", (IDS,), (IDS,))


def test_parse_config_uses_tritons_schema():
    assert parse_config('name: "m"\nmax_batch_size: 4\n').max_batch_size == 4
    with pytest.raises(ConfigError, match="ModelConfig schema"):
        parse_config('name: "m"\nmax_batch: 4\n')
