"""YAML text that yamllint's defaults accept, and the files deploy writes."""

import pytest
import yaml
from k8s_validation import yamllint_problems

from builder.common.errors import OutputError
from builder.deploy.yaml_text import dump, write_objects

OBJ = {"a": [{"b": 1, "c": ["x", "y"]}], "text": "line one\nline two\n", "same": [1, 2], "again": [1, 2]}


def test_dump_is_lint_clean_and_reads_back():
    text = dump(OBJ, start=True)
    assert yamllint_problems(text) == []
    assert yaml.safe_load(text) == OBJ
    assert "  - b: 1" in text and "text: |" in text and "&" not in text  # indented sequences, no anchors
    assert yamllint_problems(yaml.safe_dump(OBJ))  # what PyYAML writes by default is not


def test_files_are_written_once_unless_forced(tmp_path):
    paths = write_objects({"x.yaml": OBJ, "sub/y.yaml": {"k": "v"}}, tmp_path, "header", force=False)
    assert [p.relative_to(tmp_path).as_posix() for p in paths] == ["x.yaml", "sub/y.yaml"]
    assert paths[0].read_text().startswith("# header\n---\n") and yaml.safe_load(paths[1].read_text()) == {"k": "v"}
    with pytest.raises(OutputError, match="exists") as err:
        write_objects({"x.yaml": OBJ}, tmp_path, "header", force=False)
    assert "--force" in err.value.hint
    write_objects({"x.yaml": {"k": 2}}, tmp_path, "header", force=True)
    assert yaml.safe_load(paths[0].read_text()) == {"k": 2}
