import pytest

from builder.precision.presets import (
    GELU_OPS,
    PRESETS,
    Compute,
    PrecisionError,
    PrecisionRecipe,
    Quantization,
    get_recipe,
)


def test_presets_are_typed_data():
    assert set(PRESETS) == {"fp32", "fp16", "hybrid", "bf16", "int8"}
    hybrid = PRESETS["hybrid"]
    assert hybrid.compute is Compute.FP16 and hybrid.match_layernorm
    assert {"Softmax", "LayerNormalization"} <= hybrid.keep_ops and not hybrid.keep_ops & GELU_OPS
    assert PRESETS["bf16"].compute is Compute.BF16 and PRESETS["bf16"].keep_ops == hybrid.keep_ops
    assert PRESETS["fp16"].keep_ops == frozenset() and not PRESETS["fp16"].match_layernorm
    assert PRESETS["int8"].quantization is Quantization.DYNAMIC_INT8 and PRESETS["int8"].compute is Compute.FP32
    with pytest.raises(AttributeError):
        hybrid.compute = Compute.FP32  # frozen


def test_get_plan_options_and_unknown_names():
    plan = get_recipe("HYBRID", gelu=True, residual_add=True)
    assert {"Erf", "Gelu"} <= plan.keep_ops and plan.keep_residual_add
    assert PRESETS["hybrid"].keep_residual_add is False  # presets are not mutated
    assert get_recipe("fp16").keeping(nodes=["a"]).keep_nodes == {"a"}
    with pytest.raises(PrecisionError) as err:
        get_recipe("fp8")
    assert "hybrid" in err.value.hint
    with pytest.raises(PrecisionError, match="quantization"):
        PrecisionRecipe("bad", Compute.FP16, quantization=Quantization.DYNAMIC_INT8)
