from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.capi.onnxruntime_pybind11_state import Fail as OrtFail
from onnxruntime.capi.onnxruntime_pybind11_state import NotImplemented as OrtNotImplemented
from tokenizers import Tokenizer

from builder.common.corpus import corpus_sentences
from builder.precision.presets import PRESETS, Compute, PrecisionError, PrecisionRecipe, get_recipe
from builder.precision.variants import VariantFromOnnx, apply_recipe, fp32_nodes, gemm_to_matmul, norm_regions, place
from builder.sources.export import OnnxFromModel
from builder.sources.source import inspect_model

FLOATS = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16}
LN_NODES = {"ln_mean", "ln_sub", "ln_pow", "ln_var", "ln_add_eps", "ln_sqrt", "ln_div", "ln_scale", "ln_shift"}


# --- hand-built graphs --------------------------------------------------------------------------------------


def _const(name, value):
    return numpy_helper.from_array(np.asarray(value, dtype=np.float32), name)


def _norm_nodes(x, out, variant):
    """A decomposed normalisation of `x` over the last axis, written the ways exporters write it."""
    axes = "axes"
    if variant == "rms":
        return [
            helper.make_node("Pow", [x, "two"], ["ln_sq"], name="ln_pow"),
            helper.make_node("ReduceMean", ["ln_sq", axes], ["ln_v"], name="ln_var"),
            helper.make_node("Add", ["ln_v", "eps"], ["ln_ve"], name="ln_add_eps"),
            helper.make_node("Sqrt", ["ln_ve"], ["ln_std"], name="ln_sqrt"),
            helper.make_node("Div", [x, "ln_std"], ["ln_n"], name="ln_div"),
            helper.make_node("Mul", ["ln_n", "gamma"], [out], name="ln_scale"),
        ]
    nodes = [
        helper.make_node("ReduceMean", [x, axes], ["ln_m"], name="ln_mean"),
        helper.make_node("Sub", [x, "ln_m"], ["ln_d"], name="ln_sub"),
        helper.make_node("Pow", ["ln_d", "two"], ["ln_sq"], name="ln_pow"),
        helper.make_node("ReduceMean", ["ln_sq", axes], ["ln_v"], name="ln_var"),
        helper.make_node("Add", ["ln_v", "eps"], ["ln_ve"], name="ln_add_eps"),
        helper.make_node("Sqrt", ["ln_ve"], ["ln_std"], name="ln_sqrt"),
    ]
    if variant == "rsqrt":
        nodes += [
            helper.make_node("Reciprocal", ["ln_std"], ["ln_r"], name="ln_rsqrt"),
            helper.make_node("Mul", ["ln_d", "ln_r"], ["ln_n"], name="ln_div"),
        ]
    else:
        nodes.append(helper.make_node("Div", ["ln_d", "ln_std"], ["ln_n"], name="ln_div"))
    return [
        *nodes,
        helper.make_node("Mul", ["ln_n", "gamma"], ["ln_g"], name="ln_scale"),
        helper.make_node("Add", ["ln_g", "beta"], [out], name="ln_shift"),
    ]


def small_model(norm="div"):
    """x → MatMul → + Range (no FP16 kernel) → residual Add → decomposed LN → MatMul → + mask → Softmax."""
    rng = np.random.default_rng(0)
    inits = [
        _const("w1", rng.normal(0, 0.5, (8, 8))),
        _const("w2", rng.normal(0, 0.5, (8, 6))),
        _const("gamma", rng.uniform(0.5, 1.5, 8)),
        _const("beta", rng.normal(0, 0.1, 8)),
        _const("two", 2.0),
        _const("eps", 1e-5),
        _const("r0", 0.0),
        _const("r8", 8.0),
        _const("r1", 1.0),
        _const("mask", [0, 0, 0, 0, 0, -3.4028235e38]),  # torch's finfo(float32).min fill
        numpy_helper.from_array(np.array([-1], dtype=np.int64), "axes"),
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"], name="proj"),
        helper.make_node("Range", ["r0", "r8", "r1"], ["pos"], name="range"),
        helper.make_node("Add", ["h", "pos"], ["hp"], name="add_pos"),
        helper.make_node("Add", ["hp", "x"], ["res"], name="residual"),
        *_norm_nodes("res", "normed", norm),
        helper.make_node("MatMul", ["normed", "w2"], ["s"], name="head"),
        helper.make_node("Add", ["s", "mask"], ["masked"], name="add_mask"),
        helper.make_node("Softmax", ["masked"], ["probs"], name="softmax", axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "small",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 5, 8])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 5, 6])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)
    onnx.checker.check_model(model, full_check=True)
    return model


