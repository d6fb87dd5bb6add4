import numpy as np
import torch

from templates.python.post_model import mean_pool_normalize, merge_rows, softmax


def test_mean_pooling_ignores_padding_and_normalizes():
    rng = np.random.default_rng(0)
    hidden = rng.normal(size=(2, 5, 8)).astype(np.float32)
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    out = mean_pool_normalize(hidden, mask)
    expected = hidden[0, :3].mean(axis=0)
    np.testing.assert_allclose(out[0], expected / np.linalg.norm(expected), rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-6)
    hidden[0, 3:] = 1e6  # padded positions must not matter
    np.testing.assert_allclose(mean_pool_normalize(hidden, mask)[0], out[0], rtol=1e-6)


def test_softmax_matches_torch_and_is_stable():
    logits = np.array([[1.0, 2.0, 3.0], [1000.0, 1000.0, -1000.0]], dtype=np.float32)
    np.testing.assert_allclose(softmax(logits), torch.softmax(torch.tensor(logits), -1).numpy(), rtol=1e-6)
    assert np.isfinite(softmax(logits)).all()


def test_merged_rows_keep_request_order_and_a_lone_request_is_not_copied():
    parts = [np.full((n, 2), n, np.float32) for n in (1, 3, 2)]
    assert merge_rows(parts).tolist() == np.concatenate(parts).tolist()
    assert merge_rows(parts[:1]) is parts[0]
