"""Engine builds up to the TensorRT call: the missing-TensorRT error, the child process, the files a build
leaves, the FP32 layers of a real exported graph, and the pinning code on a stand-in network.

TensorRT cannot be installed on these machines, so no test here builds an engine. Where a network is
needed, `FakeNetwork` stands in for what TensorRT's ONNX parser makes of the real graph (layer names,
metadata, types, tensor dtypes); it is labelled as such and proves the wiring, not TensorRT's behaviour.
"""

import ast
import importlib.util
import json
from types import SimpleNamespace

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from click.testing import CliRunner
from onnx import TensorProto

import builder.tensorrt.tensorrt_engine as tensorrt_engine
from builder.cli import main
from builder.gpus import get_profile
from builder.repository.modelconfig import parse_config
from builder.repository.pipeline import make_repo
from builder.sources.export import OnnxFromModel, write_export_record
from builder.sources.source import inspect_model, save_tokenizer_json
from builder.tensorrt.engine_build import (
    EngineBuildError,
    EngineFromOnnx,
    EngineOptions,
    TensorRTNotFoundError,
    check_prebuilt,
    installed_tensorrt,
    plan_engine,
    run_build,
)
from builder.tensorrt.trt_plan import (
    EngineError,
    EngineSpec,
    Route,
    compare_outputs,
    fp32_layer_nodes,
    group_feeds,
    shape_profiles,
)

no_tensorrt = pytest.mark.skipif(installed_tensorrt() is not None, reason="TensorRT is installed here")


# --- without TensorRT ---------------------------------------------------------------------------------------


@no_tensorrt
def test_an_importable_tensorrt_namespace_is_not_tensorrt():
    if importlib.util.find_spec("tensorrt") is not None:  # tensorrt-stubs installed: an empty namespace package
        import tensorrt

        assert not hasattr(tensorrt, "Builder")
    assert installed_tensorrt() is None


@no_tensorrt
def test_engine_stage_fails_before_writing_anything(tmp_path):
    options = EngineOptions(get_profile("t4"), "hybrid", 256)
    with pytest.raises(TensorRTNotFoundError) as caught:
        EngineFromOnnx(tmp_path / "missing.onnx", tmp_path / "out" / "model.plan", options)()
    assert not (tmp_path / "out").exists()
    hint = caught.value.hint
    assert "pip install --extra-index-url https://pypi.nvidia.com tensorrt" in hint
    assert "scripts/build_engine_ngc.sh" in hint and "nvcr.io/nvidia/tensorrt:24.10-py3" in hint
    assert "specific to the GPU" in hint


@no_tensorrt
@pytest.mark.parametrize(
    "args",
    [
        ["engine", "--onnx", "{tmp}/model.onnx", "--gpu", "t4", "--output", "{tmp}/out/model.plan"],
        ["make-repo", "--engine", "tensorrt", "--gpu", "t4", "--precision", "hybrid", "--output", "{tmp}/out/repo"],
    ],
)
def test_cli_without_tensorrt_exits_1_with_both_ways_out(args, tmp_path):
    result = CliRunner().invoke(main, [a.format(tmp=tmp_path) for a in args])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "error: TensorRT is not installed here" in result.output
    assert "hint:" in result.output and "pip install" in result.output and "build_engine_ngc.sh" in result.output
    assert not (tmp_path / "out").exists()


# --- the child process ----------------------------------------------------------------------------------------


def _child(tmp_path, body):
    script = tmp_path / "model.plan.build.py"
    script.write_text(f"import os, signal, sys\n{body}\n")
    return script


def test_a_crash_in_the_child_is_an_error_in_the_parent(tmp_path):
    script = _child(tmp_path, "print('loading TensorRT'); os.kill(os.getpid(), signal.SIGSEGV)")
    with pytest.raises(EngineBuildError, match="crashed \\(signal 11\\)") as caught:
        run_build(script, tmp_path / "model.plan")
    assert "loading TensorRT" in str(caught.value) and "rerun: python3" in caught.value.hint


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("print('verification: h: min cosine 0.9 < 0.9998'); sys.exit(4)", "failed verification"),
        ("print('planned for TensorRT 10.5.0 (weak typing), not 10.13.0'); sys.exit(3)", "not 10.13.0"),
        ("raise RuntimeError('parser: unsupported node')", "exit code 1"),
        ("pass", "exit code 0"),  # exited cleanly without writing an engine
    ],
)
def test_child_failures_are_reported_with_the_log(tmp_path, body, message):
    with pytest.raises(EngineBuildError, match=message):
        run_build(_child(tmp_path, body), tmp_path / "model.plan")
    assert (tmp_path / "model.plan.build.log").is_file()


