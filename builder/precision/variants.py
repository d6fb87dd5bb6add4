"""Precision variants of an exported graph: a recipe of builder.precision.presets applied to an ONNX file.

`place` turns a recipe and a graph into a `Placement` without writing anything: the dtype each float node
computes in and each float tensor ends up with. `apply_recipe` materialises it as a strongly typed graph
with explicit Casts, the only form of mixed precision TensorRT 11 accepts (it dropped per-layer precision
flags) and one that ONNX Runtime runs as is. `fp32_nodes` is the set a TensorRT builder would pin to FP32;
it is read off the same placement, so graph and pin list agree.

Known limits: ONNX Runtime's CPU provider has no BF16 kernels (Add, MatMul), so BF16 variants are valid
ONNX that only a GPU runtime loads. ONNX Runtime 1.31's LayerNormFusion folds the Cast in front of a
Div-form decomposed LayerNorm kept in FP32 into a LayerNormalization with FP16 input and FP32 scale,
which it then refuses to load; keeping residual Adds FP32 avoids that Cast. torch.export writes fused
LayerNormalization nodes, so the project's own exports never meet it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from builder.common.errors import OutputError
from builder.precision.presets import (
    BFLOAT16,
    FLOAT,
    FLOAT16,
    NORM_OPS,
    PrecisionError,
    PrecisionRecipe,
    Quantization,
)

_PROTOBUF_LIMIT = 2**31 - 2**24  # stay clear of protobuf's 2 GiB ceiling (weights go to external data then)


# Exact in any float dtype (they move or select values, never round them): they take the dtype of their
# computed inputs, so an FP32 region does not bounce through FP16 on a Reshape or Transpose.
NEUTRAL_OPS = frozenset(
    {
        "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "Identity", "Slice", "Gather",
        "GatherElements", "GatherND", "Expand", "Concat", "Split", "Tile", "Where", "IsNaN", "IsInf",
        "Shape", "Size", "Pad", "DepthToSpace", "SpaceToDepth", "ScatterND", "ScatterElements", "Compress",
    }
)  # fmt: skip
# Arithmetic a decomposed LayerNorm/RMSNorm is written with, between its input and its final division.
_DECOMPOSED_NORM_OPS = frozenset({"ReduceMean", "Sub", "Pow", "Mul", "Add", "Sqrt", "Reciprocal", "Div", "Cast"})
_ATTRIBUTE_TYPED = frozenset({"Cast", "ConstantOfShape"})  # output dtype set by an attribute we rewrite
_TYPE_STR = {FLOAT16: "tensor(float16)", BFLOAT16: "tensor(bfloat16)"}
_SUFFIX = {FLOAT: "fp32", FLOAT16: "fp16", BFLOAT16: "bf16"}


# ---------------------------------------------------------------------------------------------------------
# Reading the graph


@dataclass(frozen=True)
class _Graph:
    """Indexes over one graph: producers, consumers, element types, constants."""

    nodes: tuple[onnx.NodeProto, ...]
    by_name: Mapping[str, onnx.NodeProto]
    producer: Mapping[str, onnx.NodeProto]
    consumers: Mapping[str, tuple[onnx.NodeProto, ...]]
    types: Mapping[str, int]
    constants: frozenset[str]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    opset: int

    def is_float(self, name: str) -> bool:
        """A FLOAT tensor of the source graph (the only kind a recipe converts)."""
        return bool(name) and self.types.get(name) == FLOAT

    def is_activation(self, name: str) -> bool:
        """A FLOAT tensor computed at run time (not an initializer or Constant output)."""
        return self.is_float(name) and name not in self.constants

    def is_float_node(self, node: onnx.NodeProto) -> bool:
        """A node that reads or writes FLOAT tensors; Constant nodes count as constants, not nodes."""
        return node.op_type != "Constant" and any(self.is_float(t) for t in (*node.input, *node.output))


def _check_supported(model: onnx.ModelProto) -> None:
    names = [n.name for n in model.graph.node]
    if any(not n for n in names) or len(set(names)) != len(names):
        raise PrecisionError("precision recipes need unique, non-empty node names", hint="re-export the model")
    for node in model.graph.node:
        if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute):
            raise PrecisionError(f"node {node.name} ({node.op_type}) has a subgraph; control flow is not supported")


def _elem_types(model: onnx.ModelProto) -> dict[str, int]:
    """Element type of every tensor, from ONNX shape inference (skipped above protobuf's 2 GiB limit)."""
    typed = onnx.shape_inference.infer_shapes(model) if model.ByteSize() < _PROTOBUF_LIMIT else model
    graph = typed.graph
    types = {v.name: v.type.tensor_type.elem_type for v in (*graph.input, *graph.output, *graph.value_info)}
    types.update({t.name: t.data_type for t in graph.initializer})
    for node in graph.node:
        if node.op_type == "Constant" and not types.get(node.output[0]):
            types[node.output[0]] = helper.np_dtype_to_tensor_dtype(_constant_array(node).dtype)
    missing = [o for n in graph.node for o in n.output if o and not types.get(o)]
    if missing:
        raise PrecisionError(f"shape inference left {len(missing)} tensors untyped (first: {missing[0]})")
    return types


def _read(model: onnx.ModelProto) -> _Graph:
    _check_supported(model)
    graph = model.graph
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in dict.fromkeys(node.input):
            consumers.setdefault(name, []).append(node)
    constants = {t.name for t in graph.initializer} | {n.output[0] for n in graph.node if n.op_type == "Constant"}
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    return _Graph(
        nodes=tuple(graph.node),
        by_name={n.name: n for n in graph.node},
        producer={o: n for n in graph.node for o in n.output if o},
        consumers={k: tuple(v) for k, v in consumers.items()},
        types=_elem_types(model),
        constants=frozenset(constants),
        inputs=tuple(i.name for i in graph.input),
        outputs=tuple(o.name for o in graph.output),
        opset=opset,
    )


def _constant_array(node: onnx.NodeProto) -> np.ndarray:
    """The value of a Constant node as an array (value, value_float or value_floats)."""
    attr = {a.name: a for a in node.attribute}
    if "value" in attr:
        return numpy_helper.to_array(attr["value"].t)
    if "value_float" in attr:
        return np.array(attr["value_float"].f, dtype=np.float32)
    if "value_floats" in attr:
        return np.array(list(attr["value_floats"].floats), dtype=np.float32)
    return np.array(helper.get_attribute_value(next(iter(attr.values()))))


@lru_cache(maxsize=512)
def _schema(op_type: str, domain: str, opset: int) -> onnx.defs.OpSchema | None:
    """The standard schema of an op at the model's opset; None for custom domains (kept as they are)."""
    if domain not in ("", "ai.onnx"):
        return None
    try:
        return onnx.defs.get_schema(op_type, opset, "")
    except onnx.defs.SchemaError:
        return None


def _formal(params: Sequence[onnx.defs.OpSchema.FormalParameter], index: int) -> str:
    """The type string ('T', 'tensor(float)') of the formal parameter behind slot `index`."""
    if index < len(params):
        return params[index].type_str
    if params and params[-1].option == onnx.defs.OpSchema.FormalParameterOption.Variadic:
        return params[-1].type_str
    return ""


# ---------------------------------------------------------------------------------------------------------
# Which nodes the recipe pins to FP32


def _trace_back(g: _Graph, tensor: str, target: str, depth: int) -> set[str] | None:
    """Nodes on every path from `target` forward to `tensor` through normalisation arithmetic, or None."""
    if tensor == target:
        return set()
    node = g.producer.get(tensor)
    if node is None or depth == 0 or node.op_type not in _DECOMPOSED_NORM_OPS:
        return None
    found: set[str] | None = None
    for name in dict.fromkeys(node.input):
        if g.is_activation(name):
            sub = _trace_back(g, name, target, depth - 1)
            if sub is not None:
                found = (found or set()) | sub
    return None if found is None else found | {node.name}


def _affine_tail(g: _Graph, node: onnx.NodeProto) -> list[str]:
    """The scale Mul and shift Add by constants that follow a normalisation, when they are its only consumer."""
    tail: list[str] = []
    for op in ("Mul", "Add"):
        users = g.consumers.get(node.output[0], ())
        if len(users) != 1 or users[0].op_type != op or not any(i in g.constants for i in users[0].input):
            break
        node = users[0]
        tail.append(node.name)
    return tail


def _norm_region(g: _Graph, node: onnx.NodeProto) -> frozenset[str] | None:
    """The decomposed LayerNorm/RMSNorm whose final division (or reciprocal product) is `node`, if it is one.

    `node` is Div(d, s) or Mul(d, s) where s is computed from d through a ReduceMean and a root; d is
    x - ReduceMean(x) for LayerNorm, x itself for RMSNorm.
    """
    if node.op_type not in ("Div", "Mul") or len(node.input) != 2 or not all(map(g.is_activation, node.input)):
        return None
    for d, s in (tuple(node.input), tuple(reversed(node.input))):
        path = _trace_back(g, s, d, depth=10)
        ops = {g.by_name[name].op_type for name in path or ()}
        if path and "ReduceMean" in ops and ops & {"Sqrt", "Reciprocal", "Pow"}:
            region = path | {node.name, *_affine_tail(g, node)}
            centre = g.producer.get(d)
            if centre is not None and centre.op_type == "Sub":
                mean = g.producer.get(centre.input[1])
                if mean is not None and mean.op_type == "ReduceMean" and mean.input[0] == centre.input[0]:
                    region |= {centre.name, mean.name}
            return frozenset(region)
    return None


def norm_regions(model: onnx.ModelProto) -> list[frozenset[str]]:
    """Every decomposed LayerNorm/RMSNorm subgraph in `model`, as sets of node names, in graph order."""
    return _norm_regions(_read(model))


def _norm_regions(g: _Graph) -> list[frozenset[str]]:
    regions = [_norm_region(g, n) for n in g.nodes]
    return [r for r in regions if r is not None]


def _norm_inputs(g: _Graph, regions: list[frozenset[str]]) -> set[str]:
    """Activations that enter a normalisation: LayerNormalization's X, or a decomposed region's inputs."""
    entering = {n.input[0] for n in g.nodes if n.op_type in NORM_OPS}
    for region in regions:
        nodes = [g.by_name[name] for name in region]
        produced = {o for n in nodes for o in n.output}
        entering |= {i for n in nodes for i in n.input if g.is_activation(i) and i not in produced}
    return entering


def _residual_adds(g: _Graph, regions: list[frozenset[str]]) -> set[str]:
    """Adds of two activations whose sum enters a normalisation: the residual stream (and embedding sums)."""
    entering = _norm_inputs(g, regions)
    return {
        n.name
        for n in g.nodes
        if n.op_type == "Add" and n.output[0] in entering and sum(map(g.is_activation, n.input)) == 2
    }


def _pinned(g: _Graph, recipe: PrecisionRecipe) -> set[str]:
    """Node names the recipe keeps FP32 by op type, by name, by pattern, and residual Adds."""
    names = {n.name for n in g.nodes}
    unknown = sorted(recipe.keep_nodes - names)
    if unknown:
        raise PrecisionError(f"recipe {recipe.name} keeps nodes that are not in the graph: {', '.join(unknown[:5])}")
    pinned = set(recipe.keep_nodes) | {n.name for n in g.nodes if n.op_type in recipe.keep_ops}
    regions = _norm_regions(g) if recipe.match_layernorm else []
    for region in regions:
        pinned |= region
    if recipe.keep_residual_add:
        pinned |= _residual_adds(g, regions)
    return pinned


# ---------------------------------------------------------------------------------------------------------
# Placement: the pure recipe of dtypes and casts


@dataclass(frozen=True)
class Placement:
    """Where every float value lives after a recipe: computed by `place`, written by `apply_recipe`."""

    compute: int  # element type of the low-precision region (FLOAT for an FP32 recipe)
    node_dtype: Mapping[str, int]  # float node → the dtype it computes in
    inputs: Mapping[str, tuple[str, ...]]  # float node → its input names
    wants: Mapping[str, tuple[int | None, ...]]  # float node → wanted dtype per input slot (None: not float)
    tensor_dtype: Mapping[str, int]  # computed FLOAT tensor → its dtype after the recipe
    constant_dtype: Mapping[str, int]  # FLOAT initializer or Constant output → its storage dtype
    outputs: tuple[str, ...]  # graph outputs (FP32 after the recipe, whatever computes them)

    def fp32_nodes(self) -> set[str]:
        """Names of the float nodes that compute in FP32."""
        return {name for name, dtype in self.node_dtype.items() if dtype == FLOAT}

    def dtype_of(self, tensor: str) -> int | None:
        """The dtype of a float tensor after the recipe (None for tensors the recipe does not touch)."""
        return self.tensor_dtype.get(tensor, self.constant_dtype.get(tensor))

    def casts(self) -> list[tuple[str, int]]:
        """(tensor, target dtype) for every Cast the recipe inserts, in first-use order; graph outputs last."""
        needed: dict[tuple[str, int], None] = {}
        for node, wanted in self.wants.items():
            for tensor, want in zip(self.inputs[node], wanted, strict=True):
                if want is not None and self.dtype_of(tensor) != want:
                    needed[(tensor, want)] = None
        needed.update({(o, FLOAT): None for o in self.outputs if self.dtype_of(o) not in (None, FLOAT)})
        return list(needed)


def _lowerable(schema: onnx.defs.OpSchema, g: _Graph, node: onnx.NodeProto, dtype: int) -> bool:
    """True when every type variable bound to a float slot of `node` admits `dtype` in this opset."""
    bound_in = {_formal(schema.inputs, i) for i, t in enumerate(node.input) if g.is_float(t)}
    bound_out = {_formal(schema.outputs, i) for i, t in enumerate(node.output) if g.is_float(t)}
    allowed = {c.type_param_str: set(c.allowed_type_strs) for c in schema.type_constraints}
    variables = (bound_in | bound_out) & allowed.keys()
    if (bound_out - bound_in) & allowed.keys() and node.op_type not in _ATTRIBUTE_TYPED:
        return False  # an output typed by an attribute we do not rewrite (EyeLike, RandomNormal, ...)
    return all(_TYPE_STR[dtype] in allowed[v] for v in variables)


def _node_dtype(g: _Graph, node: onnx.NodeProto, low: int, pinned: set[str], dtypes: Mapping[str, int]) -> int:
    """FP32 for pinned, custom-domain or unsupported nodes; neutral ops follow their inputs; the rest `low`."""
    if low == FLOAT or node.name in pinned:
        return FLOAT
    schema = _schema(node.op_type, node.domain, g.opset)
    if schema is None:
        return FLOAT
    dtype = low
    if node.op_type in NEUTRAL_OPS:
        seen = {dtypes[t] for t in node.input if g.is_activation(t)}
        dtype = seen.pop() if len(seen) == 1 else low
    return dtype if dtype == FLOAT or _lowerable(schema, g, node, dtype) else FLOAT


def _slot_types(g: _Graph, node: onnx.NodeProto, dtype: int) -> tuple[tuple[int | None, ...], tuple[int, ...]]:
    """Wanted dtype per input slot (None: not a float slot) and the dtype of each output."""
    schema = _schema(node.op_type, node.domain, g.opset)
    variables = {c.type_param_str for c in schema.type_constraints} if schema is not None else set()

    def lowered(kind: str, index: int) -> bool:
        return dtype != FLOAT and _formal(getattr(schema, kind), index) in variables

    wants = tuple(
        (dtype if lowered("inputs", i) else FLOAT) if g.is_float(t) else None for i, t in enumerate(node.input)
    )
    outs = tuple(dtype if lowered("outputs", i) else FLOAT for i in range(len(node.output)))
    return wants, outs


def _constant_storage(g: _Graph, wants: Mapping[str, tuple[int | None, ...]]) -> dict[str, int]:
    """Each float constant is stored in the dtype its consumers want; FP32 (plus a Cast) when they disagree."""
    wanted: dict[str, set[int]] = {c: set() for c in sorted(g.constants) if g.is_float(c)}
    for node in g.nodes:
        for tensor, want in zip(node.input, wants.get(node.name, (None,) * len(node.input)), strict=True):
            if want is not None and tensor in wanted:
                wanted[tensor].add(want)
    for name in g.outputs:
        if name in wanted:
            wanted[name].add(FLOAT)
    return {c: w.pop() if len(w) == 1 else FLOAT for c, w in wanted.items()}


def _place(g: _Graph, recipe: PrecisionRecipe) -> Placement:
    pinned = _pinned(g, recipe)
    low = recipe.compute.elem_type
    node_dtype: dict[str, int] = {}
    wants: dict[str, tuple[int | None, ...]] = {}
    dtypes = {name: FLOAT for name in g.inputs if g.is_float(name)}
    for node in g.nodes:
        if not g.is_float_node(node):
            continue
        dtype = _node_dtype(g, node, low, pinned, dtypes)
        wants[node.name], outs = _slot_types(g, node, dtype)
        dtypes.update({t: out for t, out in zip(node.output, outs, strict=True) if g.is_float(t)})
        node_dtype[node.name] = dtype
    inputs = {n.name: tuple(n.input) for n in g.nodes if n.name in wants}
    return Placement(low, node_dtype, inputs, wants, dtypes, _constant_storage(g, wants), g.outputs)


def place(model: onnx.ModelProto, recipe: PrecisionRecipe) -> Placement:
    """The dtypes and casts `recipe` gives `model`; reads the model, writes nothing."""
    return _place(_read(model), recipe)


def fp32_nodes(model: onnx.ModelProto, recipe: PrecisionRecipe) -> set[str]:
    """Names of the nodes that compute in FP32 under `recipe`: the set a TensorRT builder pins to FP32.

    Pinned ones (op types, names, decomposed norms, residual Adds), nodes whose op has no kernel in the
    recipe's dtype at this opset, custom-domain nodes, and neutral ops (Reshape, Where, ...) fed by FP32.
    """
    return place(model, recipe).fp32_nodes()


# ---------------------------------------------------------------------------------------------------------
# Writing the graph


def _to_dtype(array: np.ndarray, dtype: int) -> np.ndarray:
    """FP32 values in `dtype`; finite values beyond its range are clipped (-3.4e38 mask fills stay finite)."""
    if dtype == FLOAT:
        return array.astype(np.float32)
    import ml_dtypes  # numpy has no bfloat16

    target = np.float16 if dtype == FLOAT16 else ml_dtypes.bfloat16
    top = float(ml_dtypes.finfo(target).max)
    finite = np.isfinite(array)
    return np.where(finite, np.clip(array, -top, top), array).astype(target)


def _tensor(array: np.ndarray, name: str, dtype: int) -> TensorProto:
    return numpy_helper.from_array(_to_dtype(array, dtype), name)


class _Names:
    """Fresh, deterministic names that collide with nothing in the graph."""

    def __init__(self, model: onnx.ModelProto) -> None:
        graph = model.graph
        self.taken = {n.name for n in graph.node} | {t.name for t in graph.initializer}
        self.taken |= {v.name for v in (*graph.input, *graph.output, *graph.value_info)}
        self.taken |= {t for n in graph.node for t in (*n.input, *n.output)}

    def fresh(self, base: str) -> str:
        name, i = base, 1
        while name in self.taken:
            name, i = f"{base}_{i}", i + 1
        self.taken.add(name)
        return name


def _retype_attributes(node: onnx.NodeProto, dtype: int) -> None:
    """Point a low-precision node's attribute-typed float output at `dtype` (Cast `to`, ConstantOfShape)."""
    for attr in node.attribute:
        if node.op_type == "Cast" and attr.name == "to" and attr.i == FLOAT:
            attr.i = dtype
        elif node.op_type == "ConstantOfShape" and attr.name == "value" and attr.t.data_type == FLOAT:
            attr.t.CopyFrom(_tensor(numpy_helper.to_array(attr.t), attr.t.name, dtype))


def _cast(names: _Names, source: str, output: str, dtype: int) -> onnx.NodeProto:
    return helper.make_node("Cast", [source], [output], name=names.fresh(f"Cast_{output}"), to=dtype)


@dataclass
class _Writer:
    """Rewrites the node list of one graph according to a placement."""

    placement: Placement
    names: _Names
    nodes: list[onnx.NodeProto]

    def __post_init__(self) -> None:
        p = self.placement
        casts = p.casts()
        outs = {t for t, want in casts if want == FLOAT and t in p.outputs and t in p.tensor_dtype}
        # A graph output computed in low precision is renamed inside the graph and cast back to its own name.
        self.renamed = {t: self.names.fresh(f"{t}_{_SUFFIX[p.tensor_dtype[t]]}") for t in sorted(outs)}
        self.cast_out = {(t, w): self.names.fresh(f"{t}_{_SUFFIX[w]}") for t, w in casts if t not in outs}
        self.emitted: set[tuple[str, int]] = set()

    def input_name(self, tensor: str, want: int) -> str:
        """The name a consumer reads: the tensor itself, its renamed low copy, or a Cast emitted on first use."""
        key = (tensor, want)
        if key not in self.cast_out:
            return self.renamed.get(tensor, tensor)
        if key not in self.emitted:
            self.nodes.append(_cast(self.names, self.renamed.get(tensor, tensor), self.cast_out[key], want))
            self.emitted.add(key)
        return self.cast_out[key]

    def constant(self, node: onnx.NodeProto) -> None:
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        dtype = self.placement.constant_dtype.get(node.output[0], FLOAT)
        if dtype != FLOAT:
            array = _constant_array(node)
            del copy.attribute[:]
            copy.attribute.append(helper.make_attribute("value", _tensor(array, node.output[0], dtype)))
        self.nodes.append(copy)

    def node(self, node: onnx.NodeProto) -> None:
        p = self.placement
        wants = p.wants.get(node.name, (None,) * len(node.input))
        inputs = [self.input_name(t, w) if w is not None else t for t, w in zip(node.input, wants, strict=True)]
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        del copy.input[:]
        copy.input.extend(inputs)
        del copy.output[:]
        copy.output.extend(self.renamed.get(o, o) for o in node.output)
        if p.node_dtype.get(node.name, FLOAT) != FLOAT:
            _retype_attributes(copy, p.node_dtype[node.name])
        self.nodes.append(copy)
        for out in node.output:
            if out in self.renamed:
                self.nodes.append(_cast(self.names, self.renamed[out], out, FLOAT))


def _materialize(model: onnx.ModelProto, placement: Placement) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    writer = _Writer(placement, _Names(model), [])
    for node in model.graph.node:
        is_constant = node.op_type == "Constant" and node.output[0] in placement.constant_dtype
        (writer.constant if is_constant else writer.node)(node)
    del graph.node[:]
    graph.node.extend(writer.nodes)
    for init in graph.initializer:
        dtype = placement.constant_dtype.get(init.name, FLOAT)
        if dtype != FLOAT:
            init.CopyFrom(_tensor(numpy_helper.to_array(init), init.name, dtype))
    del graph.value_info[:]
    if out.ByteSize() < _PROTOBUF_LIMIT:  # re-derive value types; strict mode rejects a mistyped rewrite
        out = onnx.shape_inference.infer_shapes(out, strict_mode=True)
    return out


def apply_recipe(model: onnx.ModelProto, recipe: PrecisionRecipe) -> onnx.ModelProto:
    """A strongly typed copy of `model` under `recipe`: explicit Casts, low-precision weights, FP32 outputs.

    Graph inputs and outputs keep their types (int64 ids and mask in, FP32 out). INT8 recipes are written
    by `quantize_int8` (ONNX Runtime quantizes files, not graphs in memory).
    """
    if recipe.quantization is not Quantization.NONE:
        raise PrecisionError(f"recipe {recipe.name} quantizes weights", hint="use VariantFromOnnx or quantize_int8")
    return _materialize(model, place(model, recipe))


# ---------------------------------------------------------------------------------------------------------
# INT8 (ONNX Runtime dynamic quantization, the CPU path)


def _gemm_as_matmul(node: onnx.NodeProto, inits: dict[str, np.ndarray], names: _Names) -> list[onnx.NodeProto]:
    """MatMul (+ Add) equivalent to a Gemm with constant B (and C), or [node] when it has no such form."""
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    b, c = node.input[1], (node.input[2] if len(node.input) > 2 else "")
    if attrs.get("transA", 0) or b not in inits or (c and c not in inits):
        return [node]
    alpha, beta = attrs.get("alpha", 1.0), attrs.get("beta", 1.0)
    if attrs.get("transB", 0) or alpha != 1.0:
        weight = (inits[b].T if attrs.get("transB", 0) else inits[b]) * np.float32(alpha)
        b = names.fresh(f"{b}_matmul")
        inits[b] = np.ascontiguousarray(weight, dtype=np.float32)
    if not c:
        return [helper.make_node("MatMul", [node.input[0], b], list(node.output), name=node.name)]
    if beta != 1.0:
        scaled = names.fresh(f"{c}_scaled")
        inits[scaled] = inits[c] * np.float32(beta)
        c = scaled
    product = names.fresh(f"{node.output[0]}_matmul")
    return [
        helper.make_node("MatMul", [node.input[0], b], [product], name=node.name),
        helper.make_node("Add", [product, c], list(node.output), name=names.fresh(f"{node.name}_bias")),
    ]


def gemm_to_matmul(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy with each Gemm of constant weights written as MatMul (+ Add): ORT's dynamic quantizer skips Gemm."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    if not any(n.op_type == "Gemm" for n in graph.node):
        return out
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    names = _Names(model)
    nodes = [
        new
        for node in graph.node
        for new in (_gemm_as_matmul(node, inits, names) if node.op_type == "Gemm" else [node])
    ]
    used = {t for n in nodes for t in n.input} | {o.name for o in graph.output}
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.initializer[:]
    graph.initializer.extend(numpy_helper.from_array(a, name) for name, a in inits.items() if name in used)
    return out


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """ONNX Runtime's quantizer logs a pre-processing suggestion through the root logger; hide it meanwhile."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


def quantize_int8(src: Path, dst: Path) -> Path:
    """Write `src` with MatMul/Gemm weights as int8 (ONNX Runtime dynamic quantization) to `dst`."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = gemm_to_matmul(onnx.load(str(src)))
    with _quiet_quantizer():
        # Per-channel scales: on the bundled MiniLM, per-tensor int8 weights gave mean cosine 0.954, per-channel 0.993.
        quantize_dynamic(model, dst, op_types_to_quantize=["MatMul"], per_channel=True, weight_type=QuantType.QInt8)
    return dst


# ---------------------------------------------------------------------------------------------------------
# The stage


@dataclass(frozen=True)
class Variant:
    """A written precision variant."""

    recipe: PrecisionRecipe
    path: Path
    size_bytes: int  # the .onnx file plus its external data file, if any


def _save(model: onnx.ModelProto, dst: Path) -> int:
    """Write `model`; weights go to `<name>.data` beside it when the graph exceeds protobuf's 2 GiB."""
    external = model.ByteSize() >= _PROTOBUF_LIMIT
    onnx.save(model, str(dst), save_as_external_data=external, location=f"{dst.name}.data")
    data = dst.with_name(f"{dst.name}.data")
    return dst.stat().st_size + (data.stat().st_size if external and data.is_file() else 0)


class VariantFromOnnx:
    """Write the `recipe` variant of ONNX file `src` at `dst`; constructing records it, calling does the work."""

    def __init__(self, src: Path, recipe: PrecisionRecipe, dst: Path) -> None:
        self.src = src
        self.recipe = recipe
        self.dst = dst

    def __call__(self) -> Variant:
        """Write the variant and return its path and size."""
        try:
            self.dst.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot write to {self.dst.parent}: {exc.strerror}") from exc
        if self.recipe.quantization is Quantization.DYNAMIC_INT8:
            quantize_int8(self.src, self.dst)
            return Variant(self.recipe, self.dst, self.dst.stat().st_size)
        size = _save(apply_recipe(onnx.load(str(self.src)), self.recipe), self.dst)
        return Variant(self.recipe, self.dst, size)
