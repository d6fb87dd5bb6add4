"""TensorRT build planning without TensorRT: routes, profiles, settings, precision, layer matching, metrics, spec."""

import ast
from pathlib import Path

import numpy as np
import pytest

from builder.common.errors import ConfigError
from builder.gpus import get_profile
from builder.tensorrt.trt_plan import (
    GIB,
    BuildSettings,
    EngineError,
    EngineSpec,
    LayerPin,
    ParsedLayer,
    Route,
    ShapeProfile,
    Thresholds,
    choose_route,
    compare_outputs,
    default_workspace_bytes,
    feed_key,
    group_feeds,
    layer_pin,
    parse_version,
    plan_pins,
    precision_setup,
    reproduce_script,
    shape_profiles,
    source_node,
    toolchain_problem,
)

ROOT = Path(__file__).parents[3]


@pytest.mark.parametrize(
    ("version", "route"),
    [
        ("10.0.0b6", Route.WEAK),
        ("10.0.1.6", Route.WEAK),
        ("10.5.0.18", Route.WEAK),  # the 24.10 containers
        ("10.11.0.33", Route.WEAK),
        ("10.12.0.36", Route.STRONG),  # weak typing deprecated
        ("10.13.3.9", Route.STRONG),
        ("11.0.0", Route.STRONG),  # weak typing removed
        ("11.4.1.2", Route.STRONG),
        (" 12.1 ", Route.STRONG),
    ],
)
def test_route_follows_the_tensorrt_version(version, route):
    assert choose_route(version) is route


@pytest.mark.parametrize(
    ("version", "message"),
    [
        ("8.6.1.6", "older than 10.0: its ONNX parser turns the INT64 token inputs into INT32"),  # builds, cannot serve
        ("9.3.0.1", "older than 10.0"),
        ("8.5.3.1", "older than 10.0"),
        ("10", "cannot read"),
        ("x.y", "cannot"),
    ],
)
def test_unusable_versions_are_refused(version, message):
    with pytest.raises(EngineError, match=message):
        choose_route(version)


@pytest.mark.parametrize(
    ("planned", "tensorrt", "polygraphy", "problem"),
    [
        ("10.5.0.18", "10.5.0.18", "0.53.6", None),
        ("10.5.0.18", "10.7.0", "0.48.1", None),  # same route, the oldest Polygraphy checked
        ("10.5.0.18", "10.5.0.18", "0.47.1", "Polygraphy 0.47.1 is older than 0.48.1"),
        ("10.5.0.18", "10.13.0.35", "0.53.6", "planned for TensorRT 10.5.0.18 (weak typing), not 10.13.0.35"),
    ],
)
def test_the_child_checks_the_installed_toolchain(planned, tensorrt, polygraphy, problem):
    found = toolchain_problem(planned, tensorrt, polygraphy)
    assert found == problem if problem is None else problem in found


def test_parse_version_ignores_tags():
    assert parse_version("10.0.0b6") == (10, 0, 0)
    assert parse_version("10.5.0.post1") == (10, 5, 0)


def test_one_profile_per_bucket_covers_every_length_once():
    profiles = shape_profiles(get_profile("t4"), 256)
    assert [(p.min_length, p.max_length) for p in profiles] == [(1, 16), (17, 32), (33, 64), (65, 128), (129, 256)]
    assert {(p.min_batch, p.opt_batch, p.max_batch) for p in profiles} == {(1, 64, 64)}
    assert all(p.opt_length == p.max_length for p in profiles)  # the tokenizer pads to the bucket
    assert shape_profiles(get_profile("a100"), 512)[-1] == ShapeProfile(1, 128, 128, 257, 512, 512)


def test_chosen_profile_lengths_end_at_the_models_maximum():
    profiles = shape_profiles(get_profile("l4"), 256, lengths=(128, 64))
    assert [(p.min_length, p.max_length) for p in profiles] == [(1, 64), (65, 128), (129, 256)]
    assert profiles[0].shapes(("input_ids", "attention_mask")) == {
        "input_ids": [[1, 1], [64, 64], [64, 64]],
        "attention_mask": [[1, 1], [64, 64], [64, 64]],
    }
    assert profiles[0].ort_shape("max") == "64x64"


