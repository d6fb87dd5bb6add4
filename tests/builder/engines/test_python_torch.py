"""python-torch's own planning: the batch sizes its model folder captures as CUDA graphs."""

import itertools

import pytest

from builder.engines.python_torch import default_batch_buckets


@pytest.mark.parametrize(
    ("max_batch", "buckets"),
    [
        (128, (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128)),
        (48, (1, 2, 4, 8, 12, 16, 24, 32, 48)),
        (40, (1, 2, 4, 8, 12, 16, 24, 32, 40)),
        (8, (1, 2, 4, 8)),
        (3, (1, 2, 3)),
        (1, (1,)),
    ],
)
def test_default_batch_buckets_grow_by_at_most_half_from_eight_and_end_at_the_max(max_batch, buckets):
    assert default_batch_buckets(max_batch) == buckets
    above_eight = [b for b in buckets if b >= 8]
    assert all(b / a <= 1.5 for a, b in itertools.pairwise(above_eight))
