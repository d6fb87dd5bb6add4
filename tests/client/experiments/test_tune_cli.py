"""`tritonbench tune` refuses what it cannot search, clearly and before any server starts."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from client.cli import main


def run(*args: str):
    return CliRunner().invoke(main, ["tune", "--p99-ms", "10", *args])


def test_an_empty_or_unreadable_texts_file_is_refused(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    result = run("--texts", str(empty), "--out", str(tmp_path / "out"))
    assert result.exit_code == 1 and "is empty" in result.output and "--mix" in result.output
    result = run("--texts", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "out"))
    assert result.exit_code == 1 and "cannot read the texts file" in result.output
    assert not (tmp_path / "out").exists()


def test_texts_or_a_mix_but_not_both_nor_neither(tmp_path):
    assert run("--out", str(tmp_path)).exit_code == 2
    texts = tmp_path / "t.txt"
    texts.write_text("a text\n")
    assert run("--texts", str(texts), "--mix", "0.5", "--out", str(tmp_path)).exit_code == 2


def test_an_engine_the_bundled_server_cannot_run_is_refused(tmp_path):
    result = run("--mix", "0.8", "--mix-count", "10", "--engine", "onnxruntime", "--out", str(tmp_path / "out"))
    assert result.exit_code == 1 and "only the Python backend" in result.output
    assert "--engine python-onnxruntime or python-torch" in result.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for a host without a GPU")
def test_a_gpu_profile_this_host_cannot_use_is_refused(tmp_path):
    result = run("--mix", "0.8", "--mix-count", "10", "--gpu", "h200", "--engine", "python-torch",
                 "--out", str(tmp_path / "out"))  # fmt: skip
    assert (
        result.exit_code == 1 and "GPU profile h200 places the model on a GPU, and this host has none" in result.output
    )


def test_a_precision_the_profile_lacks_is_refused_by_planning(tmp_path):
    result = run("--mix", "0.8", "--mix-count", "10", "--engine", "python-torch", "--precision", "bf16",
                 "--out", str(tmp_path / "out"))  # fmt: skip
    assert result.exit_code == 1 and "GPU profile cpu has no BF16" in result.output
    assert not (tmp_path / "out").exists()  # refused before anything is written


def test_bad_dimensions_and_names(tmp_path):
    bad = run("--mix", "0.8", "--mix-count", "10", "--dimension", "colour=red", "--out", str(tmp_path))
    assert bad.exit_code == 1 and "no dimension 'colour'" in bad.output
    name = run("--mix", "0.8", "--mix-count", "10", "--name", "tune-1", "--out", str(tmp_path))
    assert name.exit_code == 1 and "cannot name the chosen deployment" in name.output


def test_an_unknown_engine_is_named(tmp_path):
    result = run("--mix", "0.8", "--mix-count", "10", "--engine", "pytorch", "--out", str(tmp_path / "out"))
    assert result.exit_code == 1 and "unknown engine 'pytorch'" in result.output
