import numpy as np
from tritonbuild_backend import group_by_length, split_rows


def test_requests_are_grouped_by_sequence_length_in_order():
    assert group_by_length([(1, 16), (2, 32), (4, 16), (1, 64)]) == {16: [0, 2], 32: [1], 64: [3]}


def test_split_rows_undoes_concatenation():
    parts = [np.full((n, 3), n) for n in (1, 4, 2)]
    back = split_rows(np.concatenate(parts), [1, 4, 2])
    assert [p.tolist() for p in back] == [p.tolist() for p in parts]


def test_hidden_modules_look_absent_to_optional_imports(monkeypatch):
    import importlib.util
    import sys

    from tritonbuild_backend import hide_modules

    assert importlib.util.find_spec("json") is not None
    monkeypatch.setitem(sys.modules, "json", sys.modules["json"])  # restored after the test
    hide_modules("json")
    assert importlib.util.find_spec("json") is None  # what transformers' is_*_available checks
    try:
        import json  # noqa: F401
    except ImportError:
        pass
    else:
        raise AssertionError("a hidden module was imported")


def test_stub_numpy_goes_first_only_when_configured_and_not_loaded(monkeypatch):
    import sys

    from tritonbuild_backend import use_stub_numpy

    monkeypatch.delenv("TRITONBUILD_STUB_NUMPY", raising=False)
    assert use_stub_numpy() is False
    monkeypatch.setenv("TRITONBUILD_STUB_NUMPY", "/nowhere/np1")
    assert use_stub_numpy() is False  # numpy is already imported in this process: too late to switch
    assert "/nowhere/np1" not in sys.path
