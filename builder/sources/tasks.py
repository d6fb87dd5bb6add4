"""Tasks: what the exported graph returns and what the ensemble exposes for each."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from builder.common.errors import ModelSourceError


@dataclass(frozen=True)
class TaskSpec:
    """One task: the transformers auto class, the graph output and the ensemble's outputs."""

    name: str
    auto_class: str
    graph_output: str  # name of the single output of the exported ONNX graph
    graph_output_per_token: bool  # True: [batch, seq, D]; False: [batch, D]
    ensemble_outputs: tuple[str, ...]


TASKS: dict[str, TaskSpec] = {
    t.name: t
    for t in (
        TaskSpec("feature-extraction", "AutoModel", "last_hidden_state", True, ("EMBEDDING",)),
        TaskSpec("text-classification", "AutoModelForSequenceClassification", "logits", False, ("LABEL", "PROBS")),
        # The graph gathers the logits of the last real token: shipping [batch, seq, vocab]
        # between models would cost seq × vocab × 4 bytes per text for nothing.
        TaskSpec("causal-lm", "AutoModelForCausalLM", "logits", False, ("LOGITS",)),
    )
}


def get_task(name: str) -> TaskSpec:
    """Look a task up by name, with an error that lists the known ones."""
    try:
        return TASKS[name]
    except KeyError:
        raise ModelSourceError(f"unsupported task '{name}'", hint=f"choose one of: {', '.join(TASKS)}") from None


class GraphModule(torch.nn.Module):
    """Wraps a transformers model so it takes (input_ids, attention_mask) positionally and returns one tensor.

    transformers 5 models want keyword arguments; the exporter wants a plain signature.
    """

    def __init__(self, model: Any, task: TaskSpec) -> None:
        super().__init__()
        self.model = model
        self.task = task.name

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Run the model and keep the task's output (last-token logits for causal-lm)."""
        out = self.model(input_ids=input_ids, attention_mask=attention_mask)
        if self.task == "feature-extraction":
            return out.last_hidden_state
        if self.task == "text-classification":
            return out.logits
        # causal-lm: right padding, so the last real token sits at (number of real tokens - 1).
        last = attention_mask.sum(dim=1) - 1
        rows = torch.arange(input_ids.shape[0], device=input_ids.device)
        return out.logits[rows, last]
