from pathlib import Path

import pytest

from client.experiments.study_config import EXAMPLE, StudyConfigError, default_config, load_config, parse_config


def test_the_example_is_the_seeds_design():
    config = default_config()
    assert [(m.name, m.source, m.task) for m in config.models] == [
        ("bert-base", "bert-base", "text-classification"),
        ("gpt2", "gpt2", "causal-lm"),
    ]
    assert config.precisions == ("fp32", "fp16", "hybrid", "bf16")
    assert config.inprocess.shapes.batch_sizes == (1, 2, 4, 8, 16, 32)
    assert config.inprocess.shapes.seq_lens == (32, 64, 128, 256, 512)
    assert config.cpu.shapes == config.inprocess.shapes  # the CPU baseline at the same shapes
    assert (config.served.shapes.batch_sizes, config.served.shapes.seq_lens) == ((1, 32), (128,))
    assert config.fidelity.seq_lens == config.inprocess.shapes.seq_lens


def edited(old: str, new: str) -> str:
    assert old in EXAMPLE
    return EXAMPLE.replace(old, new, 1)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("seconds = 0.25", "secnds = 0.25", r"\[inprocess\] has unknown keys: secnds"),
        ('engines = ["python-torch"]', 'engines = ["onnxruntime"]', "measures python-torch only"),
        ('"hybrid", "bf16"]', '"hybrid", "int4"]', "unknown precisions"),
        ('gpu = "h200"', 'gpu = "h900"', "unknown GPU profile"),
        ("batch_sizes = [1, 2, 4, 8, 16, 32]", "batch_sizes = [1, 0]", "positive integers"),
        ("texts = 64", 'texts = "many"', "is not a int"),
        ('name = "gpt2"', 'name = "bert-base"', "model names repeat"),
        ('name = "gpt2"', 'name = "gpt 2!"', "model name 'gpt 2!'"),
        ("window_s = 0.5", "window_s = 0", r"\[served\] window"),
        ('protocol = "grpc"', 'protocol = "udp"', "protocol = 'udp'"),
        ("[report]", "[report\n", "not valid TOML"),
    ],
)
def test_mistakes_are_named(old, new, message):
    with pytest.raises(StudyConfigError, match=message):
        parse_config(edited(old, new), Path.cwd())


def test_sections_override_the_study_shapes_and_paths_are_the_files(tmp_path):
    text = edited("[cpu]\n", "[cpu]\nbatch_sizes = [1]\nseq_lens = [32]\n")
    text = text.replace('vocab = ""', 'vocab = "vocab"')
    text = text.replace('source = "gpt2"', 'source = "./models/my-gpt2"')
    (tmp_path / "study.toml").write_text(text)
    config = load_config(tmp_path / "study.toml")
    assert (config.cpu.shapes.batch_sizes, config.cpu.shapes.seq_lens) == ((1,), (32,))
    assert config.inprocess.shapes.seq_lens == (32, 64, 128, 256, 512)
    assert config.vocab == tmp_path / "vocab"
    assert config.models[1].source == str(tmp_path / "models" / "my-gpt2")


def test_a_missing_file_says_how_to_make_one(tmp_path):
    with pytest.raises(StudyConfigError, match="cannot read") as err:
        load_config(tmp_path / "nope.toml")
    assert "--example" in err.value.hint
