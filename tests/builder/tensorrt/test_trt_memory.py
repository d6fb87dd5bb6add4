"""The GPU memory estimate of a served tensorrt_plan model: liveness peak, weights, and the budget check."""

from dataclasses import replace

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from builder.gpus import get_profile
from builder.tensorrt.trt_memory import estimate_memory
from builder.tensorrt.trt_plan import GIB, MemoryEstimate


def _chain():
    """x → a = Relu(x) → b = Relu(a) → c = a + b → y = Relu(c) (output), with a 3 × 5 weight on the side."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "seq"])
    w = numpy_helper.from_array(np.zeros((3, 5), dtype=np.float32), "w")
    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="n_a"),
        helper.make_node("Relu", ["a"], ["b"], name="n_b"),
        helper.make_node("Add", ["a", "b"], ["c"], name="n_c"),
        helper.make_node("Relu", ["c"], ["y"], name="n_y"),
    ]
    return helper.make_model(helper.make_graph(nodes, "chain", [x], [y], [w]))


def test_peak_counts_the_tensors_alive_at_once_and_halves_what_runs_in_fp16():
    unit = 8 * 16 * 4  # one [8, 16] FP32 tensor
    full = estimate_memory(_chain(), set(), half=False, shape=(8, 16), contexts=(2, 5), gpu_bytes=GIB)
    assert full.context_bytes == 3 * unit  # a, b and c alive while c is computed; x and y are Triton's buffers
    assert full.weights_bytes == 3 * 5 * 4 and full.unknown_tensors == 0
    assert full.total_bytes == 2 * (full.weights_bytes + 5 * full.context_bytes)  # ten contexts
    half = estimate_memory(_chain(), {"n_c"}, half=True, shape=(8, 16), contexts=(2, 5), gpu_bytes=GIB)
    assert half.context_bytes == unit // 2 + unit // 2 + unit  # c stays FP32 (a pinned node)
    assert half.weights_bytes == 3 * 5 * 2


def test_the_budget_warns_when_the_estimate_exceeds_the_gpu():
    fits = MemoryEstimate(2, 5, GIB, GIB, 16 * GIB, 0)
    assert fits.total_bytes == 12 * GIB and fits.warning() is None
    assert fits.summary().startswith("GPU memory estimate 12.0 of 16 GiB: 2 instances × (1.00 GiB weights + 5 contexts")
    too_much = replace(fits, context_bytes=2 * GIB)
    assert too_much.total_bytes == 22 * GIB and "exceeds the GPU's 16 GiB" in too_much.warning()


@pytest.mark.slow
def test_minilm_on_a_t4_fits_and_on_a_small_gpu_is_warned(tmp_path_factory):
    from builder.sources.export import OnnxFromModel
    from builder.sources.source import inspect_model
    from builder.tensorrt.trt_plan import fp32_layer_nodes

    folder = tmp_path_factory.mktemp("minilm-memory")
    OnnxFromModel(inspect_model("minilm", "feature-extraction"), folder / "model.onnx")()
    model = onnx.load(str(folder / "model.onnx"), load_external_data=False)
    t4 = get_profile("t4")
    nodes = set(fp32_layer_nodes(model, "hybrid"))
    estimate = estimate_memory(model, nodes, True, (64, 256), (t4.model_instances, 5), t4.memory_gib * GIB)
    assert estimate.instances * estimate.contexts_per_instance == 10
    # The [64, 12, 256, 256] attention scores dominate: at least one FP32 copy per context (softmax pinned).
    assert estimate.context_bytes >= 64 * 12 * 256 * 256 * 4 and estimate.warning() is None
    assert estimate.unknown_tensors < 30  # shape inference resolves nearly every tensor
    small = estimate_memory(model, nodes, True, (64, 256), (2, 5), 2 * GIB)
    assert "exceeds the GPU's 2 GiB" in small.warning()
