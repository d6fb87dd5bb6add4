"""Fidelity of a study variant against PyTorch FP32, at one sequence length, on real text and on random ids.

Real text is cut from Python's own documentation to exactly the length (client.targets.inputs.TextSource), random
ids have the same shapes (builder.fidelity.random_inputs): the seed found that random inputs understate
FP16's NaN rate, so both are measured side by side. Two views of each variant are compared with
builder.fidelity's metrics: the trunk's last hidden state (per-token cosine, and the pooled embedding with
nearest-neighbour agreement) and, for a classifier or a causal LM, the task's logits (label or top-1
next-token agreement). The reference runs on the same device with TF32 off.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from builder.common.tokenizer import load_tokenizer
from builder.precision.fidelity import REAL, Inputs, OutputMetrics, compare, random_inputs
from builder.sources.source import ModelInfo, inspect_model, load_graph_module
from builder.sources.tasks import get_task
from client.experiments.study_config import FidelitySettings
from client.experiments.study_engine import Engine
from client.targets.inputs import TextSource

View = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def exact_length_inputs(
    tokenizer_file: Path, info: ModelInfo, seq_len: int, settings: FidelitySettings
) -> list[Inputs]:
    """Real texts of exactly `seq_len` tokens in batches (full masks), and random ids of the same shapes."""
    tokenizer = load_tokenizer(tokenizer_file)
    source = TextSource(tokenizer)
    rng = random.Random(settings.seed + seq_len)
    rows = [tokenizer.encode(source.text_of_length(seq_len, rng)).ids for _ in range(settings.texts)]
    ids = np.array(rows, dtype=np.int64)
    batches = tuple(
        (ids[i : i + settings.batch_size], np.ones_like(ids[i : i + settings.batch_size]))
        for i in range(0, len(ids), settings.batch_size)
    )
    real = Inputs(REAL, batches)
    return [real, random_inputs(real, info.vocab_size, info.pad_id, settings.seed)]


@dataclass
class Reference:
    """A model's PyTorch FP32 outputs (task and trunk views) per input set, computed once for every variant."""

    info: ModelInfo
    device: torch.device
    module: Any = None
    outputs: dict[tuple[int, str], tuple[list[np.ndarray], list[np.ndarray]]] = field(default_factory=dict)

    @classmethod
    def load(cls, source: str, task: str, device: torch.device) -> Reference:
        """The FP32 model of `source` on `device`, as make-repo's fidelity gate loads it."""
        info = inspect_model(source, task)
        return cls(info, device, load_graph_module(info).to(device))

    def views(self) -> tuple[View, View]:
        """(task output, last hidden state) of the FP32 model."""
        model = self.module.model

        def trunk(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            return model.base_model(input_ids=ids, attention_mask=mask).last_hidden_state

        return self.module, trunk

    def outputs_for(self, seq_len: int, inputs: Inputs) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """The reference's outputs on one input set, cached by length and kind."""
        key = (seq_len, inputs.kind)
        if key not in self.outputs:
            self.outputs[key] = run_views(self.views(), inputs, self.device)
        return self.outputs[key]


def engine_views(engine: Engine) -> tuple[View, View]:
    """(task output, last hidden state) through the variant's own kernels, at its precision."""

    def through(forward: Any) -> View:
        return lambda ids, mask: forward(ids, mask, forward.mask_free and bool(mask.all()))

    return through(engine.forward), through(engine.trunk)


def run_views(
    views: tuple[View, View], inputs: Inputs, device: torch.device
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Both views on every batch of `inputs`, as FP32 numpy arrays."""
    task_out, trunk_out = [], []
    with torch.inference_mode():
        for ids, mask in inputs.batches:
            i, m = torch.from_numpy(ids).to(device), torch.from_numpy(mask).to(device)
            task_out.append(views[0](i, m).float().cpu().numpy())
            trunk_out.append(views[1](i, m).float().cpu().numpy())
    return task_out, trunk_out


def measure_fidelity(
    reference: Reference, engine: Engine, seq_len: int, inputs: list[Inputs]
) -> tuple[OutputMetrics, ...]:
    """Every output of the variant against the reference, on each input set."""
    task = get_task(reference.info.task.name)
    hidden = get_task("feature-extraction")
    metrics: list[OutputMetrics] = []
    for kind in inputs:
        ref_task, ref_trunk = reference.outputs_for(seq_len, kind)
        got_task, got_trunk = run_views(engine_views(engine), kind, engine.device)
        metrics += compare(hidden, kind.kind, ref_trunk, got_trunk, kind.masks)
        if task.name != hidden.name:
            metrics += compare(task, kind.kind, ref_task, got_task, kind.masks)
    return tuple(metrics)
