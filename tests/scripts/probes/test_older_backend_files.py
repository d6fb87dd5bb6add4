"""Serving an older commit's backend files in a repository make_repo wrote (scripts/probes/older_backend_files.py)."""

from __future__ import annotations

import pytest

from scripts.probes.older_backend_files import TEMPLATES, use_older_backend_files


def test_each_backend_file_is_replaced_by_its_older_namesake_and_nothing_else_is_touched(tmp_path):
    version = tmp_path / "repo" / "bert_model" / "1"
    version.mkdir(parents=True)
    (version / "model.py").write_text((TEMPLATES / "torch_model.py").read_text())  # what make_repo copies
    (version / "tritonbuild_backend.py").write_text((TEMPLATES / "tritonbuild_backend.py").read_text())
    (version / "edited.py").write_text("# not a template\n")
    (version / "config.json").write_text("{}")
    older = tmp_path / "older"
    older.mkdir()
    (older / "torch_model.py").write_text("# the older torch_model\n")
    (older / "tritonbuild_backend.py").write_text("# the older helper\n")

    replaced = use_older_backend_files(tmp_path / "repo", older)

    assert sorted(p.name for p in replaced) == ["model.py", "tritonbuild_backend.py"]
    assert (version / "model.py").read_text() == "# the older torch_model\n"
    assert (version / "tritonbuild_backend.py").read_text() == "# the older helper\n"
    assert (version / "edited.py").read_text() == "# not a template\n"
    assert (version / "config.json").read_text() == "{}"


def test_a_missing_folder_is_refused_before_anything_is_replaced(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder of backend files"):
        use_older_backend_files(tmp_path, tmp_path / "absent")
