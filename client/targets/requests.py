"""The requests of one point, made before any load is sent so that no generator builds inputs on the timed path.

Every generator of a sweep takes its requests from here, so tritonbench and perf_analyzer send the same texts
(or token ids) at the same point.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from builder.common.tokenizer import load_tokenizer
from client.points import MIXED, Point
from client.targets.inputs import InputError, TextSource, request_texts, request_tokens
from client.targets.target import Target
from client.targets.texts import mixed_requests, texts_digest, token_lengths
from client.transport.text_client import text_array

REQUEST_POOL = 32  # distinct requests per point, cycled; enough that no cache sees one input only


class Requests:
    """Distinct requests per point for one model: real text of exact length, or token ids (real when tokenized).

    With `given` texts, a MIXED point sends them as they are, each equally often (client.targets.texts).
    """

    def __init__(self, model: str, tokenizer_path: Path | None, seed: int = 0, given: Sequence[str] = ()) -> None:
        self.model = model
        self.seed = seed
        self.given = tuple(given)
        self.tokenizer = load_tokenizer(tokenizer_path) if tokenizer_path else None
        self._texts = TextSource(self.tokenizer) if self.tokenizer and not self.given else None

    def _seed(self, point: Point) -> int:
        return self.seed + point.seq_len

    def texts(self, point: Point) -> list[list[str]]:
        """REQUEST_POOL batches of `point.batch_size` texts, each exactly `point.seq_len` tokens long (or given)."""
        if point.seq_len == MIXED:
            return mixed_requests(self.given, point.batch_size, self.seed, REQUEST_POOL)
        if self._texts is None:
            raise InputError(
                f"{self.model} takes TEXT: sweeping a sequence length needs its tokenizer",
                hint="pass --tokenizer (tokenizer.json) or --repo (the model repository)",
            )
        return request_texts(self._texts, point.batch_size, point.seq_len, REQUEST_POOL, self._seed(point))

    def tokens(self, point: Point) -> list[dict[str, np.ndarray]]:
        """REQUEST_POOL batches of input_ids and attention_mask, [batch, seq_len] each."""
        return request_tokens(self.tokenizer, point.batch_size, point.seq_len, REQUEST_POOL, self._seed(point))

    def arrays(self, point: Point, target: Target) -> list[dict[str, np.ndarray]]:
        """The point's requests as named arrays, in the inputs `target` takes."""
        if target.text_input:
            return [{"TEXT": text_array(batch)} for batch in self.texts(point)]
        return self.tokens(point)

    def tokens_per_text(self, point: Point, target: Target) -> float:
        """The point's tokens per text: its length, or the given texts' mean as the server cuts them (0 untokenized)."""
        if point.seq_len != MIXED:
            return point.seq_len
        if self.tokenizer is None:
            return 0.0
        lengths = token_lengths(self.tokenizer, self.given, target.max_length)
        return sum(lengths) / len(lengths)

    def settings(self) -> dict[str, Any]:
        """What the records say about the given texts: how many, and which (their digest)."""
        return {"texts": len(self.given), "texts_digest": texts_digest(self.given)} if self.given else {}
