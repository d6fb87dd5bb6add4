import json
import shutil
from fractions import Fraction

import pytest

from builder.common.errors import ModelSourceError
from builder.sources.source import inspect_model, load_graph_module, resolve_path


def test_bundled_minilm():
    info = inspect_model("minilm", "feature-extraction")
    assert info.model_type == "bert" and info.hidden_size == 384 and info.vocab_size == 30522
    assert info.max_length == 256  # sentence-transformers' max_seq_length, below the 512 positions
    assert info.pad_id == 0 and info.output_width == 384


def test_gpt2_pads_with_eos_and_classifier_has_labels(tiny_models):
    gpt2 = inspect_model(str(tiny_models["gpt2"]), "causal-lm")
    assert gpt2.pad_id == 0  # <|endoftext|> is the first token the BPE trainer added
    assert gpt2.output_width == gpt2.vocab_size and gpt2.max_length == 256
    cls = inspect_model(str(tiny_models["distilbert"]), "text-classification")
    assert cls.labels == ("negative", "neutral", "positive") and cls.output_width == 3


def test_missing_folder(tmp_path):
    with pytest.raises(ModelSourceError, match="model folder not found"):
        inspect_model(str(tmp_path / "nope"), "feature-extraction")


def test_folder_without_config(tmp_path):
    with pytest.raises(ModelSourceError, match="has no config.json"):
        resolve_path(str(tmp_path))


def test_unavailable_hub_id_says_what_to_do():
    with pytest.raises(ModelSourceError, match="not a local folder") as err:
        resolve_path("no-such-org/no-such-model-xyz")
    assert "download" in err.value.hint


def test_unsupported_architecture(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "t5"}))
    with pytest.raises(ModelSourceError, match="unsupported architecture 't5'"):
        inspect_model(str(tmp_path), "feature-extraction")


def test_unsupported_task():
    with pytest.raises(ModelSourceError, match="unsupported task 'translation'"):
        inspect_model("minilm", "translation")
    with pytest.raises(ModelSourceError, match="not supported for 'bert'"):
        inspect_model("minilm", "causal-lm")


def test_remote_code_needs_explicit_trust(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "auto_map": {"AutoModel": "x.Y"}}))
    with pytest.raises(ModelSourceError, match="needs its own Python code") as err:
        inspect_model(str(tmp_path), "feature-extraction")
    assert "--trust-remote-code" in err.value.hint


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"model_type": "distilbert",', r"config.json is not valid JSON: Expecting .* \(line 1, column 29\)"),
        ("[1, 2]", "config.json holds a JSON list, not an object"),
        ("\udcff", "config.json is not valid JSON: not UTF-8 text"),
    ],
)
def test_a_damaged_config_json_is_a_clear_error(tiny_models, tmp_path, text, message):
    folder = tmp_path / "model"
    shutil.copytree(tiny_models["distilbert"], folder)
    (folder / "config.json").write_bytes(text.encode(errors="surrogateescape"))
    with pytest.raises(ModelSourceError, match=message) as err:
        inspect_model(str(folder), "text-classification")
    assert "restore" in err.value.hint


def test_pickle_weights_that_torch_refuses_are_a_clear_error(tiny_models, tmp_path):
    import torch
    from safetensors.torch import load_file

    folder = tmp_path / "model"
    shutil.copytree(tiny_models["distilbert"], folder)
    weights = load_file(folder / "model.safetensors")
    (folder / "model.safetensors").unlink()
    torch.save({"state": weights, "extra": Fraction(1, 3)}, folder / "pytorch_model.bin")  # more than tensors
    info = inspect_model(str(folder), "text-classification")
    with pytest.raises(ModelSourceError, match="only a PyTorch pickle") as err:
        load_graph_module(info)
    assert "model.safetensors" in err.value.hint
