import numpy as np
from tritonbuild_backend import group_by_length, split_rows


def test_requests_are_grouped_by_sequence_length_in_order():
    assert group_by_length([(1, 16), (2, 32), (4, 16), (1, 64)]) == {16: [0, 2], 32: [1], 64: [3]}


def test_split_rows_undoes_concatenation():
    parts = [np.full((n, 3), n) for n in (1, 4, 2)]
    back = split_rows(np.concatenate(parts), [1, 4, 2])
    assert [p.tolist() for p in back] == [p.tolist() for p in parts]


def test_a_package_that_fails_to_import_is_marked_absent(tmp_path, monkeypatch):
    import importlib.util
    import sys

    from tritonbuild_backend import hide_unimportable

    broken = tmp_path / "broken_pkg"
    broken.mkdir()
    (broken / "__init__.py").write_text("from . import part\nraise ImportError('built for another numpy')\n")
    (broken / "part.py").write_text("")
    (tmp_path / "fine_pkg.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("broken_pkg", "broken_pkg.part", "fine_pkg"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    hide_unimportable("broken_pkg", "fine_pkg")
    try:
        assert importlib.util.find_spec("broken_pkg") is None and "broken_pkg.part" not in sys.modules
        assert sys.modules["fine_pkg"].VALUE == 1
    finally:
        for name in ("broken_pkg", "fine_pkg"):
            sys.modules.pop(name, None)
