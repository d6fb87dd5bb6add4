import pytest

from builder.archs import ARCHS, get_arch
from builder.common.errors import ModelSourceError
from builder.tasks import TASKS


def test_every_registered_architecture_has_a_test_model(tiny_models):
    # Registering an architecture without a model to test it with fails here.
    assert set(ARCHS) <= set(tiny_models), f"no test model for {set(ARCHS) - set(tiny_models)}"


def test_registered_tasks_exist():
    for spec in ARCHS.values():
        assert set(spec.tasks) <= set(TASKS)


def test_unsupported_architecture_and_task():
    with pytest.raises(ModelSourceError, match="unsupported architecture 't5'") as err:
        get_arch("t5", "feature-extraction")
    assert "bert" in err.value.hint
    with pytest.raises(ModelSourceError, match="not supported for 'bert'"):
        get_arch("bert", "causal-lm")