def test_a_successful_child_returns_its_record(tmp_path):
    body = (
        "open('model.plan', 'wb').write(b'engine')\n"
        "open('model.plan.build.json', 'w').write('{\"verified\": true}')\n"
        "import builder.tensorrt.trt_plan"  # the child can import this project wherever it runs from
    )
    assert run_build(_child(tmp_path, body), tmp_path / "model.plan") == {"verified": True}


# --- a real exported graph ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm_onnx(tmp_path_factory):
    info = inspect_model("minilm", "feature-extraction")
    folder = tmp_path_factory.mktemp("minilm-onnx")
    OnnxFromModel(info, folder / "model.onnx")()
    save_tokenizer_json(info, folder / "tokenizer.json")
    write_export_record(info, folder)  # as `tritonbuild export` leaves it
    return folder / "model.onnx"


@pytest.fixture(scope="module")
def graph(minilm_onnx):
    return onnx.load(str(minilm_onnx))


@pytest.mark.slow
def test_hybrid_pins_every_softmax_and_layernorm_of_minilm_and_no_matmul(graph):
    nodes = fp32_layer_nodes(graph, "hybrid")
    ops = {op: sum(1 for o in nodes.values() if o == op) for op in set(nodes.values())}
    assert ops == {"LayerNormalization": 13, "Softmax": 6, "IsNaN": 6, "Where": 6}
    in_graph = {n.name for n in graph.graph.node if n.op_type in ("Softmax", "LayerNormalization")}
    assert in_graph <= set(nodes)
    assert fp32_layer_nodes(graph, "fp16") == {}  # every op of this graph has an FP16 kernel


def _script_only(minilm_onnx, tmp_path, version, precision="hybrid", gpu="t4"):
    tokenizer, cache = minilm_onnx.parent / "tokenizer.json", tmp_path / "cache" / "timing.cache"
    options = EngineOptions(get_profile(gpu), precision, 256, timing_cache=cache, tokenizer=tokenizer)
    stage = EngineFromOnnx(
        minilm_onnx, tmp_path / "engine" / "model.plan", options, tensorrt_version=version, build=False
    )
    return stage()


def _script_spec(script):
    tree = ast.parse(script.read_text())
    value = next(n.value for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "SPEC")
    return EngineSpec.from_dict(ast.literal_eval(value))


@pytest.mark.slow
def test_weak_route_plan_pins_the_hybrid_nodes_and_parses_the_fp32_graph(minilm_onnx, tmp_path):
    result = _script_only(minilm_onnx, tmp_path, "10.5.0.18")
    spec = result.spec
    assert result.record is None and not (tmp_path / "engine" / "model.plan").exists()  # nothing claims a build
    assert (spec.route, spec.flags, spec.precision_constraints) == (Route.WEAK, ("fp16",), "obey")
    assert spec.network_onnx == spec.reference_onnx == str(minilm_onnx.resolve())  # outside the engine folder
    assert len(spec.fp32_nodes) == 31 and spec.settings.timing_cache == str(tmp_path / "cache" / "timing.cache")
    assert _script_spec(result.script) == spec
    assert sorted(p.name for p in result.script.parent.iterdir()) == ["model.plan.build.py", "model.plan.feeds.npz"]


def _engine_cli(minilm_onnx, tmp_path, *extra):
    args = ["engine", "--onnx", str(minilm_onnx), "--gpu", "t4", "--output", str(tmp_path / "e" / "model.plan")]
    return CliRunner().invoke(main, [*args, "--tensorrt-version", "10.5.0.18", "--script-only", *extra])


