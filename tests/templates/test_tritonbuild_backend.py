import numpy as np
import pytest
from tritonbuild_backend import InputError, TokenLimits, group_by_length, groups_of, split_rows


def test_requests_are_grouped_by_sequence_length_in_order():
    assert group_by_length([(1, 16), (2, 32), (4, 16), (1, 64)]) == {16: [0, 2], 32: [1], 64: [3]}


def test_token_limits_check_shapes_without_reading_values_and_values_of_a_merged_batch():
    limits = TokenLimits(vocab_size=100, max_length=8)
    good, mask = np.array([[1, 7, 7]]), np.ones((1, 3), np.int64)
    out_of_vocabulary = np.array([[5, 100, 7]])
    limits.check_shape(out_of_vocabulary, mask)  # shapes only: the bad id is for check_values
    with pytest.raises(InputError, match="token id 100"):
        limits.check_values(out_of_vocabulary, mask)
    with pytest.raises(InputError, match="token id 100"):  # one bad request fails the merged batch's check
        limits.check_values(np.concatenate([good, out_of_vocabulary, good]), np.ones((3, 3), np.int64))
    limits.check_values(np.concatenate([good, good]), np.ones((2, 3), np.int64))
    for ids, bad_mask, message in [
        (good, np.ones((1, 4), np.int64), "differ in shape"),
        (np.ones((1, 9), np.int64), np.ones((1, 9), np.int64), "9 tokens per row; the limit is 8"),
        (np.ones((0, 3), np.int64), np.ones((0, 3), np.int64), "is empty"),
    ]:
        with pytest.raises(InputError, match=message):
            limits.check_shape(ids, bad_mask)
    with pytest.raises(InputError, match="token id -3"):  # read as unsigned, a negative id is a huge one
        limits.check_values(np.concatenate([good, np.array([[-3, 1, 1]])]), np.ones((2, 3), np.int64))
    for bad_mask, message in [
        ([[1, 2, 1]], "only 0 and 1"),
        ([[1, -1, 1]], "only 0 and 1"),
        ([[0, 0, 0]], "without any real token"),
    ]:
        with pytest.raises(InputError, match=message):
            limits.check(good, np.array(bad_mask))


def test_groups_hold_valid_requests_of_one_length_and_merge_them_once():
    ids = [np.full((1, 3), 1), None, np.full((2, 5), 2), np.full((1, 3), 3)]
    masks = [None if a is None else np.ones_like(a) for a in ids]
    groups = groups_of(ids, masks, [None, "an error", None, None])
    assert [g.members for g in groups] == [[0, 3], [2]]
    merged, mask = groups[0].batch()
    assert merged.tolist() == [[1, 1, 1], [3, 3, 3]] and mask.shape == (2, 3)
    assert groups[0].batch()[0] is merged  # concatenated once, then kept
    assert groups[1].batch()[0] is ids[2]  # a lone request runs on its own arrays
    alone = groups[0].alone(1)
    assert alone.members == [3] and alone.batch()[0] is ids[3]


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


def test_output_arena_slices_never_overlap_within_a_call_and_are_reused_by_the_next():
    from tritonbuild_backend import OutputArena

    arena = OutputArena(np.float32)

    def call() -> tuple[np.ndarray, np.ndarray]:  # one execute(): two groups' outputs
        arena.reset()
        first, second = arena.take((2, 3)), arena.take((4,))
        first[:], second[:] = 1, 2
        assert not np.shares_memory(first, second) and (first == 1).all()  # the second did not write over the first
        return first, second

    call()  # the first calls size the buffer
    first, _ = call()
    buffer = arena.buffer
    again, _ = call()  # the next execute(): the stub has copied the last call's outputs out
    assert np.shares_memory(again, first) and arena.buffer is buffer  # same memory, nothing allocated
    grown = arena.take((100,))  # more than any call before: a larger buffer, the earlier slices left intact
    grown[:] = 7
    assert arena.buffer is not buffer and (again == 1).all()


def test_thread_rule_shares_cores_among_host_computing_instances_only(monkeypatch):
    import json

    import tritonbuild_backend as tb

    monkeypatch.setattr(tb, "host_cores", lambda: 16)

    def args(count: int, **parameters: str) -> dict:
        config = {"name": "m", "instance_group": [{"count": count}],
                  "parameters": {k: {"string_value": v} for k, v in parameters.items()}}  # fmt: skip
        return {"model_config": json.dumps(config)}

    assert tb.thread_count(args(4), computes_on_host=True) == 4  # four tokenizers on 16 cores
    assert tb.thread_count(args(32), computes_on_host=True) == 1
    assert tb.thread_count(args(2), computes_on_host=False) == 1  # a GPU model's stub: copies and launches
    assert tb.thread_count(args(2, host_threads="6"), computes_on_host=False) == 6  # make-repo --host-threads
