import numpy as np
from tritonbuild_backend import group_by_length, split_rows


def test_requests_are_grouped_by_sequence_length_in_order():
    assert group_by_length([(1, 16), (2, 32), (4, 16), (1, 64)]) == {16: [0, 2], 32: [1], 64: [3]}


def test_split_rows_undoes_concatenation():
    parts = [np.full((n, 3), n) for n in (1, 4, 2)]
    back = split_rows(np.concatenate(parts), [1, 4, 2])
    assert [p.tolist() for p in back] == [p.tolist() for p in parts]