@pytest.mark.slow
def test_cli_records_tf32_and_refuses_same_compute_capability_before_10_9(minilm_onnx, tmp_path):
    result = _engine_cli(minilm_onnx, tmp_path, "--max-length", "256", "--tf32", "--no-verify")
    assert result.exit_code == 0, result.output
    assert "TF32 on for FP32 layers" in result.output
    # The plan says what the served model will hold: 2 instances × 5 profiles = 10 execution contexts on the t4.
    assert (
        "GPU memory estimate" in result.output and "2 instances × (" in result.output and "5 contexts" in result.output
    )
    memory = _script_spec(tmp_path / "e" / "model.plan.build.py").memory
    assert (memory.instances, memory.contexts_per_instance, memory.gpu_bytes) == (2, 5, 16 << 30)
    assert _script_spec(tmp_path / "e" / "model.plan.build.py").settings.tf32 is True
    refused = _engine_cli(
        minilm_onnx, tmp_path / "x", "--max-length", "256", "--hardware-compat", "same_compute_capability"
    )
    assert refused.exit_code == 1 and "needs TensorRT 10.9 or newer, not 10.5.0.18" in refused.output
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_engine_defaults_to_the_models_maximum_length_as_make_repo_does(minilm_onnx, tmp_path):
    result = _engine_cli(minilm_onnx, tmp_path, "--no-verify")  # no --max-length
    assert result.exit_code == 0, result.output
    spec = _script_spec(tmp_path / "e" / "model.plan.build.py")
    info = inspect_model("minilm", "feature-extraction")
    assert spec.shape_profiles[-1].max_length == info.max_length == 256  # not t4's last bucket, 512
    # check_prebuilt, which make-repo runs on --engine-file, wants exactly these profiles
    assert spec.shape_profiles == shape_profiles(get_profile("t4"), info.max_length)


@pytest.mark.slow
def test_engine_without_an_export_record_asks_for_the_maximum_length(minilm_onnx, tmp_path):
    elsewhere = tmp_path / "bare" / "model.onnx"
    elsewhere.parent.mkdir()
    elsewhere.write_bytes(minilm_onnx.read_bytes())
    args = ["engine", "--onnx", str(elsewhere), "--gpu", "t4", "--output", str(tmp_path / "e" / "model.plan")]
    result = CliRunner().invoke(main, [*args, "--tensorrt-version", "10.5.0.18", "--script-only", "--no-verify"])
    assert result.exit_code == 1 and "no export.json beside" in result.output and "--max-length" in result.output
    assert not (tmp_path / "e").exists()


@pytest.mark.slow
def test_real_text_feeds_fit_their_profiles(minilm_onnx, tmp_path):
    result = _script_only(minilm_onnx, tmp_path, "10.5.0.18")
    feeds = group_feeds(dict(np.load(result.script.parent / result.spec.feeds)))
    assert sorted(feeds) == list(range(len(result.spec.shape_profiles)))
    for index, batches in feeds.items():
        profile = result.spec.shape_profiles[index]
        for feed in batches:
            batch, length = feed["input_ids"].shape
            assert profile.min_length <= length <= profile.max_length and 1 <= batch <= profile.max_batch
            assert feed["attention_mask"][0].all()  # the first text fills the whole length
            assert feed["input_ids"][0].min() > 0 and feed["input_ids"].max() < 30522  # real BERT ids


@pytest.mark.slow
def test_strong_route_writes_the_cast_graph_and_its_outputs_pass_the_bar_on_onnx_runtime(minilm_onnx, tmp_path):
    result = _script_only(minilm_onnx, tmp_path, "10.13.0.35")
    spec, folder = result.spec, result.script.parent
    assert (spec.route, spec.flags, spec.fp32_nodes, spec.precision_constraints) == (Route.STRONG, (), {}, None)
    assert spec.network_onnx == "model.plan.network.onnx"
    network = onnx.load(str(folder / spec.network_onnx))
    assert any(n.op_type == "Cast" for n in network.graph.node)
    assert TensorProto.FLOAT16 in {i.data_type for i in network.graph.initializer}  # FP16 weights
    # The same metrics the engine's verification uses, here on ONNX Runtime's CPU (which understates FP16 error).
    reference = ort.InferenceSession(spec.reference_onnx, providers=["CPUExecutionProvider"])
    candidate = ort.InferenceSession(str(folder / spec.network_onnx), providers=["CPUExecutionProvider"])
    feed = group_feeds(dict(np.load(folder / spec.feeds)))[3][0]
    (want,), (got,) = reference.run(None, feed), candidate.run(None, feed)
    fidelity = compare_outputs("last_hidden_state", 3, want, got, feed["attention_mask"])
    assert fidelity.problems(spec.thresholds) == [], fidelity


@pytest.mark.slow
def test_int8_is_refused_on_the_strong_route_before_files_are_written(minilm_onnx, tmp_path):
    with pytest.raises(EngineError, match="Q/DQ"):
        _script_only(minilm_onnx, tmp_path, "11.0.0", precision="int8")
    assert not (tmp_path / "engine").exists()


# --- the pinning code on a stand-in for TensorRT's parsed network ------------------------------------------------

