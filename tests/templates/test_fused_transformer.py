import copy

import pytest
import torch
import torch.nn.functional as F
from fused_transformer import Unsupported, fuse
from torch_model import apply_precision, build_forward


@pytest.fixture(scope="module")
def models(tiny_models):
    from transformers import (
        AutoModel,
        AutoModelForCausalLM,
        AutoModelForSequenceClassification,
        BertConfig,
        BertForSequenceClassification,
    )

    torch.manual_seed(0)
    bert_cls = BertForSequenceClassification(
        BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, num_labels=3)
    )
    loaded = {
        ("bert", "feature-extraction"): AutoModel.from_pretrained(tiny_models["bert"]),
        ("bert", "text-classification"): bert_cls,
        ("distilbert", "feature-extraction"): AutoModel.from_pretrained(tiny_models["distilbert"]),
        ("distilbert", "text-classification"): AutoModelForSequenceClassification.from_pretrained(
            tiny_models["distilbert"]
        ),
        ("gpt2", "feature-extraction"): AutoModel.from_pretrained(tiny_models["gpt2"]),
        ("gpt2", "causal-lm"): AutoModelForCausalLM.from_pretrained(tiny_models["gpt2"]),
    }
    for model in loaded.values():
        model.config._attn_implementation = "sdpa"
    return {key: model.eval() for key, model in loaded.items()}


def batch(seq: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Three right-padded rows: full, half, a single real token."""
    ids = torch.randint(100, 900, (3, seq), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[1, seq // 2 :] = 0
    mask[2, 1:] = 0
    return ids, mask


def valid(out: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-token outputs at real positions only; per-sequence outputs as they are."""
    return out[mask.bool()] if out.dim() == 3 else out


@pytest.mark.parametrize(
    ("arch", "task"),
    [
        ("bert", "feature-extraction"),
        ("bert", "text-classification"),
        ("distilbert", "feature-extraction"),
        ("distilbert", "text-classification"),
        ("gpt2", "feature-extraction"),
        ("gpt2", "causal-lm"),
    ],
)
def test_fused_forward_matches_hugging_face_with_padding(models, arch, task):
    model = models[(arch, task)]
    ids, mask = batch()
    with torch.inference_mode():
        reference = build_forward(model, task, "hf")(ids, mask)
        fused = build_forward(model, task, "fused")(ids, mask)
    assert fused.shape == reference.shape
    torch.testing.assert_close(valid(fused, mask), valid(reference, mask), atol=2e-5, rtol=1e-4)


def test_padded_rows_do_not_change_real_tokens(models):
    trunk = fuse(models[("bert", "feature-extraction")])
    ids, mask = batch()
    with torch.inference_mode():
        alone = trunk(ids[1:2, :8], mask[1:2, :8])
        padded = trunk(ids, mask)[1:2, :8]
    torch.testing.assert_close(padded, alone, atol=1e-5, rtol=1e-5)


def test_tanh_gelu_is_gpt2s_own_and_an_approximation_for_bert(models):
    ids, mask = batch()
    with torch.inference_mode():
        for arch, exact_in_tanh in (("gpt2", True), ("bert", False)):
            model = models[(arch, "feature-extraction")]
            a = build_forward(model, "feature-extraction", "fused")(ids, mask)[mask.bool()]
            b = build_forward(model, "feature-extraction", "fused-tanh-gelu")(ids, mask)[mask.bool()]
            diff = float((a - b).abs().max())
            assert (diff < 1e-6) == exact_in_tanh, (arch, diff)
            assert torch.nn.functional.cosine_similarity(a, b).min() > 0.999


def test_hybrid_computes_the_norms_in_fp32(models):
    model = models[("bert", "feature-extraction")]
    hybrid = apply_precision(copy.deepcopy(model), "hybrid")
    trunk = fuse(hybrid)
    assert trunk.embed_norm.weight.dtype == torch.float32 and trunk.layers[0].qkv.weight.dtype == torch.float16
    ids, mask = batch()
    with torch.inference_mode():
        out = trunk(ids, mask)
        ref = model(input_ids=ids, attention_mask=mask).last_hidden_state
    assert out.dtype == torch.float16 and not torch.isnan(out).any()
    cosine = torch.nn.functional.cosine_similarity(out[mask.bool()].float(), ref[mask.bool()])
    assert cosine.min() > 0.999


def test_unsupported_variants_fall_back_to_the_hugging_face_forward(models, capsys):
    from transformers import BertConfig, BertModel, GPT2Config, GPT2ForSequenceClassification

    relative = BertModel(
        BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                   position_embedding_type="relative_key")
    ).eval()  # fmt: skip
    with pytest.raises(Unsupported, match="relative position"):
        fuse(relative)
    gpt2_cls = GPT2ForSequenceClassification(GPT2Config(n_layer=1, n_embd=32, n_head=2, pad_token_id=0)).eval()
    ids, mask = batch()
    for model, task in ((relative, "feature-extraction"), (gpt2_cls, "text-classification")):
        with torch.inference_mode():
            out = build_forward(model, task, "fused")(ids, mask)
            expected = build_forward(model, task, "hf")(ids, mask)
        torch.testing.assert_close(out, expected)
    assert capsys.readouterr().out.count("running the Hugging Face forward") == 2


