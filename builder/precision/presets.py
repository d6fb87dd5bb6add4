"""The one list of precision names (`PRESETS`) and what each means: typed recipes, data only.

A serving backend declares which of these it serves (builder/engines/); builder/support.py says which it can
serve on which GPU profile; builder/precision/variants.py applies one to an ONNX graph.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from enum import Enum

from onnx import TensorProto

from builder.common.errors import UserError

FLOAT: int = TensorProto.FLOAT
FLOAT16: int = TensorProto.FLOAT16
BFLOAT16: int = TensorProto.BFLOAT16


class PrecisionError(UserError):
    """A precision recipe cannot be built, applied to this graph, or run on this target."""


class Compute(Enum):
    """The dtype for the bulk of the graph."""

    FP32 = "fp32"
    FP16 = "fp16"
    BF16 = "bf16"

    @property
    def elem_type(self) -> int:
        """The ONNX TensorProto element type."""
        return {"fp32": FLOAT, "fp16": FLOAT16, "bf16": BFLOAT16}[self.value]


class Quantization(Enum):
    """Weight quantization applied after the float recipe."""

    NONE = "none"
    # ONNX Runtime dynamic quantization: MatMul weights stored int8, activations quantized per call (CPU path).
    DYNAMIC_INT8 = "dynamic-int8"


SOFTMAX_OPS = frozenset({"Softmax", "LogSoftmax"})
NORM_OPS = frozenset({"LayerNormalization", "RMSNormalization"})
GELU_OPS = frozenset({"Gelu", "Erf"})  # torch.export writes GELU(erf) as Div → Erf → Add → Mul → Mul


@dataclass(frozen=True)
class PrecisionRecipe:
    """Which parts of a graph compute in which dtype; data only, applied by `apply_recipe` or `VariantFromOnnx`."""

    name: str
    compute: Compute = Compute.FP32
    keep_ops: frozenset[str] = frozenset()  # ONNX op types kept FP32
    keep_nodes: frozenset[str] = frozenset()  # node names kept FP32
    match_layernorm: bool = False  # find decomposed LayerNorm/RMSNorm subgraphs, keep each FP32 as a whole
    keep_residual_add: bool = False  # keep FP32 each Add of two activations that feeds a normalisation
    quantization: Quantization = Quantization.NONE
    about: str = field(default="", compare=False)  # what the preset is, for the CLI's help

    def __post_init__(self) -> None:
        object.__setattr__(self, "keep_ops", frozenset(self.keep_ops))
        object.__setattr__(self, "keep_nodes", frozenset(self.keep_nodes))
        if self.quantization is not Quantization.NONE and self.compute is not Compute.FP32:
            raise PrecisionError(f"recipe {self.name}: quantization applies to an FP32 graph, not {self.compute.value}")

    def keeping(
        self, ops: Iterable[str] = (), nodes: Iterable[str] = (), residual_add: bool | None = None
    ) -> PrecisionRecipe:
        """A copy that also keeps `ops` and `nodes` in FP32 (and residual Adds, when given)."""
        return replace(
            self,
            keep_ops=self.keep_ops | frozenset(ops),
            keep_nodes=self.keep_nodes | frozenset(nodes),
            keep_residual_add=self.keep_residual_add if residual_add is None else residual_add,
        )


PRESETS: dict[str, PrecisionRecipe] = {
    p.name: p
    for p in (
        PrecisionRecipe("fp32", about="the exported graph as it is"),
        # Everything FP16; only nodes whose op has no FP16 kernel in the opset stay FP32.
        PrecisionRecipe("fp16", Compute.FP16, about="FP16 throughout"),
        # The seed paper's: FP16 linear layers and matmuls, FP32 softmax and layer normalisation.
        PrecisionRecipe(
            "hybrid",
            Compute.FP16,
            SOFTMAX_OPS | NORM_OPS,
            match_layernorm=True,
            about="FP16, FP32 softmax and LayerNorm",
        ),
        PrecisionRecipe(
            "bf16", Compute.BF16, SOFTMAX_OPS | NORM_OPS, match_layernorm=True, about="BF16, FP32 softmax and LayerNorm"
        ),
        PrecisionRecipe(
            "int8", quantization=Quantization.DYNAMIC_INT8, about="int8 MatMul weights, dynamic activations"
        ),
    )
}


def get_recipe(name: str, gelu: bool = False, residual_add: bool = False) -> PrecisionRecipe:
    """A preset by name, optionally also keeping GELU (Erf/Gelu) and residual Adds in FP32."""
    try:
        recipe = PRESETS[name.lower()]
    except KeyError:
        raise PrecisionError(f"unknown precision '{name}'", hint=f"choose one of: {', '.join(PRESETS)}") from None
    return recipe.keeping(ops=GELU_OPS if gelu else (), residual_add=residual_add or None)