# What TensorRT 10's ONNX parser makes of each op (onnx-tensorrt's onnxOpImporters.cpp): IsNaN becomes an
# ELEMENTWISE EQUAL (x == x, BOOL output) and a UNARY NOT, both registered under the node; Where a SELECT.
_LAYERS = {
    "MatMul": ["MATRIX_MULTIPLY"], "Softmax": ["SOFTMAX"], "LayerNormalization": ["NORMALIZATION"],
    "Erf": ["UNARY"], "IsNaN": ["ELEMENTWISE", "UNARY"], "Where": ["SELECT"], "Reshape": ["SHUFFLE"],
    "Transpose": ["SHUFFLE"], "Unsqueeze": ["SHUFFLE"], "Gather": ["GATHER"], "Shape": ["SHAPE"], "Cast": ["CAST"],
    "Slice": ["SLICE"], "Concat": ["CONCATENATION"],
}  # fmt: skip
_DTYPE = {TensorProto.FLOAT: "FLOAT", TensorProto.INT64: "INT64", TensorProto.BOOL: "BOOL"}


class FakeLayer:
    """The attributes of trt.ILayer that pin_fp32_layers reads and writes."""

    def __init__(self, name, metadata, layer_type, inputs, outputs):
        self.name, self.metadata, self.type = name, metadata, SimpleNamespace(name=layer_type)
        self.inputs = [SimpleNamespace(dtype=SimpleNamespace(name=t)) for t in inputs]
        self.outputs = [SimpleNamespace(dtype=SimpleNamespace(name=t)) for t in outputs]
        self.num_inputs, self.num_outputs = len(inputs), len(outputs)
        self.precision, self.output_types = None, {}

    def get_input(self, index):
        return self.inputs[index]

    def get_output(self, index):
        return self.outputs[index]

    def set_output_type(self, index, dtype):
        self.output_types[index] = dtype.name


class FakeNetwork:
    def __init__(self, layers):
        self.layers, self.num_layers = layers, len(layers)

    def get_layer(self, index):
        return self.layers[index]


def _parsed(graph):
    """Layers as TensorRT 10's parser names them: per node, with its metadata (repeats suffixed _N), plus helpers."""
    typed = onnx.shape_inference.infer_shapes(graph)
    types = {v.name: v.type.tensor_type.elem_type for v in (*typed.graph.input, *typed.graph.value_info)}
    types |= {t.name: t.data_type for t in typed.graph.initializer}
    layers = []
    for node in graph.graph.node:
        if node.op_type == "Constant":
            continue
        inputs = [_DTYPE.get(types.get(i), "FLOAT") for i in node.input if i]
        outputs = [_DTYPE.get(types.get(o), "FLOAT") for o in node.output]
        kinds = _LAYERS.get(node.op_type, ["ELEMENTWISE"])
        for index, kind in enumerate(kinds):
            name = f"{node.name}_{index}" if index else node.name
            if node.op_type == "IsNaN":  # EQUAL(x, x) → BOOL, then NOT(BOOL) → BOOL
                inputs, outputs = ([inputs[0]] * 2, ["BOOL"]) if index == 0 else (["BOOL"], ["BOOL"])
            layers.append(FakeLayer(name, f"[ONNX Layer: {node.name}]", kind, inputs, outputs))
        if node.op_type == "Softmax":  # the parser reshapes around a softmax: same node, a suffixed name
            layers.append(FakeLayer(f"{node.name}_1", "", "SHUFFLE", ["FLOAT", "INT64"], ["FLOAT"]))
            layers.append(FakeLayer(f"ONNXTRT_Broadcast_{len(layers)}", "", "SHUFFLE", ["FLOAT"], ["FLOAT"]))
    return layers


def _fake_trt(monkeypatch):
    monkeypatch.setattr(
        tensorrt_engine, "trt", SimpleNamespace(DataType=SimpleNamespace(FLOAT=SimpleNamespace(name="FLOAT")))
    )


@pytest.mark.slow
def test_pinning_on_a_stand_in_network_parsed_from_minilm(graph, monkeypatch):
    _fake_trt(monkeypatch)
    nodes = fp32_layer_nodes(graph, "hybrid")
    layers = _parsed(graph)
    plan = tensorrt_engine.pin_fp32_layers(FakeNetwork(layers), nodes)
    pinned = {name for names in plan.pinned_nodes.values() for name in names}
    by_op = {n.name: n.op_type for n in graph.graph.node}
    assert pinned == set(nodes) | {f"{n}_1" for n, op in by_op.items() if op == "Softmax"}  # IsNaN's NOT is not
    for layer in layers:
        touched = layer.name in pinned
        assert (layer.precision is not None) == (touched and layer.type.name not in ("SHUFFLE", "SELECT"))
        floats = {i: "FLOAT" for i, t in enumerate(o.dtype.name for o in layer.outputs) if t == "FLOAT"}
        assert layer.output_types == (floats if touched else {})
    with pytest.raises(RuntimeError, match="none of the 2 FP32 nodes"):
        tensorrt_engine.pin_fp32_layers(FakeNetwork(layers), {"gone_1": "Softmax", "gone_2": "Softmax"})