def test_profiles_refuse_cpus_and_lengths_beyond_the_model():
    with pytest.raises(ConfigError, match="not a GPU"):
        shape_profiles(get_profile("cpu"), 256)
    with pytest.raises(ConfigError, match="must lie in 1..256"):
        shape_profiles(get_profile("t4"), 256, lengths=(512,))
    with pytest.raises(ConfigError, match="invalid shape profile"):
        ShapeProfile(1, 8, 4, 1, 16, 16)


@pytest.mark.parametrize("version", ["10.5.0.18", "10.8.0"])  # 10.5: the 24.10 containers
def test_same_compute_capability_is_refused_before_tensorrt_10_9(version):
    settings = BuildSettings(GIB, "c", hardware_compatibility="same_compute_capability")
    with pytest.raises(EngineError, match=f"needs TensorRT 10.9 or newer, not {version}"):
        settings.check_target(get_profile("t4"), version)
    settings.check_target(get_profile("t4"), "10.9.0.34")
    settings.check_target(get_profile("t4"), "11.0.0")


def test_tf32_is_off_unless_chosen_and_travels_with_the_spec():
    assert BuildSettings(GIB, "c").tf32 is False  # Polygraphy's default: FP32 layers in strict FP32
    spec = _spec(settings=BuildSettings(GIB, "c", tf32=True))
    assert EngineSpec.from_dict(spec.to_dict()).settings.tf32 is True
    assert spec.to_dict()["settings"]["tf32"] is True


def test_workspace_and_settings():
    assert default_workspace_bytes(get_profile("t4")) == 4 * GIB
    assert default_workspace_bytes(get_profile("h100")) == 8 * GIB  # capped
    BuildSettings(GIB, "c", hardware_compatibility="ampere_plus").check_target(get_profile("a100"), "10.5.0")
    with pytest.raises(ConfigError, match="compute capability 8.0"):
        BuildSettings(GIB, "c", hardware_compatibility="ampere_plus").check_target(get_profile("t4"), "10.5.0")
    with pytest.raises(ConfigError, match="0..5"):
        BuildSettings(GIB, "c", optimization_level=6)
    with pytest.raises(ConfigError, match="unknown hardware"):
        BuildSettings(GIB, "c", hardware_compatibility="turing_plus")


@pytest.mark.parametrize(
    ("precision", "version", "gpu", "flags", "pins", "network"),
    [
        ("fp32", "10.5.0", "t4", (), None, None),
        ("fp16", "10.5.0", "t4", ("fp16",), "fp16", None),
        ("hybrid", "10.5.0", "t4", ("fp16",), "hybrid", None),
        ("int8", "10.5.0", "t4", ("int8", "fp16"), "hybrid", None),  # INT8 keeps hybrid's FP32 layers
        ("bf16", "10.5.0", "a100", ("bf16",), "bf16", None),
        ("hybrid", "10.13.0", "t4", (), None, "hybrid"),  # strong: the Casts in the graph decide
        ("bf16", "11.0.0", "h100", (), None, "bf16"),
        ("fp32", "11.0.0", "h100", (), None, None),
    ],
)
def test_precision_setup_per_route(precision, version, gpu, flags, pins, network):
    setup = precision_setup(precision, choose_route(version), version, get_profile(gpu))
    assert (setup.flags, setup.pin_recipe, setup.network_recipe) == (flags, pins, network)


@pytest.mark.parametrize(
    ("precision", "version", "gpu", "error", "message"),
    [
        ("bf16", "10.5.0", "t4", ConfigError, "GPU profile t4 has no BF16"),
        ("int8", "10.13.0", "a100", EngineError, "Q/DQ"),
        ("fp8", "10.5.0", "h100", ConfigError, "unknown precision"),
    ],
)
def test_precision_setup_refusals(precision, version, gpu, error, message):
    with pytest.raises(error, match=message):
        precision_setup(precision, choose_route(version), version, get_profile(gpu))


@pytest.mark.parametrize(
    ("name", "metadata", "found"),
    [
        ("anything", "[ONNX Layer: node_Softmax_102]", "node_Softmax_102"),
        ("x", "[ONNX Layer: node_layer_norm | Local Function: LayerNorm]", "node_layer_norm"),
        ("node_Softmax_102", "", "node_Softmax_102"),  # no metadata (a helper layer): the name is the node's
        ("node_Softmax_102_7", "", "node_Softmax_102"),  # a second layer of the same node
        ("ONNXTRT_Broadcast_12", "", None),  # a helper layer of the parser
        ("node_MatMul_5", "[ONNX Layer: node_MatMul_5]", None),  # not an FP32 node
        ("node_layer_norm", "[ONNX Layer: renamed_elsewhere]", "node_layer_norm"),
    ],
)
def test_source_node(name, metadata, found):
    assert source_node(name, metadata, {"node_Softmax_102", "node_layer_norm"}) == found


