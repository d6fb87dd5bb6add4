"""Real texts to measure with: the user's own file (one text per line), or a built-in mix of short and long ones.

A sweep over texts sends them in their real proportions: each text once per cycle through a seeded shuffle,
`batch` consecutive texts per request; lengths are whatever the texts tokenize to, not a fixed shape.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Sequence
from pathlib import Path

from tokenizers import Tokenizer

from builder.common.corpus import corpus_sentences
from builder.common.errors import UserError

MAX_TEXTS = 20_000  # a larger file is sampled (uniformly, seeded): the proportions stay, the memory does not grow
SHORT_CHARS = 120  # a built-in short text: one sentence of at most this many characters (≈ 5-30 tokens)
LONG_CHARS = (600, 1200)  # a built-in long text: consecutive sentences joined to this many characters (≈ 150-280)
_HINT = "give a UTF-8 file with one text per line, or --mix FRACTION for the built-in short/long mix"


class TextsError(UserError):
    """The texts to measure with cannot be read or are empty."""


def read_texts(path: Path, seed: int = 0) -> tuple[str, ...]:
    """The non-blank lines of `path` (at most MAX_TEXTS, sampled uniformly beyond that)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TextsError(f"cannot read the texts file {path}: {exc.strerror}", hint=_HINT) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TextsError(f"{path} is not UTF-8 text (byte {exc.start} cannot be decoded)", hint=_HINT) from None
    lines = text.splitlines()
    texts = [line.strip() for line in lines if line.strip()]
    if not texts:
        what = "is empty" if not data else f"has {len(lines)} line(s), all blank"
        raise TextsError(f"the texts file {path} {what}: there is nothing to send", hint=_HINT)
    if len(texts) > MAX_TEXTS:
        texts = random.Random(seed).sample(texts, MAX_TEXTS)
    return tuple(texts)


def _passages(sentences: Sequence[str]) -> list[str]:
    """Consecutive sentences joined into passages of LONG_CHARS characters."""
    passages, current = [], ""
    for sentence in sentences:
        current = f"{current} {sentence}".strip()
        if len(current) >= LONG_CHARS[0]:
            if len(current) <= LONG_CHARS[1]:
                passages.append(current)
            current = ""
    return passages


def builtin_mix(short_fraction: float, count: int, seed: int = 0) -> tuple[str, ...]:
    """`count` real English texts from Python's own docs, `short_fraction` of them one short sentence each.

    The rest are passages of a few consecutive sentences: a stated mix of short queries and long documents.
    """
    if not 0 <= short_fraction <= 1:
        raise TextsError(f"--mix {short_fraction:g}: the fraction of short texts must lie in 0..1", hint="e.g. 0.8")
    if count < 1:
        raise TextsError("the built-in mix needs at least one text")
    sentences = corpus_sentences()
    short = [s for s in sentences if len(s) <= SHORT_CHARS]
    long = _passages(sentences)
    rng = random.Random(seed)
    shorts = round(count * short_fraction)
    texts = [rng.choice(short) for _ in range(shorts)] + [rng.choice(long) for _ in range(count - shorts)]
    rng.shuffle(texts)
    return tuple(texts)


def token_lengths(tokenizer: Tokenizer, texts: Sequence[str], max_length: int | None = None) -> list[int]:
    """Tokens per text, special tokens included, as the tokenizer step sees them (cut at `max_length`)."""
    lengths = [len(e.ids) for e in tokenizer.encode_batch(list(texts))]
    return [min(n, max_length) for n in lengths] if max_length else lengths


def mixed_requests(texts: Sequence[str], batch: int, seed: int, minimum: int = 1) -> list[list[str]]:
    """Requests of `batch` texts that send every text equally often: consecutive slices of a seeded shuffle.

    At least `minimum` requests (the list then wraps around), and enough to send every text once.
    """
    if not texts:
        raise TextsError("no texts to send", hint=_HINT)
    order = list(texts)
    random.Random(seed).shuffle(order)
    count = max(minimum, math.ceil(len(order) / batch))
    return [[order[(i * batch + j) % len(order)] for j in range(batch)] for i in range(count)]


def texts_digest(texts: Sequence[str]) -> str:
    """A short fingerprint of a list of texts (their order included): which texts a record measured."""
    return hashlib.sha256("\n".join(texts).encode()).hexdigest()[:12]