@pytest.mark.slow
def test_every_hybrid_fp32_node_maps_to_a_pinned_layer_or_is_reported(graph, monkeypatch):
    _fake_trt(monkeypatch)
    nodes = fp32_layer_nodes(graph, "hybrid")
    assert len(nodes) == 31
    plan = tensorrt_engine.pin_fp32_layers(FakeNetwork(_parsed(graph)), nodes)
    assert set(plan.pinned_nodes) == set(nodes) and plan.unpinned == {}  # Where and IsNaN included
    # A node the parser folded away, or one left with BOOL layers only, is reported by name, with why.
    where = next(n for n, op in nodes.items() if op == "Where")
    isnan = next(n for n, op in nodes.items() if op == "IsNaN")
    layers = [layer for layer in _parsed(graph) if layer.name != where and layer.name != isnan]
    plan = tensorrt_engine.pin_fp32_layers(FakeNetwork(layers), nodes)
    assert set(plan.pinned_nodes) | set(plan.unpinned) == set(nodes)
    assert plan.unpinned[where].startswith("no layer of the parsed network came from it")
    assert plan.unpinned[isnan] == "its layers (UNARY) carry no float arithmetic to keep in FP32"


# --- engines built elsewhere ----------------------------------------------------------------------------------


def _prebuilt(minilm_onnx, folder, gpu="t4", precision="hybrid", verified=True):
    """An engine file and build record as a verified container build leaves them (the bytes are not an engine)."""
    options = EngineOptions(get_profile(gpu), precision, 256)
    engine = folder / "model.plan"
    spec = plan_engine(onnx.load(str(minilm_onnx)), minilm_onnx, engine, options, "10.5.0.18")
    folder.mkdir(parents=True, exist_ok=True)
    engine.write_bytes(b"stand-in bytes, not a TensorRT engine")
    record = {"spec": spec.to_dict(), "tensorrt": "10.5.0.18", "verified": verified}
    (folder / "model.plan.build.json").write_text(json.dumps(record))
    return engine


@pytest.mark.slow
def test_a_prebuilt_engine_must_fit_the_repository(minilm_onnx, tmp_path):
    engine = _prebuilt(minilm_onnx, tmp_path / "ok")
    assert check_prebuilt(engine, get_profile("t4"), "hybrid", 256)["tensorrt"] == "10.5.0.18"
    other = _prebuilt(minilm_onnx, tmp_path / "other", gpu="a10g", precision="fp16", verified=False)
    with pytest.raises(EngineError) as caught:
        check_prebuilt(other, get_profile("t4"), "hybrid", 128)
    message = str(caught.value)
    for misfit in (
        "GPU profile: engine a10g, repository t4",
        "precision: engine fp16",
        "shape profiles",
        "not verified",
    ):
        assert misfit in message
    with pytest.raises(EngineError, match="build record"):
        check_prebuilt(tmp_path / "none.plan", get_profile("t4"), "hybrid", 256)


@pytest.mark.slow
def test_make_repo_places_a_prebuilt_engine_in_a_tensorrt_plan_repository(minilm_onnx, tmp_path):
    engine = _prebuilt(minilm_onnx, tmp_path / "built")
    repo = tmp_path / "repo"
    lines = []
    make_repo(
        "minilm", "feature-extraction", "m", "tensorrt", "t4", repo, force=False, trust_remote_code=False,
        echo=lines.append, precision="hybrid", engine_file=engine,
    )  # fmt: skip
    version = repo / "m_model" / "1"
    assert sorted(p.name for p in version.iterdir()) == ["model.onnx", "model.plan", "model.plan.build.json"]
    assert (version / "model.plan").read_bytes() == engine.read_bytes()
    config = parse_config((repo / "m_model" / "config.pbtxt").read_text())
    assert config.platform == "tensorrt_plan" and list(config.instance_group[0].profile) == ["0", "1", "2", "3", "4"]
    assert any("tritonserver must run the same TensorRT version" in line for line in lines)