def run(model, feeds, optimize=True):
    options = ort.SessionOptions()
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)[0]


def float_input_types(model):
    """node name → element types of its float inputs, read back through ONNX shape inference."""
    typed = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    graph = typed.graph
    types = {v.name: v.type.tensor_type.elem_type for v in (*graph.input, *graph.output, *graph.value_info)}
    types |= {t.name: t.data_type for t in graph.initializer}
    return {n.name: {types[i] for i in n.input if types.get(i) in FLOATS} for n in graph.node}


def assert_placement_matches_graph(source, written, plan):
    """fp32_nodes is exact: a source node reads FP32 inputs in the written graph iff the set names it."""
    kept = fp32_nodes(source, plan)
    seen = float_input_types(written)
    for node in source.graph.node:
        if not seen.get(node.name):
            continue
        expected = {TensorProto.FLOAT} if node.name in kept else {plan.compute.elem_type}
        assert seen[node.name] == expected, (node.name, node.op_type, seen[node.name])


def cast_pairs(model):
    """Casts that only undo the Cast that feeds them."""
    producer = {o: n for n in model.graph.node for o in n.output}
    typed = float_input_types(model)
    pairs = []
    for node in model.graph.node:
        before = producer.get(node.input[0]) if node.op_type == "Cast" else None
        if before is not None and before.op_type == "Cast" and typed[before.name] == {node.attribute[0].i}:
            pairs.append((before.name, node.name))
    return pairs


# --- fp32_nodes on hand-built graphs --------------------------------------------------------------------------


def test_fp32_nodes_on_a_decomposed_layernorm():
    model = small_model()
    every = {n.name for n in model.graph.node}
    assert fp32_nodes(model, PRESETS["fp32"]) == every
    assert fp32_nodes(model, PRESETS["fp16"]) == {"range"}  # Range has no FP16 kernel in any opset
    assert fp32_nodes(model, PRESETS["hybrid"]) == {"range", "softmax"} | LN_NODES
    assert fp32_nodes(model, get_recipe("hybrid", residual_add=True)) == {"range", "softmax", "residual"} | LN_NODES
    assert fp32_nodes(model, PRESETS["hybrid"].keeping(nodes=["proj"])) == {"proj", "range", "softmax"} | LN_NODES
    without_patterns = PrecisionRecipe("ops-only", Compute.FP16, frozenset({"Softmax"}))
    assert fp32_nodes(model, without_patterns) == {"range", "softmax"}
    assert fp32_nodes(model, PRESETS["hybrid"]) == fp32_nodes(model, PRESETS["hybrid"])  # deterministic


@pytest.mark.parametrize(
    ("variant", "extra"), [("div", set()), ("rsqrt", {"ln_rsqrt"}), ("rms", {"ln_mean", "ln_sub", "ln_shift"})]
)
def test_decomposed_norm_variants_are_matched_whole(variant, extra):
    regions = norm_regions(small_model(variant))
    expected = LN_NODES | extra if variant == "rsqrt" else LN_NODES - extra if variant == "rms" else LN_NODES
    assert regions == [frozenset(expected)]


