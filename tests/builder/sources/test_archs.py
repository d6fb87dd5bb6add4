import pytest

from builder.common.errors import ModelSourceError
from builder.sources.archs import ARCHS, get_arch
from builder.sources.tasks import TASKS


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


@pytest.mark.parametrize("model_type", ["bert", "distilbert", "gpt2"])
def test_dims_count_the_weights_of_the_default_configs(model_type):
    import torch
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.for_model(model_type)
    with torch.device("meta"):  # sizes only: no memory for 100M weights
        model = AutoModel.from_config(config)
    counted = sum(p.numel() for p in model.parameters())
    dims = get_arch(model_type, "feature-extraction").dims(config)
    assert dims.parameters == pytest.approx(counted, rel=0.03)  # biases, norms, positions left out
    assert dims.max_positions == {"bert": 512, "distilbert": 512, "gpt2": 1024}[model_type]


@pytest.mark.parametrize("model_type", ["bert", "gpt2"])
def test_forward_flops_match_what_torch_counts(model_type):
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import AutoConfig, AutoModel

    small = {"bert": {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 96},
             "gpt2": {"n_embd": 64, "n_layer": 2, "n_head": 2}}[model_type]  # fmt: skip
    config = AutoConfig.for_model(model_type, **small)
    model = AutoModel.from_config(config, attn_implementation="eager").eval()  # attention as counted matmuls
    ids = torch.ones((3, 40), dtype=torch.long)
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(input_ids=ids, attention_mask=torch.ones_like(ids))
    dims = get_arch(model_type, "feature-extraction").dims(config)
    assert dims.forward_flops(3, 40) == pytest.approx(counter.get_total_flops(), rel=0.02)