@pytest.mark.parametrize(
    ("layer_type", "inputs", "outputs", "pin"),
    [
        ("SOFTMAX", ["FLOAT"], ["FLOAT"], LayerPin(True, (0,))),
        ("NORMALIZATION", ["FLOAT", "FLOAT", "FLOAT"], ["FLOAT"], LayerPin(True, (0,))),
        ("ELEMENTWISE", ["HALF", "FLOAT"], ["HALF"], LayerPin(True, (0,))),
        ("SHUFFLE", ["FLOAT", "INT64"], ["FLOAT"], LayerPin(False, (0,))),  # a reshape: data float, shape int
        ("ELEMENTWISE", ["INT64", "INT64"], ["INT64"], None),  # shape arithmetic must stay integer
        ("ELEMENTWISE", ["FLOAT", "FLOAT"], ["BOOL"], LayerPin(True, ())),  # IsNaN's EQUAL: x == x computed in FP32
        ("UNARY", ["BOOL"], ["BOOL"], None),  # IsNaN's NOT: no float in it
        ("SELECT", ["BOOL", "FLOAT", "FLOAT"], ["FLOAT"], LayerPin(False, (0,))),  # Where: data in inputs 1 and 2
        ("SELECT", ["BOOL", "INT64", "INT64"], ["INT64"], None),
        ("CAST", ["FLOAT"], ["HALF"], None),
        ("CONSTANT", [], ["FLOAT"], None),
        ("GATHER", ["FLOAT", "INT64"], ["FLOAT"], None),
    ],
)
def test_layer_pin(layer_type, inputs, outputs, pin):
    assert layer_pin(layer_type, inputs, outputs) == pin


def _layer(name, layer_type, inputs, outputs, metadata=None):
    return ParsedLayer(name, f"[ONNX Layer: {name}]" if metadata is None else metadata, layer_type, inputs, outputs)


def test_plan_pins_reports_every_fp32_node_it_cannot_pin():
    nodes = {"sm": "Softmax", "nan": "IsNaN", "where": "Where", "shape": "Shape", "gone": "Softmax"}
    layers = [
        _layer("sm", "SOFTMAX", ("HALF",), ("HALF",)),
        _layer("sm_1", "SHUFFLE", ("FLOAT", "INT64"), ("FLOAT",), metadata=""),
        _layer("nan", "ELEMENTWISE", ("FLOAT", "FLOAT"), ("BOOL",)),
        _layer("nan_1", "UNARY", ("BOOL",), ("BOOL",), metadata="[ONNX Layer: nan]"),
        _layer("where", "SELECT", ("BOOL", "FLOAT", "FLOAT"), ("FLOAT",)),
        _layer("shape", "SHAPE", ("FLOAT",), ("INT64",)),
        _layer("node_MatMul_1", "MATRIX_MULTIPLY", ("HALF", "HALF"), ("HALF",)),
    ]
    plan = plan_pins(layers, nodes)
    assert plan.pins == {
        0: LayerPin(True, (0,)),
        1: LayerPin(False, (0,)),
        2: LayerPin(True, ()),
        4: LayerPin(False, (0,)),
    }
    assert plan.pinned_nodes == {"sm": ("sm", "sm_1"), "nan": ("nan",), "where": ("where",)}
    assert set(plan.pinned_nodes) | set(plan.unpinned) == set(nodes)  # every node accounted for
    assert plan.unpinned["shape"] == "its layers (SHAPE) carry no float arithmetic to keep in FP32"
    assert plan.unpinned["gone"].startswith("no layer of the parsed network came from it")