def test_lookalikes_are_not_normalisations():
    """An L2 norm (ReduceSum, no mean) and a division by a constant stay FP16 under the hybrid plan."""
    nodes = [
        helper.make_node("Mul", ["x", "x"], ["sq"], name="sq"),
        helper.make_node("ReduceSum", ["sq", "axes"], ["ss"], name="sum"),
        helper.make_node("Sqrt", ["ss"], ["norm"], name="sqrt"),
        helper.make_node("Div", ["x", "norm"], ["unit"], name="l2"),
        helper.make_node("Div", ["unit", "c"], ["y"], name="scale"),
    ]
    graph = helper.make_graph(
        nodes,
        "l2",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 8])],
        [_const("c", 3.0), numpy_helper.from_array(np.array([-1], dtype=np.int64), "axes")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)
    assert norm_regions(model) == []
    assert fp32_nodes(model, PRESETS["hybrid"]) == set()


def test_plans_that_cannot_apply_are_refused():
    model = small_model()
    with pytest.raises(PrecisionError, match="not in the graph"):
        fp32_nodes(model, PRESETS["hybrid"].keeping(nodes=["no_such_node"]))
    with pytest.raises(PrecisionError, match="quantizes"):
        apply_recipe(model, PRESETS["int8"])
    model.graph.node[0].name = ""
    with pytest.raises(PrecisionError, match="node names"):
        fp32_nodes(model, PRESETS["hybrid"])


# --- apply_recipe on hand-built graphs --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["fp16", "hybrid"])
def test_apply_plan_on_a_small_graph(name):
    model = small_model()
    plan = PRESETS[name]
    out = apply_recipe(model, plan)
    onnx.checker.check_model(out, full_check=True)
    assert [(v.name, v.type.tensor_type.elem_type) for v in out.graph.output] == [("probs", TensorProto.FLOAT)]
    assert out.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert_placement_matches_graph(model, out, plan)
    assert cast_pairs(out) == []
    inits = {t.name: t for t in out.graph.initializer}
    assert inits["w1"].data_type == inits["w2"].data_type == TensorProto.FLOAT16
    mask = numpy_helper.to_array(inits["mask"])
    assert mask.dtype == np.float16 and np.isfinite(mask).all() and mask.min() == -65504  # clipped, not -inf
    kept = TensorProto.FLOAT if name == "hybrid" else TensorProto.FLOAT16
    assert inits["gamma"].data_type == inits["eps"].data_type == kept
    x = np.random.default_rng(1).normal(size=(3, 5, 8)).astype(np.float32)
    # ORT's LayerNormFusion breaks the hybrid form of this graph (see the next test): run it unoptimised.
    expected, got = run(model, {"x": x}), run(out, {"x": x}, optimize=name != "hybrid")
    assert got.dtype == np.float32 and not np.isnan(got).any()
    np.testing.assert_allclose(got, expected, atol=5e-3)


def test_onnx_runtime_fuses_the_fp16_cast_into_a_decomposed_fp32_layernorm():
    """Documents an ONNX Runtime (1.31, CPU) bug, not ours: the graph is valid ONNX, but LayerNormFusion (level 1)
    absorbs the Cast(fp16 → fp32) in front of a Div-form decomposed LayerNorm and builds LayerNormalization(X fp16,
    scale fp32), which fails to load. Workarounds: keep residual Adds FP32 (no Cast in front), or disable ORT graph
    optimisations. torch.export writes fused LayerNormalization, so our exports never meet this. If this test
    starts failing, ORT fixed it: drop the workaround notes."""
    out = apply_recipe(small_model(), PRESETS["hybrid"])
    onnx.checker.check_model(out, full_check=True)
    with pytest.raises(OrtFail, match=r"LayerNormalization\) bound to different types"):
        ort.InferenceSession(out.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).normal(size=(3, 5, 8)).astype(np.float32)
    residual = apply_recipe(small_model(), get_recipe("hybrid", residual_add=True))
    np.testing.assert_allclose(run(residual, {"x": x}), run(small_model(), {"x": x}), atol=5e-3)
    for variant in ("rsqrt", "rms"):  # forms the fusion does not match load with every optimisation on
        run(apply_recipe(small_model(variant), PRESETS["hybrid"]), {"x": x})


def test_apply_plan_is_deterministic_and_leaves_its_input_alone():
    model = small_model()
    before = model.SerializeToString(deterministic=True)
    first = apply_recipe(model, PRESETS["hybrid"]).SerializeToString(deterministic=True)
    assert first == apply_recipe(model, PRESETS["hybrid"]).SerializeToString(deterministic=True)
    assert model.SerializeToString(deterministic=True) == before


