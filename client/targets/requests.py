"""The requests of one point, made before any load is sent so that no generator builds inputs on the timed path.

Every generator of a sweep takes its requests from here, so tritonbench and perf_analyzer send the same texts
(or token ids) at the same point.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from builder.common.tokenizer import load_tokenizer
from client.points import Point
from client.targets.inputs import InputError, TextSource, request_texts, request_tokens
from client.targets.target import Target
from client.transport.text_client import text_array

REQUEST_POOL = 32  # distinct requests per point, cycled; enough that no cache sees one input only


class Requests:
    """Distinct requests per point for one model: real text of exact length, or token ids (real when tokenized)."""

    def __init__(self, model: str, tokenizer_path: Path | None, seed: int = 0) -> None:
        self.model = model
        self.seed = seed
        self.tokenizer = load_tokenizer(tokenizer_path) if tokenizer_path else None
        self._texts = TextSource(self.tokenizer) if self.tokenizer else None

    def _seed(self, point: Point) -> int:
        return self.seed + point.seq_len

    def texts(self, point: Point) -> list[list[str]]:
        """REQUEST_POOL batches of `point.batch_size` texts, each exactly `point.seq_len` tokens long."""
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
