"""GPU memory a served tensorrt_plan model will hold, estimated from its ONNX graph before anything is built.

Triton's TensorRT backend (r24.10) gives every instance one execution context per profile it lists, and
TensorRT sizes each context for the largest profile (kSTATIC allocation). Engines with dynamic shapes are
not shared between instances, so each instance also holds its own copy of the weights. The activation
figure is the peak of the tensors alive at once when the graph runs node by node at the largest profile's
shape: an unfused upper estimate (TensorRT fuses attention and reuses memory), never measured on an engine.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto

from builder.tensorrt.trt_plan import MemoryEstimate

_BYTES = {
    TensorProto.FLOAT: 4, TensorProto.FLOAT16: 2, TensorProto.BFLOAT16: 2, TensorProto.DOUBLE: 8,
    TensorProto.INT64: 8, TensorProto.INT32: 4, TensorProto.INT8: 1, TensorProto.UINT8: 1, TensorProto.BOOL: 1,
}  # fmt: skip


def _shaped(model: onnx.ModelProto, batch: int, length: int) -> tuple[dict[str, int], set[str]]:
    """Bytes of each tensor whose shape shape inference resolves with the inputs at batch × length; the FP32 ones."""
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    for tensor in fixed.graph.input:
        for dim, value in zip(tensor.type.tensor_type.shape.dim, (batch, length), strict=False):
            dim.ClearField("dim_param")
            dim.dim_value = value
    typed = onnx.shape_inference.infer_shapes(fixed, data_prop=True)
    sizes, floats = {}, set()
    for info in typed.graph.value_info:
        kind, dims = info.type.tensor_type.elem_type, info.type.tensor_type.shape.dim
        if all(d.HasField("dim_value") for d in dims):
            sizes[info.name] = int(np.prod([d.dim_value for d in dims], dtype=np.int64)) * _BYTES.get(kind, 4)
        if kind == TensorProto.FLOAT:
            floats.add(info.name)
    return sizes, floats


def _peak_bytes(graph: onnx.GraphProto, nbytes: dict[str, int]) -> int:
    """The most bytes of intermediate tensors alive at once, running the nodes in graph order."""
    last_use = {name: index for index, node in enumerate(graph.node) for name in node.input}
    io = {t.name for t in (*graph.input, *graph.output)}  # Triton's I/O buffers, not the context's memory
    alive: set[str] = set()
    live = peak = 0
    for index, node in enumerate(graph.node):
        if node.op_type == "Constant":
            continue
        produced = {o for o in node.output if o in nbytes and o not in io}
        alive |= produced
        live += sum(nbytes[o] for o in produced)
        peak = max(peak, live)
        for name in (set(node.input) | produced) & alive:
            if last_use.get(name, index) <= index:  # no later node reads it
                alive.discard(name)
                live -= nbytes[name]
    return peak


def estimate_memory(
    model: onnx.ModelProto,
    fp32_nodes: set[str],
    half: bool,
    shape: tuple[int, int],
    contexts: tuple[int, int],
    gpu_bytes: int,
) -> MemoryEstimate:
    """The estimate for the FP32 graph `model` built in FP16/BF16 (`half`, but for `fp32_nodes`) or in FP32.

    `shape` is the largest profile's batch × length; `contexts` the instances and the contexts of each.
    """
    sizes, floats = _shaped(model, *shape)
    halved = {o for node in model.graph.node if node.name not in fp32_nodes for o in node.output} & floats
    nbytes = {name: size // 2 if half and name in halved else size for name, size in sizes.items()}
    weights = 0
    for tensor in model.graph.initializer:
        size = int(np.prod(tensor.dims, dtype=np.int64)) * _BYTES.get(tensor.data_type, 4)
        weights += size // 2 if half and tensor.data_type == TensorProto.FLOAT else size
    outputs = {t.name for t in model.graph.output}
    unknown = {o for node in model.graph.node if node.op_type != "Constant" for o in node.output} - set(sizes)
    return MemoryEstimate(
        instances=contexts[0],
        contexts_per_instance=contexts[1],
        weights_bytes=weights,
        context_bytes=_peak_bytes(model.graph, nbytes),
        gpu_bytes=gpu_bytes,
        unknown_tensors=len(unknown - outputs),
    )