def test_placement_lists_the_casts():
    placement = place(small_model(), PRESETS["hybrid"])
    casts = placement.casts()
    # The FP32 graph input into FP16 (once, for MatMul and residual Add); FP16 activations into the FP32 LN (res)
    # and Softmax (masked); the LN output into the FP16 head MatMul; Range's FP32 output into the FP16 Add.
    # The Softmax output is a graph output and already FP32: no cast.
    assert sorted(casts) == sorted(
        [("x", TensorProto.FLOAT16), ("pos", TensorProto.FLOAT16), ("res", TensorProto.FLOAT),
         ("normed", TensorProto.FLOAT16), ("masked", TensorProto.FLOAT)]
    )  # fmt: skip
    fp16 = place(small_model(), PRESETS["fp16"]).casts()
    assert ("probs", TensorProto.FLOAT) in fp16  # the FP16 Softmax output is cast back for the graph output


def test_gemm_to_matmul_keeps_the_numbers():
    rng = np.random.default_rng(0)
    gemm = helper.make_node("Gemm", ["a", "b", "c"], ["y"], name="gemm", transB=1, alpha=0.5, beta=2.0)
    graph = helper.make_graph(
        [gemm],
        "gemm",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])],
        [_const("b", rng.normal(size=(3, 4))), _const("c", rng.normal(size=3))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)
    rewritten = gemm_to_matmul(model)
    onnx.checker.check_model(rewritten, full_check=True)
    assert [n.op_type for n in rewritten.graph.node] == ["MatMul", "Add"]
    assert {t.name for t in rewritten.graph.initializer}.isdisjoint({"b", "c"})  # unused originals dropped
    a = rng.normal(size=(2, 4)).astype(np.float32)
    np.testing.assert_allclose(run(rewritten, {"a": a}), run(model, {"a": a}), rtol=1e-6, atol=1e-6)


# --- real exports ---------------------------------------------------------------------------------------------

MODELS = {
    "minilm": ("minilm", "feature-extraction"),
    "distilbert": ("distilbert", "text-classification"),
    "gpt2": ("gpt2", "causal-lm"),
}
CPU_PRESETS = ["fp32", "fp16", "hybrid", "int8"]  # bf16 has its own test: ORT CPU cannot load it


@pytest.fixture(scope="module")
def exports(tiny_models, tmp_path_factory):
    """model key → (ModelInfo, exported FP32 path); each model exported once for this module."""
    root = tmp_path_factory.mktemp("precision")
    found = {}
    for key, (source, task) in MODELS.items():
        info = inspect_model("minilm" if source == "minilm" else str(tiny_models[source]), task)
        found[key] = (info, OnnxFromModel(info, root / key / "model.onnx")())
    return found


@pytest.fixture(scope="module")
def variants(exports):
    """(model key, preset) → Variant, every preset written once."""
    return {
        (key, name): VariantFromOnnx(path, plan, path.with_name(f"{name}.onnx"))()
        for key, (_, path) in exports.items()
        for name, plan in PRESETS.items()
    }


@pytest.fixture(scope="module")
def sources(exports):
    return {key: onnx.load(str(path)) for key, (_, path) in exports.items()}


def real_tokens(info, count=24, max_len=64):
    """Right-padded token ids of sentences from Python's own documentation."""
    tokenizer = Tokenizer.from_file(str(info.path / "tokenizer.json"))
    tokenizer.enable_truncation(min(max_len, info.max_length))
    tokenizer.enable_padding(pad_id=info.pad_id)
    encoded = tokenizer.encode_batch(corpus_sentences()[::157][:count])
    ids = np.array([e.ids for e in encoded], dtype=np.int64)
    return {"input_ids": ids, "attention_mask": np.array([e.attention_mask for e in encoded], dtype=np.int64)}


def run_file(path, feeds):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)[0]


def pooled(hidden, mask):
    weights = mask[..., None].astype(np.float32)
    vectors = (hidden * weights).sum(1) / weights.sum(1)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.mark.slow
