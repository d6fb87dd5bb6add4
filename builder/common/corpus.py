"""Real English text that ships with Python itself (the pydoc topic pages), for queries and sweeps."""

from __future__ import annotations

import random
import re


def corpus_sentences(min_chars: int = 20, max_chars: int = 300) -> list[str]:
    """Sentences from pydoc_data.topics: ≈465k characters of English prose, no download needed."""
    from pydoc_data.topics import topics

    text = " ".join(topics[k] for k in sorted(topics))
    text = re.sub(r"\s+", " ", text)
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if min_chars <= len(s.strip()) <= max_chars]


def sample_texts(count: int, rng: random.Random) -> list[str]:
    """`count` sentences drawn with `rng`, for reproducible request streams."""
    sentences = corpus_sentences()
    return [rng.choice(sentences) for _ in range(count)]