def test_bf16_keeps_the_residual_and_norms_in_fp32_and_is_closer_for_it(models):
    from fused_transformer import BUILDERS
    from transformers import AutoTokenizer

    from builder.common.corpus import corpus_sentences
    from builder.sources.source import resolve_path

    model = models[("bert", "feature-extraction")]
    tokens = AutoTokenizer.from_pretrained(resolve_path("minilm"))(
        corpus_sentences()[:64], padding=True, return_tensors="pt"
    )
    ids, mask = tokens["input_ids"], tokens["attention_mask"]
    bf16 = apply_precision(copy.deepcopy(model), "bf16")
    wide, narrow = fuse(bf16), BUILDERS["bert"](bf16, False, False)
    assert (
        wide.wide
        and wide.layers[0].norm1.weight.dtype == torch.float32
        and wide.layers[0].qkv.weight.dtype == torch.bfloat16
        and not wide.exact_gelu  # GELU in fc1's epilogue: one rounding to BF16, not two
    )
    with torch.inference_mode():
        reference = model(input_ids=ids, attention_mask=mask).last_hidden_state[mask.bool()]
        out_wide, out_narrow = wide(ids, mask), narrow(ids, mask)
    assert out_wide.dtype == torch.float32 and out_narrow.dtype == torch.bfloat16

    def worst(out: torch.Tensor) -> float:
        return float(torch.nn.functional.cosine_similarity(out[mask.bool()].float(), reference).min())

    assert worst(out_wide) > worst(out_narrow) and worst(out_wide) > 0.9995


def test_the_epilogue_gelu_rounds_once_to_half_precision():
    from fused_transformer import Linear

    gen = torch.Generator().manual_seed(0)
    weight, bias, x = (torch.randn(*shape, generator=gen) for shape in ((256, 64), (256,), (32, 64)))
    for dtype in (torch.bfloat16, torch.float16):
        linear = Linear(weight.to(dtype), bias.to(dtype))
        exact = F.gelu(F.linear(x.to(dtype).float(), linear.weight.float(), linear.bias.float()), approximate="tanh")
        once = linear.gelu_tanh(x.to(dtype))
        twice = F.gelu(F.linear(x.to(dtype), linear.weight, linear.bias), approximate="tanh")
        assert once.dtype == dtype
        assert torch.equal(once, exact.to(dtype))
        assert (once.float() - exact).abs().mean() < (twice.float() - exact).abs().mean()


@pytest.mark.parametrize(
    ("arch", "task"), [("bert", "text-classification"), ("distilbert", "text-classification"), ("gpt2", "causal-lm")]
)
def test_bf16_heads_take_the_widened_fp32_trunk(models, arch, task):
    """A widened BF16 trunk hands FP32 states to heads whose weights are BF16: the head casts them down."""
    model = models[(arch, task)]
    ids, mask = batch()
    with torch.inference_mode():
        reference = build_forward(model, task, "hf")(ids, mask)
        out = build_forward(apply_precision(copy.deepcopy(model), "bf16"), task, "fused")(ids, mask)
    assert out.dtype == torch.float32 and out.shape == reference.shape
    assert float(F.cosine_similarity(out, reference, dim=-1).min()) > 0.999
