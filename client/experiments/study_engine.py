"""A study variant's python-torch engine in this process, loaded from its repository as the server loads it.

The engine code is the repository's own backend files (templates/python, imported the way
builder.common.backend_files does); weights, precision, kernels and task come from the variant's model
folder and its config.pbtxt, so what is timed here is what the server runs. On a GPU the Runner captures
one CUDA graph per (batch bucket, length) of the study; on the CPU the same code runs eagerly.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from builder.common.backend_files import backend_module
from builder.repository.modelconfig import parse_config
from client.experiments.study_config import Repeats, Shapes
from client.experiments.study_records import Latency, VariantMemory

Clock = Callable[[], float]


def torch_model() -> Any:
    """templates/python/torch_model.py, imported as the backend stub imports it."""
    return backend_module("torch_model")


@dataclass
class Engine:
    """A variant's model at its precision on one device, with the task and kernels its config names."""

    model: Any  # a transformers PreTrainedModel at the variant's precision
    task: str
    kernels: str
    precision: str
    device: torch.device

    @cached_property
    def forward(self) -> Any:
        """The task's forward as the Runner runs it (torch_model.Forward), built once: fusing copies weights."""
        return torch_model().build_forward(self.model, self.task, self.kernels)

    @cached_property
    def trunk(self) -> Any:
        """The last hidden state through the same kernels: per-token and pooled fidelity."""
        return torch_model().build_forward(self.model.base_model, "feature-extraction", self.kernels)

    def runner(self, shapes: Shapes) -> Any:
        """The engine's Runner for the study's shapes: on a GPU one graph per batch size × length."""
        batches, lengths = sorted(shapes.batch_sizes), sorted(shapes.seq_lens)
        return torch_model().Runner(self.forward, self.device, batches, lengths, batches[-1] * lengths[-1])

    @property
    def vocab_size(self) -> int:
        """Rows of the embedding table: valid token ids lie below it."""
        return int(self.model.config.vocab_size)

    def weights_mb(self) -> float:
        """Parameters and buffers as held, at the variant's precision (hybrid's norms in FP32)."""
        tensors = [*self.model.parameters(), *self.model.buffers()]
        return sum(t.numel() * t.element_size() for t in tensors) / 1e6


def model_parameters(model_dir: Path) -> dict[str, str]:
    """The string parameters of a model folder's config.pbtxt, read through Triton's own schema."""
    config = parse_config((model_dir / "config.pbtxt").read_text(), str(model_dir / "config.pbtxt"))
    return {key: value.string_value for key, value in config.parameters.items()}


def load_engine(model_dir: Path, device: torch.device) -> Engine:
    """The engine of a python-torch model folder on `device` (what torch_model.load_runner loads in a stub)."""
    import transformers

    params = model_parameters(model_dir)
    auto = getattr(transformers, params["auto_class"])
    transformers.utils.logging.disable_progress_bar()
    model = auto.from_pretrained(model_dir / "1" / "hf", attn_implementation="sdpa", dtype=torch.float32)
    model = torch_model().apply_precision(model.eval(), params["precision"]).to(device)
    return Engine(model, params["task"], params["kernels"], params["precision"], device)


def token_ids(batch: int, seq: int, vocab: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Ordinary word ids (above most vocabularies' special tokens) and a full mask: texts that fill their length."""
    low = min(1000, vocab // 2)
    ids = np.random.default_rng(seed).integers(low, min(vocab, 20000), (batch, seq), dtype=np.int64)
    return ids, np.ones_like(ids)


def time_calls(call: Callable[[], object], repeats: Repeats, clock: Clock = time.perf_counter) -> list[float]:
    """Seconds per call: `warmup` untimed, then timed until `seconds` and `min_repeats`, at most `max_repeats`."""
    for _ in range(repeats.warmup):
        call()
    times: list[float] = []
    start = clock()
    while len(times) < repeats.max_repeats and (len(times) < repeats.min_repeats or clock() - start < repeats.seconds):
        before = clock()
        call()
        times.append(clock() - before)
    return times


@dataclass(frozen=True)
class Timed:
    """What timing one point gave."""

    latency: Latency
    calls: int
    seq_per_s: float  # batch ÷ mean call time: one caller, back to back


def time_runner(runner: Any, batch: int, seq: int, vocab: int, repeats: Repeats) -> Timed:
    """The Runner on host arrays of one shape (host in, host out, synchronised): the served model's step."""
    ids, mask = token_ids(batch, seq, vocab, seed=batch * 1000 + seq)
    times = time_calls(lambda: runner(ids, mask), repeats)
    return Timed(Latency.of(times), len(times), batch * len(times) / sum(times))


def peak_allocated_mb(engine: Engine, batch: int, seq: int) -> float | None:
    """CUDA memory at the peak of one eager forward at this shape, weights included; None on the CPU.

    Measured before any graph exists: a graph pool holds every captured shape's memory at once.
    """
    if engine.device.type != "cuda":
        return None
    ids, mask = (torch.from_numpy(a).to(engine.device) for a in token_ids(batch, seq, engine.vocab_size, seed=0))
    forward = engine.forward
    torch.cuda.synchronize(engine.device)
    torch.cuda.reset_peak_memory_stats(engine.device)
    with torch.inference_mode():
        forward(ids, mask, forward.mask_free)
    torch.cuda.synchronize(engine.device)
    return torch.cuda.max_memory_allocated(engine.device) / 1e6


def folder_mb(path: Path) -> float:
    """Bytes of every file under `path`, in MB."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def variant_memory(engine: Engine, runner: Any, model_dir: Path) -> VariantMemory:
    """On disk, as weights, and (on a GPU) allocated once the graphs are captured."""
    cuda = engine.device.type == "cuda"
    return VariantMemory(
        disk_mb=folder_mb(model_dir),
        weights_mb=engine.weights_mb(),
        engine_mb=torch.cuda.memory_allocated(engine.device) / 1e6 if cuda else None,
        graphs=len(runner.graphs),
    )


def device_name(device: torch.device) -> str:
    """What ran a point: the GPU's name, or the CPU with its thread count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    threads = torch.get_num_threads()
    return f"cpu ({threads} thread{'s' if threads > 1 else ''})"


def release(device: torch.device) -> None:
    """Hand cached CUDA memory back after an engine is dropped, so the next one's peak is its own."""
    import gc

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
