import numpy as np
import pytest
import torch
from torch_model import Runner, apply_precision, bucket_for, build_forward, stage_rows


def test_a_batch_runs_in_the_smallest_bucket_that_holds_it():
    assert bucket_for(5, [1, 2, 4, 8]) == 8 and bucket_for(8, [1, 2, 4, 8]) == 8 and bucket_for(9, [1, 2, 4, 8]) is None


def test_staged_rows_repeat_a_real_row_and_overwrite_the_last_call():
    staged = np.full((2, 4, 3), -1)
    stage_rows(staged, np.array([[1, 1, 1]] * 4), np.ones((4, 3), int))  # an earlier, fuller batch
    ids = np.array([[5, 6, 0], [7, 8, 9]])
    mask = np.array([[1, 1, 0], [1, 1, 1]])
    stage_rows(staged, ids, mask)
    assert (staged[0, :2] == ids).all() and (staged[1, :2] == mask).all()
    assert (staged[0, 2:] == ids[0]).all() and (staged[1, 2:] == mask[0]).all()  # no stale row of the last call


@pytest.fixture(scope="module")
def minilm():
    from transformers import AutoModel

    from builder.sources.source import resolve_path

    return AutoModel.from_pretrained(resolve_path("minilm"), attn_implementation="sdpa").eval()


def test_hybrid_keeps_layernorm_in_fp32_and_stays_close(minilm):
    import copy

    hybrid = apply_precision(copy.deepcopy(minilm), "hybrid")
    norms = [m for m in hybrid.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert norms and all(p.dtype == torch.float32 for m in norms for p in m.parameters())
    linears = [m for m in hybrid.modules() if isinstance(m, torch.nn.Linear)]
    assert all(m.weight.dtype == torch.float16 for m in linears)
    ids = torch.randint(1000, 5000, (2, 12))
    mask = torch.ones_like(ids)
    with torch.inference_mode():
        ref = minilm(input_ids=ids, attention_mask=mask).last_hidden_state
        out = hybrid(input_ids=ids, attention_mask=mask).last_hidden_state
    assert out.dtype == torch.float16
    cosine = torch.nn.functional.cosine_similarity(out.float(), ref, dim=-1)
    assert cosine.min() > 0.999 and not torch.isnan(out).any()


@pytest.mark.parametrize("kernels", ["fused", "hf"])
def test_cpu_runner_matches_the_model_with_padding_and_odd_batches(minilm, kernels):
    forward = build_forward(minilm, "feature-extraction", kernels)
    runner = Runner(forward, torch.device("cpu"), batches=[1, 2, 4, 8], seq_buckets=[16], token_budget=128)
    assert runner.graphs == {}  # graphs are a GPU feature; the CPU runs the same code eagerly
    ids = np.random.default_rng(0).integers(1000, 5000, (3, 16))
    mask = np.ones_like(ids)
    mask[1, 9:] = 0
    out = runner(ids, mask)
    with torch.inference_mode():
        ref = minilm(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).last_hidden_state
    assert out.shape == (3, 16, 384)
    valid = torch.from_numpy(mask).bool()  # padded positions are nobody's output
    torch.testing.assert_close(out[valid], ref[valid], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kernels", ["fused", "hf"])
def test_causal_lm_output_is_the_last_real_token(tiny_models, kernels):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_models["gpt2"]).eval()
    forward = build_forward(model, "causal-lm", kernels)
    runner = Runner(forward, torch.device("cpu"), batches=[1, 2, 4], seq_buckets=[8], token_budget=0)
    ids = np.array([[11, 12, 13, 0, 0, 0, 0, 0]])
    mask = np.array([[1, 1, 1, 0, 0, 0, 0, 0]])
    with torch.inference_mode():
        ref = model(input_ids=torch.tensor([[11, 12, 13]])).logits[0, -1]
    torch.testing.assert_close(runner(ids, mask)[0], ref, atol=1e-4, rtol=1e-4)


def test_graphs_are_captured_with_a_mask_that_has_padding():
    from torch_model import capture_inputs

    ids, mask = capture_inputs(4, 16)
    assert ids.shape == mask.shape == (4, 16) and (mask == 0).any() and mask.sum(1).min() >= 15


def test_a_model_fed_an_all_ones_mask_ignores_padding_later(minilm):
    # why capture_inputs pads: the mask changes the output of padded rows, so it must be in the graph
    ids = torch.randint(1000, 5000, (1, 16))
    full, padded = torch.ones_like(ids), torch.ones_like(ids)
    padded[0, 8:] = 0
    with torch.inference_mode():
        a = minilm(input_ids=ids, attention_mask=full).last_hidden_state[0, :8]
        b = minilm(input_ids=ids, attention_mask=padded).last_hidden_state[0, :8]
    assert not torch.allclose(a, b, atol=1e-3)


def test_full_rows_skip_the_mask_only_where_the_trunk_can(minilm, tiny_models):
    from transformers import AutoModelForCausalLM

    gpt2 = AutoModelForCausalLM.from_pretrained(tiny_models["gpt2"]).eval()
    assert build_forward(minilm, "feature-extraction", "fused").mask_free
    assert not build_forward(minilm, "feature-extraction", "hf").mask_free
    assert not build_forward(gpt2, "causal-lm", "fused").mask_free  # causal attention needs no padding mask


def test_the_mask_free_path_gives_the_masked_answer_for_full_rows(minilm):
    forward = build_forward(minilm, "feature-extraction", "fused")
    ids = torch.randint(1000, 5000, (2, 16), generator=torch.Generator().manual_seed(0))
    full, padded = torch.ones_like(ids), torch.ones_like(ids)
    padded[1, 10:] = 0
    with torch.inference_mode():
        torch.testing.assert_close(forward(ids, full, True), forward(ids, full), atol=1e-5, rtol=1e-5)
        # the promise matters: a padded batch through the mask-free path attends to its padding
        assert not torch.allclose(forward(ids, padded, True)[1, :10], forward(ids, padded)[1, :10], atol=1e-3)


def test_the_runner_takes_the_mask_free_path_only_for_full_batches(minilm):
    calls = []
    inner = build_forward(minilm, "feature-extraction", "fused")

    def spy(ids: torch.Tensor, mask: torch.Tensor, full: bool) -> torch.Tensor:
        calls.append(full)
        return inner(ids, mask, full)

    runner = Runner(
        type(inner)(spy, mask_free=True), torch.device("cpu"), batches=[1, 2, 4], seq_buckets=[8], token_budget=32
    )
    ids = np.random.default_rng(0).integers(1000, 5000, (2, 8))
    mask = np.ones_like(ids)
    runner(ids, mask)
    mask[1, 5:] = 0
    runner(ids, mask)
    assert calls == [True, False]
