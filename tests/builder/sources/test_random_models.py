import pytest
import torch

from builder.common.errors import ModelSourceError
from builder.sources.random_models import RANDOM_MODELS, get_random_model, make_random_model, wordpiece_folder
from builder.sources.source import inspect_model, load_graph_module


def test_a_built_in_model_is_made_once_with_its_head_and_bert_vocabulary(tmp_path):
    dest = make_random_model("minilm-sized", "text-classification", tmp_path / "m")
    info = inspect_model(str(dest), "text-classification")
    assert (info.model_type, info.hidden_size, info.vocab_size, info.max_length) == ("bert", 384, 30522, 512)
    assert info.labels == ("negative", "positive")
    model = load_graph_module(info).model
    counted = sum(p.numel() for p in model.base_model.parameters())
    assert RANDOM_MODELS["minilm-sized"].dims("text-classification").parameters == pytest.approx(counted, rel=0.03)
    stamp = (dest / "model.safetensors").stat().st_mtime_ns
    assert make_random_model("minilm-sized", "text-classification", dest) == dest
    assert (dest / "model.safetensors").stat().st_mtime_ns == stamp  # reused, not rewritten
    assert not list(tmp_path.glob(".*partial"))


def test_weights_are_seeded(tmp_path):
    first = make_random_model("minilm-sized", "feature-extraction", tmp_path / "a")
    second = make_random_model("minilm-sized", "feature-extraction", tmp_path / "b")
    assert (first / "model.safetensors").read_bytes() == (second / "model.safetensors").read_bytes()


@pytest.mark.slow
def test_gpt2_keeps_its_full_embedding_table_and_pads_with_eos(tmp_path):
    dest = make_random_model("gpt2", "causal-lm", tmp_path / "gpt2")
    info = inspect_model(str(dest), "causal-lm")
    assert (info.vocab_size, info.max_length, info.hidden_size) == (50257, 1024, 768)
    module = load_graph_module(info)
    ids = torch.tensor([[info.pad_id, 50256, 17]])  # an id above the BPE's own vocabulary is still valid
    with torch.inference_mode():
        assert module(ids, torch.ones_like(ids)).shape == (1, 50257)


def test_unknown_models_and_incomplete_vocabularies_are_refused(tmp_path):
    with pytest.raises(ModelSourceError, match="no built-in model 'bert-large'") as err:
        get_random_model("bert-large")
    assert "bert-base" in err.value.hint
    (tmp_path / "vocab.txt").write_text("[PAD]\n")
    with pytest.raises(ModelSourceError, match="lacks tokenizer.json"):
        wordpiece_folder(tmp_path)
    with pytest.raises(ModelSourceError, match="task 'causal-lm' is not supported for 'bert'"):
        RANDOM_MODELS["bert-base"].dims("causal-lm")
