import json

import pytest
import torch
from click.testing import CliRunner

from builder.cli import main
from builder.profile import KINDS, module_kind


def test_module_kinds():
    assert module_kind("embeddings.word_embeddings", torch.nn.Embedding(10, 4)) == "embeddings"
    assert module_kind("encoder.layer.0.attention.self.query", torch.nn.Linear(4, 4)) == "attention projections"
    assert module_kind("encoder.layer.0.intermediate.dense", torch.nn.Linear(4, 4)) == "mlp"
    assert module_kind("encoder.layer.0.output.LayerNorm", torch.nn.LayerNorm(4)) == "layernorm"
    assert module_kind("classifier", torch.nn.Linear(4, 2)) == "head"
    assert module_kind("encoder.layer.0.intermediate.intermediate_act_fn", torch.nn.GELU()) is None


@pytest.mark.slow
def test_profile_command_on_the_cpu(tiny_models, tmp_path):
    result = CliRunner().invoke(
        main,
        [
            "profile",
            "--model",
            str(tiny_models["distilbert"]),
            "--task",
            "text-classification",
            "--batch",
            "2",
            "--seq-len",
            "32",
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "profile.json").read_text())
    assert set(data["kinds_ms"]) == set(KINDS) and data["forward_ms"] > 0
    assert sum(data["kinds_ms"].values()) == pytest.approx(data["forward_ms"], rel=0.01)
    assert data["kinds_ms"]["mlp"] > 0 and data["kinds_ms"]["attention projections"] > 0
    assert data["kinds_ms"]["head"] > 0 and data["top"] and "addmm" in (tmp_path / "profile.md").read_text()


def test_profile_on_a_missing_gpu_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = CliRunner().invoke(main, ["profile", "--device", "cuda"])
    assert result.exit_code == 1 and "no CUDA device" in result.output


@pytest.mark.slow
def test_profile_of_the_fused_kernels_names_their_parts(tiny_models, tmp_path):
    args = ["profile", "--model", str(tiny_models["distilbert"]), "--task", "text-classification", "--batch", "2"]
    result = CliRunner().invoke(main, [*args, "--seq-len", "32", "--kernels", "fused", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    kinds = json.loads((tmp_path / "profile.json").read_text())["kinds_ms"]
    for kind in ("embeddings", "attention projections", "mlp", "layernorm", "head"):
        assert kinds[kind] > 0, kind  # the fused trunk's own ranges, and the model's head module
    gpt2 = ["profile", "--model", str(tiny_models["gpt2"]), "--task", "text-classification", "--kernels", "fused"]
    refused = CliRunner().invoke(main, gpt2)
    assert refused.exit_code == 1 and "--kernels hf" in refused.output
