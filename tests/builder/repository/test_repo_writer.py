import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import builder.repository.repo_writer as repo_writer
from builder.common.errors import OutputError
from builder.gpus import get_profile
from builder.repository.modelconfig import parse_config
from builder.repository.pipeline import make_repo
from builder.repository.plan import plan_repository
from builder.repository.repo_writer import (
    LOCK_FILE,
    check_conflicts,
    check_writable,
    publish,
    stage_model_files,
    staging_dir,
)
from builder.sources.source import inspect_model

ROOT = Path(__file__).parents[3]


@pytest.fixture(scope="module")
def plan():
    return plan_repository(inspect_model("minilm", "feature-extraction"), "m", "python-onnxruntime", get_profile("cpu"))


def _artifacts(tag: str):
    return {name: (lambda dest, name=name: dest.write_text(f"{tag}:{name}")) for name in ("onnx", "tokenizer")}


def _write(plan, output: Path, artifacts, force: bool = True) -> None:
    with staging_dir(output) as stage:
        stage_model_files(plan, stage, artifacts)
        publish(plan, stage, output, force)


def _snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every path under `folder` (None for a folder) with its bytes: equal snapshots, byte-for-byte equal trees."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


def test_staged_repository_layout(plan, tmp_path):
    out = tmp_path / "repo"
    _write(plan, out, _artifacts("v1"))
    assert sorted(p.name for p in out.iterdir()) == [LOCK_FILE, "m", "m_model", "m_post", "m_tokenizer"]
    assert (out / "m_model" / "1" / "model.onnx").read_text() == "v1:onnx"
    assert "class TritonPythonModel" in (out / "m_tokenizer" / "1" / "model.py").read_text()
    assert (out / "m" / "1").is_dir()  # ensembles need an (empty) version folder
    for config in out.glob("*/config.pbtxt"):
        parse_config(config.read_text())
    assert sorted(p.name for p in out.glob(".*")) == [LOCK_FILE]  # no staging or replaced folder left


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
    assert sorted(p.name for p in out.glob(".*")) == [LOCK_FILE]


class Injected(Exception):
    pass


@pytest.mark.parametrize("failure", [Injected, KeyboardInterrupt])
def test_a_failure_at_any_step_of_a_publish_leaves_the_old_repository(plan, tmp_path, monkeypatch, failure):
    out = tmp_path / "repo"
    _write(plan, out, _artifacts("old"))
    old = _snapshot(out)
    real_replace, real_mkdtemp = os.replace, tempfile.mkdtemp
    renames = 2 * len(plan.models)  # each old folder aside, each new one in
    for step in range(renames + 1):  # every rename, and the folder the old ones are put aside in
        calls = []

        def replace(source, dest, step=step, calls=calls):
            calls.append(source)
            if len(calls) == step + 1 and len(calls) <= renames:  # fail this rename; the undo's renames succeed
                raise failure()
            return real_replace(source, dest)

        def mkdtemp(*args, step=step, **kwargs):
            if step == renames and kwargs.get("prefix") == repo_writer.REPLACED_PREFIX:
                raise failure()
            return real_mkdtemp(*args, **kwargs)

        monkeypatch.setattr(repo_writer.os, "replace", replace)
        monkeypatch.setattr(repo_writer.tempfile, "mkdtemp", mkdtemp)
        with pytest.raises(failure):
            _write(plan, out, _artifacts("new"))
        monkeypatch.undo()
        assert _snapshot(out) == old, f"failure at step {step}: the old repository changed"
    _write(plan, out, _artifacts("new"))  # and without a failure, the new one, whole
    assert (out / "m_model" / "1" / "model.onnx").read_text() == "new:onnx"
    assert sorted(p.name for p in out.glob(".*")) == [LOCK_FILE]


def test_a_failure_after_the_renames_keeps_the_new_repository(plan, tmp_path, monkeypatch):
    out = tmp_path / "repo"
    _write(plan, out, _artifacts("old"))
    real_rmtree = shutil.rmtree

    def rmtree(path, *args, **kwargs):  # the clean-up of the replaced folders is interrupted
        if Path(path).name.startswith(repo_writer.REPLACED_PREFIX):
            raise KeyboardInterrupt
        return real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(repo_writer.shutil, "rmtree", rmtree)
    published = []
    with pytest.raises(KeyboardInterrupt), staging_dir(out) as stage:
        stage_model_files(plan, stage, _artifacts("new"))
        publish(plan, stage, out, True, on_published=lambda: published.append(True))
    assert published == [True]  # the caller knows the repository is the new one, whatever came after
    assert (out / "m_model" / "1" / "model.onnx").read_text() == "new:onnx"


