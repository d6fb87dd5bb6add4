"""Request inputs for sweeps: real English text of an exact token length, or valid token ids.

Text for an ensemble is cut from Python's own documentation at token boundaries and re-encoded
to prove its length, so a point labelled seq_len 128 really sends 128 tokens per text.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from builder.common.corpus import corpus_sentences
from builder.common.errors import UserError
from builder.contract.manifest import Manifest

# Every vocabulary we serve has at least this many ids; used when no tokenizer is given.
SAFE_VOCAB = 1000


class InputError(UserError):
    """Inputs of the requested shape cannot be made for this model."""


def find_tokenizer(model: str, tokenizer: Path | None, repo: Path | None) -> Path | None:
    """The tokenizer to use: explicit, else the one the repository's manifest names for `model`'s deployment."""
    if tokenizer is not None:
        return tokenizer
    if repo is None or not repo.is_dir():
        return None
    manifest = Manifest.find(repo, model)
    return manifest.tokenizer_path(repo) if manifest is not None else None


def _stream(tokenizer: Tokenizer) -> tuple[str, list[tuple[int, int]]]:
    text = " ".join(corpus_sentences())
    return text, tokenizer.encode(text, add_special_tokens=False).offsets


@dataclass
class TextSource:
    """Cuts texts of exact token lengths from the corpus for one tokenizer."""

    tokenizer: Tokenizer

    def __post_init__(self) -> None:
        self._text, self._offsets = _stream(self.tokenizer)
        self._specials = self.tokenizer.num_special_tokens_to_add(False)

    def text_of_length(self, seq_len: int, rng: random.Random, attempts: int = 50) -> str:
        """A text that tokenizes to exactly `seq_len` tokens (special tokens included)."""
        body = seq_len - self._specials
        if body < 1:
            raise InputError(
                f"sequence length {seq_len} leaves no room for text beside {self._specials} special tokens"
            )
        for _ in range(attempts):
            start = rng.randrange(0, len(self._offsets) - body)
            # start at a word boundary so the first token is not a word piece; byte-level BPE tokens
            # (GPT-2's) carry the space before their word, WordPiece tokens start after it
            begin, end = self._offsets[start][0], self._offsets[start + body - 1][1]
            if begin > 0 and not (self._text[begin - 1].isspace() or self._text[begin].isspace()):
                continue
            candidate = self._text[begin:end]
            if len(self.tokenizer.encode(candidate).ids) == seq_len:
                return candidate
        raise InputError(f"could not cut a text of exactly {seq_len} tokens after {attempts} attempts")


def request_texts(source: TextSource, batch: int, seq_len: int, requests: int, seed: int) -> list[list[str]]:
    """`requests` batches of `batch` texts, each exactly `seq_len` tokens long."""
    rng = random.Random(seed)
    return [[source.text_of_length(seq_len, rng) for _ in range(batch)] for _ in range(requests)]


def request_tokens(
    tokenizer: Tokenizer | None, batch: int, seq_len: int, requests: int, seed: int
) -> list[dict[str, np.ndarray]]:
    """Token ids and full attention masks of shape [batch, seq_len]: real tokens when a tokenizer is given."""
    rng = np.random.default_rng(seed)
    if tokenizer is not None:
        source = TextSource(tokenizer)
        texts = request_texts(source, batch, seq_len, requests, seed)
        ids = [np.array([tokenizer.encode(t).ids for t in batch_texts], dtype=np.int64) for batch_texts in texts]
    else:
        ids = [rng.integers(0, SAFE_VOCAB, (batch, seq_len), dtype=np.int64) for _ in range(requests)]
    return [{"input_ids": i, "attention_mask": np.ones_like(i)} for i in ids]