def test_minilm_export_writes_fused_layernorm_softmax_and_erf_gelu(sources):
    """What torch.export's ONNX holds: fused LayerNormalization, Softmax, GELU as Div → Erf → Add → Mul → Mul."""
    model = sources["minilm"]
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("LayerNormalization") == 13 and ops.count("Softmax") == 6 and ops.count("Erf") == 6
    assert "Gelu" not in ops and norm_regions(model) == []  # no decomposed LayerNorm in these exports
    kept = fp32_nodes(model, PRESETS["hybrid"])
    by_op = {op: {n.name for n in model.graph.node if n.op_type == op} for op in set(ops)}
    assert by_op["LayerNormalization"] | by_op["Softmax"] <= kept
    assert not kept & (by_op["MatMul"] | by_op["Erf"])
    # Softmax is followed by IsNaN → Where (the SDPA guard); they are exact and follow Softmax into FP32.
    softmax_out = {n.output[0] for n in model.graph.node if n.op_type == "Softmax"}
    guards = {n.name for n in model.graph.node if n.op_type == "Where" and n.input[2] in softmax_out}
    assert len(guards) == 6 and kept == by_op["LayerNormalization"] | by_op["Softmax"] | by_op["IsNaN"] | guards
    assert by_op["Erf"] <= fp32_nodes(model, get_recipe("hybrid", gelu=True))
    residual = fp32_nodes(model, get_recipe("hybrid", residual_add=True)) - kept
    assert len(residual) == 13 and residual <= by_op["Add"]  # the embedding sum + 2 per layer


@pytest.mark.slow
@pytest.mark.parametrize("key", MODELS)
@pytest.mark.parametrize("name", CPU_PRESETS)
def test_every_preset_is_valid_and_runs_on_real_text(key, name, exports, variants):
    info, _ = exports[key]
    path = variants[(key, name)].path
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert [(i.name, i.type.tensor_type.elem_type) for i in model.graph.input] == [
        ("input_ids", TensorProto.INT64),
        ("attention_mask", TensorProto.INT64),
    ]
    assert [o.type.tensor_type.elem_type for o in model.graph.output] == [TensorProto.FLOAT]
    feeds = real_tokens(info)
    got, expected = run_file(path, feeds), run_file(variants[(key, "fp32")].path, feeds)
    assert got.dtype == np.float32 and got.shape == expected.shape and not np.isnan(got).any()


@pytest.mark.slow
@pytest.mark.parametrize("key", MODELS)
def test_bf16_is_a_valid_graph_that_cpu_onnx_runtime_cannot_run(key, variants):
    """ORT's CPU provider has no BF16 Add/MatMul kernels: the session refuses to load. BF16 needs a GPU runtime."""
    path = variants[(key, "bf16")].path
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    weights = {t.name: t.data_type for t in model.graph.initializer}
    matmuls = [n for n in model.graph.node if n.op_type in ("MatMul", "Gemm")]
    matmul_weights = [weights[n.input[1]] for n in matmuls if n.input[1] in weights]
    assert matmul_weights and set(matmul_weights) == {TensorProto.BFLOAT16}
    with pytest.raises(OrtNotImplemented, match="Could not find an implementation"):
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.slow
@pytest.mark.parametrize("key", MODELS)
def test_hybrid_computes_softmax_and_layernorm_in_fp32_and_matmuls_in_fp16(key, sources, variants):
    model = onnx.load(str(variants[(key, "hybrid")].path))
    types = float_input_types(model)
    sensitive = [n for n in model.graph.node if n.op_type in ("Softmax", "LayerNormalization")]
    assert sensitive and all(types[n.name] == {TensorProto.FLOAT} for n in sensitive)
    weights = {t.name: t.data_type for t in model.graph.initializer}
    matmuls = [n for n in model.graph.node if n.op_type in ("MatMul", "Gemm")]
    assert matmuls and all(types[n.name] == {TensorProto.FLOAT16} for n in matmuls)
    assert {weights[n.input[1]] for n in matmuls if n.input[1] in weights} == {TensorProto.FLOAT16}
    assert cast_pairs(model) == []


