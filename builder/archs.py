"""Per-architecture export specs: a few declarative lines each, registered by decorator.

A test enumerates this registry and fails for any architecture without a test model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from builder.common.errors import ModelSourceError


@dataclass(frozen=True)
class ArchSpec:
    """How to export and serve one `model_type`."""

    model_type: str
    tasks: tuple[str, ...]
    max_positions_attr: str  # config attribute holding the position-embedding limit
    pad_with_eos: bool = False  # tokenizers without a pad token (GPT-2) pad with EOS
    atol: float = 1e-4  # FP32 parity tolerance on valid tokens

    def max_positions(self, config: Any) -> int:
        """The longest sequence the model's position embeddings accept."""
        return int(getattr(config, self.max_positions_attr))


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
    return ArchSpec("bert", ("feature-extraction", "text-classification"), "max_position_embeddings")


@register("distilbert")
def _distilbert() -> ArchSpec:
    return ArchSpec("distilbert", ("feature-extraction", "text-classification"), "max_position_embeddings")


@register("gpt2")
def _gpt2() -> ArchSpec:
    return ArchSpec(
        "gpt2", ("feature-extraction", "text-classification", "causal-lm"), "n_positions", pad_with_eos=True
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
