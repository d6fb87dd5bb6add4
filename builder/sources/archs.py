"""Per-architecture export specs: a few declarative lines each, registered by decorator.

A test enumerates this registry and fails for any architecture without a test model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from builder.common.errors import ModelSourceError


@dataclass(frozen=True)
class ModelDims:
    """The sizes that set a transformer's cost: what time and memory estimates are made from."""

    layers: int
    hidden: int
    intermediate: int
    vocab: int
    max_positions: int

    @property
    def parameters(self) -> int:
        """Weights: embeddings and, per layer, attention (4 H²) and MLP (2 H I) matrices; biases and norms left out."""
        return self.vocab * self.hidden + self.layers * (4 * self.hidden**2 + 2 * self.hidden * self.intermediate)

    def forward_flops(self, batch: int, seq: int, head_rows: int = 0) -> float:
        """Floating-point operations of one forward (2 per multiply-add).

        The layers' GEMMs, attention's two batched products, and a head projecting `head_rows` rows onto the
        vocabulary (a causal LM's last tokens); norms, softmax and element-wise work are left out.
        """
        tokens = batch * seq
        gemms = 2 * tokens * self.layers * (4 * self.hidden**2 + 2 * self.hidden * self.intermediate)
        attention = 4 * batch * seq * seq * self.hidden * self.layers
        return float(gemms + attention + 2 * head_rows * self.hidden * self.vocab)


@dataclass(frozen=True)
class ArchSpec:
    """How to export and serve one `model_type`, and where its config keeps its sizes."""

    model_type: str
    tasks: tuple[str, ...]
    max_positions_attr: str  # config attribute holding the position-embedding limit
    layers_attr: str
    hidden_attr: str
    intermediate_attr: str  # a None value there means 4 × hidden (GPT-2's n_inner)
    pad_with_eos: bool = False  # tokenizers without a pad token (GPT-2) pad with EOS
    atol: float = 1e-4  # FP32 parity tolerance on valid tokens

    def max_positions(self, config: Any) -> int:
        """The longest sequence the model's position embeddings accept."""
        return int(getattr(config, self.max_positions_attr))

    def dims(self, config: Any) -> ModelDims:
        """The model's sizes, read through this architecture's attribute names."""
        hidden = int(getattr(config, self.hidden_attr))
        intermediate = getattr(config, self.intermediate_attr)
        return ModelDims(
            layers=int(getattr(config, self.layers_attr)),
            hidden=hidden,
            intermediate=int(intermediate) if intermediate is not None else 4 * hidden,
            vocab=int(config.vocab_size),
            max_positions=self.max_positions(config),
        )


ARCHS: dict[str, ArchSpec] = {}


def register(model_type: str) -> Callable[[Callable[[], ArchSpec]], Callable[[], ArchSpec]]:
    """Register the spec returned by the decorated factory under `model_type`."""

    def wrap(factory: Callable[[], ArchSpec]) -> Callable[[], ArchSpec]:
        spec = factory()
        if spec.model_type != model_type:
            raise ValueError(f"spec for {model_type} names {spec.model_type}")
        ARCHS[model_type] = spec
        return factory

    return wrap


@register("bert")
def _bert() -> ArchSpec:
    return ArchSpec(
        "bert",
        ("feature-extraction", "text-classification"),
        "max_position_embeddings",
        layers_attr="num_hidden_layers",
        hidden_attr="hidden_size",
        intermediate_attr="intermediate_size",
    )


@register("distilbert")
def _distilbert() -> ArchSpec:
    return ArchSpec(
        "distilbert",
        ("feature-extraction", "text-classification"),
        "max_position_embeddings",
        layers_attr="n_layers",
        hidden_attr="dim",
        intermediate_attr="hidden_dim",
    )


@register("gpt2")
def _gpt2() -> ArchSpec:
    return ArchSpec(
        "gpt2",
        ("feature-extraction", "text-classification", "causal-lm"),
        "n_positions",
        layers_attr="n_layer",
        hidden_attr="n_embd",
        intermediate_attr="n_inner",
        pad_with_eos=True,
    )


def get_arch(model_type: str, task: str) -> ArchSpec:
    """The spec for a model type and task, or an error naming what is supported."""
    spec = ARCHS.get(model_type)
    if spec is None:
        raise ModelSourceError(
            f"unsupported architecture '{model_type}'",
            hint=f"supported model types: {', '.join(sorted(ARCHS))}",
        )
    if task not in spec.tasks:
        raise ModelSourceError(
            f"task '{task}' is not supported for '{model_type}'",
            hint=f"{model_type} supports: {', '.join(spec.tasks)}",
        )
    return spec