@pytest.mark.slow
@pytest.mark.parametrize("key", MODELS)
@pytest.mark.parametrize(
    "plan", [PRESETS["fp16"], PRESETS["hybrid"], PRESETS["bf16"], get_recipe("hybrid", True, True)]
)
def test_fp32_nodes_is_exactly_what_the_written_graph_computes_in_fp32(key, plan, sources):
    source = sources[key]
    written = apply_recipe(source, plan)
    assert_placement_matches_graph(source, written, plan)
    added = sum(n.op_type == "Cast" for n in written.graph.node) - sum(n.op_type == "Cast" for n in source.graph.node)
    assert added == len(place(source, plan).casts())


@pytest.mark.slow
def test_minilm_fp16_and_hybrid_embeddings_stay_close_to_fp32_on_real_text(exports, variants):
    # ORT's CPU kernels may compute FP16 in FP32 internally, so these CPU numbers understate FP16 error:
    # real FP16 numerics need a GPU run (see issue 4). Measured here: fp16 ≥ 0.99999, hybrid ≥ 0.99999.
    info, _ = exports["minilm"]
    feeds = real_tokens(info)
    reference = pooled(run_file(variants[("minilm", "fp32")].path, feeds), feeds["attention_mask"])
    for name, bar in (("fp16", 0.999), ("hybrid", 0.9998)):
        vectors = pooled(run_file(variants[("minilm", name)].path, feeds), feeds["attention_mask"])
        assert (reference * vectors).sum(1).min() >= bar, name


@pytest.mark.slow
@pytest.mark.parametrize("key", MODELS)
def test_variant_sizes(key, sources, variants):
    fp32 = variants[(key, "fp32")].size_bytes
    assert variants[(key, "int8")].size_bytes < fp32
    assert variants[(key, "hybrid")].size_bytes < 0.7 * fp32  # int64 index constants stay as they are
    if key == "minilm":  # 22.7M float weights: half the bytes in FP16
        assert variants[(key, "fp16")].size_bytes < 0.52 * fp32
        int8 = onnx.load(str(variants[(key, "int8")].path))
        ops = [n.op_type for n in int8.graph.node]
        assert ops.count("MatMulInteger") == 36 and ops.count("MatMul") == 12  # 6 × (q, k, v, o, up, down)
    if key == "gpt2":  # Conv1D layers are Gemm: rewritten to MatMul so ORT quantizes them too
        ops = [n.op_type for n in onnx.load(str(variants[(key, "int8")].path)).graph.node]
        assert "Gemm" not in ops and ops.count("MatMulInteger") == 8


@pytest.mark.slow
def test_minilm_int8_fidelity_on_real_text(exports, variants):
    """Dynamic int8 costs fidelity (measured here: mean cosine ≈ 0.993): far below the seed's 0.9998 bar."""
    info, _ = exports["minilm"]
    feeds = real_tokens(info)
    reference = pooled(run_file(variants[("minilm", "fp32")].path, feeds), feeds["attention_mask"])
    vectors = pooled(run_file(variants[("minilm", "int8")].path, feeds), feeds["attention_mask"])
    cosine = (reference * vectors).sum(1)
    assert cosine.min() >= 0.95 and cosine.mean() < 0.9998


@pytest.mark.slow
def test_variant_stage_records_then_writes(exports, tmp_path):
    _, path = exports["distilbert"]
    stage = VariantFromOnnx(path, PRESETS["hybrid"], tmp_path / "out" / "hybrid.onnx")
    assert not (tmp_path / "out").exists()
    variant = stage()
    assert variant.path == tmp_path / "out" / "hybrid.onnx" and variant.recipe is PRESETS["hybrid"]
    assert variant.size_bytes == variant.path.stat().st_size > 0


def test_variant_stage_reports_an_unwritable_folder(tmp_path):
    from builder.common.errors import OutputError

    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OutputError):
        VariantFromOnnx(Path("unused.onnx"), PRESETS["fp16"], blocker / "sub" / "x.onnx")()