def test_a_conflict_that_appears_during_the_build_is_seen_under_the_lock(plan, tmp_path):
    out = tmp_path / "repo"
    check_conflicts(plan, out, force=False)  # nothing there when the build starts
    with staging_dir(out) as stage:
        stage_model_files(plan, stage, _artifacts("second"))
        _write(plan, out, _artifacts("first"), force=False)  # another make-repo publishes meanwhile
        before = _snapshot(out)
        with pytest.raises(OutputError, match="already has m_tokenizer"):
            publish(plan, stage, out, force=False)
        assert _snapshot(out) == before
    assert (out / "m_model" / "1" / "model.onnx").read_text() == "first:onnx"


def test_a_failed_build_leaves_no_empty_output_folder(plan, tmp_path):
    out = tmp_path / "new" / "repo"
    with pytest.raises(OSError, match="disk full"), staging_dir(out):
        raise OSError("disk full")
    assert not out.exists()
    existing = tmp_path / "existing"
    existing.mkdir()
    with pytest.raises(OSError, match="disk full"), staging_dir(existing):
        raise OSError("disk full")
    assert existing.is_dir()  # what the user made is theirs to remove


def test_output_under_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="is not a folder"):
        check_writable(tmp_path / "file" / "repo")


def test_unwritable_output_is_refused():
    with pytest.raises(OutputError, match="cannot write /proc/tritonbuild-repo in /proc"):
        check_writable(Path("/proc/tritonbuild-repo"))


@pytest.fixture
def mounts(tmp_path):
    """Mount tmpfs file systems (root only); all unmounted at the end, innermost first."""
    mounted: list[Path] = []

    def mount(where: Path, *options: str) -> Path:
        where.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(("size=64m", *options)), "tmpfs", str(where)])
        if result.returncode != 0:
            pytest.skip("mounting a tmpfs needs root")
        mounted.append(where)
        return where

    yield mount
    for where in reversed(mounted):
        subprocess.run(["umount", "-l", str(where)], check=True)


def _make_repo(tiny_models, output: Path, force: bool = False, echo=lambda _: None) -> None:
    make_repo(
        str(tiny_models["distilbert"]),
        "text-classification",
        "d",
        "python-onnxruntime",
        "cpu",
        output,
        force=force,
        trust_remote_code=False,
        echo=echo,
    )


@pytest.mark.slow
def test_a_mount_point_whose_parent_is_read_only_takes_a_repository(tiny_models, tmp_path, mounts):
    """/models as Docker or Kubernetes mount it: a volume of its own, on a read-only root."""
    parent = mounts(tmp_path / "root")
    models = mounts(parent / "models")
    subprocess.run(["mount", "-o", "remount,ro", str(parent)], check=True)
    with pytest.raises(OSError):
        (parent / "x").write_text("")  # the parent is read-only indeed
    _make_repo(tiny_models, models)
    assert sorted(p.name for p in models.iterdir()) == [LOCK_FILE, "d", "d_model", "d_post", "d_tokenizer"]


def test_a_read_only_place_is_refused_before_any_work(tmp_path, mounts):
    read_only = mounts(tmp_path / "ro", "ro")
    with pytest.raises(OutputError, match="read-only file system") as err:
        check_writable(read_only / "repo")
    assert "--output" in err.value.hint


@pytest.mark.slow
def test_two_make_repo_runs_into_one_folder_publish_once(tiny_models, tmp_path):
    out = tmp_path / "repo"
    command = [sys.executable, "-m", "builder", "make-repo", "--model", str(tiny_models["distilbert"])]
    command += ["--task", "text-classification", "--name", "d", "--output", str(out)]
    runs = [subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for _ in range(2)]  # fmt: skip
    results = [(run.wait(timeout=600), run.stdout.read()) for run in runs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 1], results
    failed = next(output for code, output in results if code == 1)
    assert "already has d_tokenizer" in failed and "--force" in failed and "is unchanged" in failed
    assert sorted(p.name for p in out.iterdir()) == [LOCK_FILE, "d", "d_model", "d_post", "d_tokenizer"]


@pytest.mark.slow
def test_ctrl_c_during_a_build_says_the_output_is_unchanged(tiny_models, tmp_path, monkeypatch):
    out = tmp_path / "repo"
    lines: list[str] = []

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("builder.repository.pipeline.stage_model_files", interrupt)
    with pytest.raises(KeyboardInterrupt):
        _make_repo(tiny_models, out, echo=lines.append)
    assert lines[-1] == f"interrupted: {out} is unchanged, nothing was published" and not out.exists()