def test_compare_outputs_uses_valid_tokens_only():
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(2, 4, 8)).astype(np.float32)
    mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0]])
    candidate = reference.copy()
    candidate[1, 2:] = 1e6  # padding: whatever an engine writes there does not count
    same = compare_outputs("h", 0, reference, candidate, mask)
    assert (same.min_cosine, same.max_abs_diff, same.nonfinite) == (pytest.approx(1.0), 0.0, 0)
    assert same.problems(Thresholds(0.9998, 1e-3)) == []
    candidate[0, 1] = -reference[0, 1]
    candidate[0, 3, 0] = np.nan
    bad = compare_outputs("h", 2, reference, candidate, mask)
    assert bad.min_cosine == pytest.approx(-1.0) and bad.nonfinite == 1 and bad.shape == (2, 4, 8)
    problems = bad.problems(Thresholds(0.9998, 1e-3))
    assert len(problems) == 3 and problems[0].startswith("h (shape profile 2, shape [2, 4, 8]): 1 NaN/Inf")
    assert bad.record()["profile"] == 2 and "shape_profile" not in bad.record()  # build records keep their keys


def test_compare_outputs_per_row_for_pooled_outputs():
    reference = np.array([[1.0, 0.0], [0.0, 2.0]])
    result = compare_outputs("p", 0, reference, reference * 3, np.ones((2, 5)))
    assert result.min_cosine == pytest.approx(1.0) and result.max_abs_diff == pytest.approx(4.0)


def test_feeds_round_trip_through_their_keys():
    arrays = {feed_key(p, b, n): np.full((1, p + 1), b) for p in (1, 0) for b in (1, 0) for n in ("ids", "mask")}
    grouped = group_feeds(arrays)
    assert list(grouped) == [0, 1] and [sorted(batch) for batch in grouped[1]] == [["ids", "mask"]] * 2
    assert grouped[1][1]["ids"].tolist() == [[1, 1]]


def _spec(**changes):
    base = {
        "engine": "model.plan",
        "network_onnx": "model.onnx",
        "reference_onnx": "model.onnx",
        "gpu": "t4",
        "precision": "hybrid",
        "tensorrt_version": "10.5.0",
        "route": Route.WEAK,
        "flags": ("fp16",),
        "fp32_nodes": {"node_Softmax_1": "Softmax"},
        "input_names": ("input_ids", "attention_mask"),
        "shape_profiles": shape_profiles(get_profile("t4"), 256),
        "settings": BuildSettings(4 * GIB, "/cache/t4.cache"),
        "feeds": "model.plan.feeds.npz",
        "thresholds": Thresholds(0.9998, 0.05),
    }
    return EngineSpec(**{**base, **changes})


def test_spec_round_trips_through_plain_data():
    for spec in (_spec(), _spec(route=Route.STRONG, flags=(), fp32_nodes={}, thresholds=None, feeds=None)):
        assert EngineSpec.from_dict(spec.to_dict()) == spec
    assert _spec().precision_constraints == "obey"
    assert _spec(route=Route.STRONG, fp32_nodes={}).precision_constraints is None


def test_reproduce_script_is_standalone_python_that_carries_the_whole_spec():
    spec = _spec()
    text = reproduce_script(spec, "9.9.9")
    tree = ast.parse(text)
    assigned = next(n for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "SPEC")
    assert EngineSpec.from_dict(ast.literal_eval(assigned.value)) == spec
    imports = [n for n in tree.body if isinstance(n, ast.ImportFrom)]
    assert [(n.module, [a.name for a in n.names]) for n in imports] == [
        ("pathlib", ["Path"]),
        ("builder.tensorrt.tensorrt_engine", ["main"]),
    ]
    assert text.startswith("#!/usr/bin/env python3\n") and "python3 model.plan.build.py" in text
    assert "TensorRT 10.5.0, weak typing, precision hybrid, GPU profile t4" in text


@pytest.mark.parametrize(
    "module",
    [
        "tensorrt/trt_plan",
        "tensorrt/tensorrt_engine",
        "tensorrt/__init__",
        "tensorrt_engine",  # the import path of reproduce scripts written before builder/tensorrt/
        "gpus",
        "common/errors",
        "common/__init__",
        "__init__",
    ],
)
def test_the_child_process_modules_parse_as_python_3_10(module):
    # The reproduce script runs in nvcr.io/nvidia/tensorrt:24.10-py3, whose Python is 3.10.
    source = (ROOT / "builder" / f"{module}.py").read_text()
    ast.parse(source, feature_version=(3, 10))
    assert "StrEnum" not in source and "datetime.UTC" not in source
