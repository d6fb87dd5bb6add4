from pathlib import Path

import pytest

from builder.common.errors import OutputError
from builder.gpus import get_profile
from builder.modelconfig import parse_config
from builder.plan import plan_repository
from builder.repo_writer import check_conflicts, check_writable, publish, stage_model_files, staging_dir
from builder.source import inspect_model


@pytest.fixture(scope="module")
def plan():
    return plan_repository(inspect_model("minilm", "feature-extraction"), "m", "python-onnxruntime", get_profile("cpu"))


def _artifacts(tag: str):
    return {name: (lambda dest, name=name: dest.write_text(f"{tag}:{name}")) for name in ("onnx", "tokenizer")}


def _write(plan, output: Path, artifacts) -> None:
    with staging_dir(output) as stage:
        stage_model_files(plan, stage, artifacts)
        publish(plan, stage, output)


def test_staged_repository_layout(plan, tmp_path):
    out = tmp_path / "repo"
    _write(plan, out, _artifacts("v1"))
    assert sorted(p.name for p in out.iterdir()) == ["m", "m_model", "m_post", "m_tokenizer"]
    assert (out / "m_model" / "1" / "model.onnx").read_text() == "v1:onnx"
    assert "class TritonPythonModel" in (out / "m_tokenizer" / "1" / "model.py").read_text()
    assert (out / "m" / "1").is_dir()  # ensembles need an (empty) version folder
    for config in out.glob("*/config.pbtxt"):
        parse_config(config.read_text())
    assert not list(tmp_path.glob(".repo.staging-*"))


def test_existing_models_need_force(plan, tmp_path):
    out = tmp_path / "repo"
    _write(plan, out, _artifacts("v1"))
    with pytest.raises(OutputError, match="already has m_tokenizer, m_model, m_post, m") as err:
        check_conflicts(plan, out, force=False)
    assert "--force" in err.value.hint
    check_conflicts(plan, out, force=True)
    _write(plan, out, _artifacts("v2"))
    assert (out / "m_model" / "1" / "model.onnx").read_text() == "v2:onnx"


def test_a_failed_build_leaves_the_good_repository_untouched(plan, tmp_path):
    out = tmp_path / "repo"
    _write(plan, out, _artifacts("good"))
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def broken(dest: Path) -> None:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        _write(plan, out, {**_artifacts("bad"), "tokenizer": broken})
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert not list(tmp_path.glob(".repo.staging-*"))


def test_output_under_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="is not a folder"):
        check_writable(tmp_path / "file" / "repo")


def test_unwritable_output_is_refused():
    with pytest.raises(OutputError, match="cannot write to /proc"):
        check_writable(Path("/proc/tritonbuild-repo"))
