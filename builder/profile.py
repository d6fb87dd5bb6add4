"""`tritonbuild profile`: where a forward pass spends its time, by module kind and by operator/kernel.

Leaf modules are tagged by kind (embeddings, attention projections, MLP, LayerNorm, head) with
profiler ranges; whatever runs outside them (the attention core, activations, residual adds) is
"other". On a GPU the ranges' device time is used and the top kernels are listed; the forward is
its span on the GPU timeline, so "other" there also holds the GPU's idle gaps between eager
launches (the launch overhead that CUDA graphs remove). On the CPU, operator self time.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from builder.common.backend_files import backend_module

KINDS = ("embeddings", "attention projections", "mlp", "layernorm", "head", "other")
_HEAD_NAMES = ("classifier", "lm_head", "pooler", "pre_classifier", "qa_outputs")
_ATTENTION_NAMES = ("attention", "attn")


def module_kind(name: str, module: torch.nn.Module) -> str | None:
    """The kind of a leaf module from its class and qualified name; None for modules not timed."""
    parts = name.lower().split(".")
    if isinstance(module, torch.nn.Embedding):
        return "embeddings"
    if isinstance(module, torch.nn.LayerNorm):
        return "layernorm"
    is_linear = isinstance(module, torch.nn.Linear) or type(module).__name__ == "Conv1D"  # GPT-2's linear
    if not is_linear:
        return None
    if any(p in _HEAD_NAMES for p in parts):
        return "head"
    if any(a in p for p in parts for a in _ATTENTION_NAMES):
        return "attention projections"
    return "mlp"


@dataclass
class ForwardProfile:
    """One profiled forward (`tritonbuild profile`): per-kind share of the time, and the top operators or kernels."""

    device: str
    forward_ms: float
    kinds_ms: dict[str, float]
    top: list[dict[str, float | str]]

    def percent(self) -> dict[str, float]:
        """Each kind as % of the forward."""
        return {k: 100 * v / self.forward_ms for k, v in self.kinds_ms.items()}

    def table(self) -> str:
        """Markdown: the breakdown, then the top operators/kernels."""
        lines = [
            f"forward: {self.forward_ms:.3f} ms on {self.device}",
            "",
            "| part | ms | % of forward |",
            "|---|---:|---:|",
        ]
        lines += [f"| {k} | {v:.3f} | {self.percent()[k]:.1f} |" for k, v in self.kinds_ms.items()]
        lines += ["", "| top operator / kernel | ms | calls |", "|---|---:|---:|"]
        lines += [f"| {t['name']} | {t['ms']:.3f} | {t['calls']} |" for t in self.top]
        return "\n".join(lines) + "\n"

    def write(self, folder: Path) -> None:
        """profile.json and profile.md."""
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "profile.json").write_text(json.dumps(asdict(self) | {"percent": self.percent()}, indent=2))
        (folder / "profile.md").write_text(self.table())


def _tag_modules(model: torch.nn.Module) -> list:
    """Hooks that open a profiler range named after each timed leaf module's kind, and close it."""
    open_ranges: dict[int, torch.profiler.record_function] = {}
    handles = []
    for name, module in model.named_modules():
        kind = module_kind(name, module)
        if kind is None or any(True for _ in module.children()):
            continue

        def enter(m: torch.nn.Module, _args: object, label: str = f"kind::{kind}") -> None:
            open_ranges[id(m)] = torch.profiler.record_function(label)
            open_ranges[id(m)].__enter__()

        def leave(m: torch.nn.Module, _args: object, _out: object) -> None:
            open_ranges.pop(id(m)).__exit__(None, None, None)

        handles += [module.register_forward_pre_hook(enter), module.register_forward_hook(leave)]
    return handles


Forward = Callable[[torch.Tensor, torch.Tensor], object]


def profile_forward(
    model: torch.nn.Module,
    ids: torch.Tensor,
    mask: torch.Tensor,
    top: int = 10,
    repeats: int = 5,
    run: Forward | None = None,
) -> ForwardProfile:
    """Profile `repeats` forwards after a warm-up; times are per forward.

    `run(ids, mask)` defaults to the model's own forward; the model's leaf modules are tagged either way
    (a fused forward names its own parts, and reuses the model's head modules).
    """
    cuda = ids.is_cuda
    run = run or (lambda i, m: model(input_ids=i, attention_mask=m))
    with torch.inference_mode():
        for _ in range(3):
            run(ids, mask)
    handles = _tag_modules(model)
    activities = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if cuda else [])
    try:
        with torch.profiler.profile(activities=activities) as prof, torch.inference_mode():
            for _ in range(repeats):
                with torch.profiler.record_function("kind::forward"):
                    run(ids, mask)
            if cuda:
                torch.cuda.synchronize()
    finally:
        for handle in handles:
            handle.remove()
    events = prof.key_averages()

    def ms(event: object) -> float:  # device time on a GPU, CPU time otherwise
        total = getattr(event, "device_time_total", 0.0) if cuda else event.cpu_time_total  # type: ignore[attr-defined]
        return float(total) / 1000 / repeats

    ranges = {e.key.removeprefix("kind::"): ms(e) for e in events if e.key.startswith("kind::")}
    forward = ranges.pop("forward")
    kinds = {k: ranges.get(k, 0.0) for k in KINDS if k != "other"}
    kinds["other"] = max(forward - sum(kinds.values()), 0.0)
    ops = [e for e in events if not e.key.startswith("kind::")]
    self_time = (lambda e: e.self_device_time_total) if cuda else (lambda e: e.self_cpu_time_total)
    ranked = sorted(ops, key=self_time, reverse=True)[:top]
    top_rows = [{"name": e.key[:80], "ms": self_time(e) / 1000 / repeats, "calls": e.count // repeats} for e in ranked]
    return ForwardProfile("cuda" if cuda else "cpu", forward, kinds, top_rows)


def profile_model(
    model: str, task: str, precision: str, batch: int, seq_len: int, device: str, top: int, kernels: str = "hf"
) -> ForwardProfile:
    """Load `model` as the python-torch backend would (precision and kernels included), profile one shape."""
    from builder.sources.source import inspect_model, load_graph_module

    if device == "cuda" and not torch.cuda.is_available():
        from builder.common.errors import UserError

        raise UserError("no CUDA device here", hint="use --device cpu, or run on a GPU host")
    info = inspect_model(model, task)
    torch_model = backend_module("torch_model")
    module = torch_model.apply_precision(load_graph_module(info).model, precision).to(device)  # type: ignore[attr-defined]
    # ordinary word ids: above the special tokens at the start of most vocabularies, within small ones
    ids = torch.randint(min(1000, info.vocab_size // 2), min(info.vocab_size, 20000), (batch, seq_len), device=device)
    forward: Forward | None = None
    if kernels != "hf":
        fused = backend_module("fused_transformer")
        try:
            trunk = fused.fuse(module.base_model, gelu_epilogue=kernels == "fused-tanh-gelu")  # type: ignore[attr-defined]
            head = torch_model.fused_head(module, task)  # type: ignore[attr-defined]
        except fused.Unsupported as exc:  # type: ignore[attr-defined]
            from builder.common.errors import UserError

            raise UserError(f"fused kernels: {exc} is not supported", hint="use --kernels hf") from None
        trunk.profile_ranges = True

        def fused_forward(i: torch.Tensor, m: torch.Tensor) -> object:
            return head(trunk(i, m, True), m)  # no row is padded: the backend's mask-free path

        forward = fused_forward

    return profile_forward(module, ids, torch.ones_like(ids), top=top, run=forward)
