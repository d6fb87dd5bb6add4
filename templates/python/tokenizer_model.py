"""Triton Python-backend tokenizer: TEXT (bytes) → input_ids, attention_mask padded to a length bucket.

Padding to a few fixed lengths lets Triton's dynamic batcher merge requests downstream: it only
batches requests whose tensors have the same shape. Each text is cut to `max_text_chars` characters
before tokenizing (the planner derives the bound from the model's maximum length): the model reads
max_length tokens whatever the text's length, so a megabyte costs what a few kilobytes do.
"""

from __future__ import annotations

import json
import re

# isort: off
import tritonbuild_backend as tb  # first: it puts the right site-packages on sys.path

tb.use_stub_numpy()
import numpy as np
from tokenizers import Tokenizer, normalizers
# isort: on

pb_utils = tb.pb_utils
InputError = tb.InputError
_CONTROLS = re.compile("[\x00-\x1f\x7f]")  # tab and newline too: what is left is printable ASCII and spaces


def is_plain(text: str) -> bool:
    """Printable ASCII and spaces only: what BERT's normalizer leaves as it is, but for the case."""
    return text.isascii() and _CONTROLS.search(text) is None


def plain_twin(tokenizer: Tokenizer) -> Tokenizer | None:
    """The same tokenizer for plain texts (is_plain), with BERT's normalizer cut to what it does to them; or None.

    On printable ASCII, BertNormalizer strips no accent, spaces out no CJK character and cleans nothing, so lower-
    casing alone gives the same normalized text, hence the same ids; its other steps took a quarter of the time of
    tokenizing an English sentence (scripts/results/cpu_tokenizer_2026-12-02/). None when the normalizer is not
    BertNormalizer (nothing to gain, nothing proven).
    """
    normalizer = json.loads(tokenizer.to_str()).get("normalizer") or {}
    if normalizer.get("type") != "BertNormalizer":
        return None
    twin = Tokenizer.from_str(tokenizer.to_str())  # padding and truncation as set on `tokenizer`
    twin.normalizer = normalizers.Lowercase() if normalizer.get("lowercase", True) else None
    return twin


def decode_texts(items: np.ndarray, max_bytes: int, max_chars: int) -> list[str]:
    """Decode a TYPE_STRING array to str cut to `max_chars`, rejecting empty, oversized and non-UTF-8 items by index."""
    texts = []
    for i, raw in enumerate(items.reshape(-1)):
        data = raw if isinstance(raw, bytes) else str(raw).encode()
        if len(data) > max_bytes:
            raise InputError(f"TEXT[{i}] has {len(data)} bytes; the limit is {max_bytes}")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(
                f"TEXT[{i}] is not valid UTF-8 (byte {exc.object[exc.start]:#04x} at offset {exc.start})"
            ) from None
        if not text or text.isspace():
            raise InputError(f"TEXT[{i}] is empty or whitespace only")
        texts.append(text[:max_chars])
    return texts


def bucket_for(length: int, buckets: list[int]) -> int:
    """The smallest bucket that holds `length` tokens (the last bucket is the model maximum)."""
    for bucket in buckets:
        if length <= bucket:
            return bucket
    return buckets[-1]


def pad_to_bucket(ids: list[list[int]], pad_id: int, buckets: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad token id lists to one bucketed length; returns (input_ids, attention_mask) as int64."""
    width = bucket_for(max(len(row) for row in ids), buckets)
    input_ids = np.full((len(ids), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(ids), width), dtype=np.int64)
    for row, tokens in enumerate(ids):
        input_ids[row, : len(tokens)] = tokens
        mask[row, : len(tokens)] = 1
    return input_ids, mask


class TritonPythonModel:
    """Tokenizes each request on its own so one bad request fails alone."""

    def initialize(self, args: dict) -> None:
        """Load tokenizer.json and the bucket settings from the model config's parameters."""
        params = tb.params(args)
        # Tokenizing is this stub's compute: its instances share the host's cores through tokenizers' pool.
        # Inside the single text model on a GPU the rule gives one thread: tokenizing runs inline.
        tb.configure_threads(args, computes_on_host=args["model_instance_kind"] != "GPU")
        self.max_length = int(params["max_length"])
        self.buckets = [int(b) for b in params["buckets"].split(",")]
        self.pad_id = int(params["pad_id"])
        self.max_text_bytes = int(params["max_text_bytes"])
        self.max_text_chars = int(params["max_text_chars"])
        self.name = args["model_name"]
        self.load(tb.version_file(args, "tokenizer.json"), self.max_length)

    def load(self, path: str, max_length: int) -> None:
        """The tokenizer of a tokenizer.json, unpadded and truncated to `max_length`, and its plain twin."""
        self.tokenizer = Tokenizer.from_file(path)
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length)
        self.plain = plain_twin(self.tokenizer)
        # Without character offsets (unused here) when this tokenizers release can: about 20% less time.
        self.encode_full = getattr(self.tokenizer, "encode_batch_fast", self.tokenizer.encode_batch)
        self.encode_plain = self.plain and getattr(self.plain, "encode_batch_fast", self.plain.encode_batch)

    def encode_batch(self, texts: list[str]) -> list:
        """Encodings of `texts` in order: plain ones through the plain twin, the rest through the full tokenizer."""
        if not self.encode_plain:
            return self.encode_full(texts)
        plain = [is_plain(text) for text in texts]
        if all(plain):
            return self.encode_plain(texts)
        if not any(plain):
            return self.encode_full(texts)
        fast = iter(self.encode_plain([t for t, p in zip(texts, plain, strict=True) if p]))
        full = iter(self.encode_full([t for t, p in zip(texts, plain, strict=True) if not p]))
        return [next(fast) if p else next(full) for p in plain]

    def encode(self, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Tokenize a request's texts into bucket-padded arrays."""
        result = self.encode_requests([items])[0]
        if isinstance(result, BaseException):
            raise result
        return result

    def _pad(self, encodings: list) -> tuple[np.ndarray, np.ndarray]:
        return pad_to_bucket([e.ids for e in encodings], self.pad_id, self.buckets)

    def _encode_alone(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray] | BaseException:
        try:
            return self._pad(self.encode_batch(texts))
        except Exception as exc:  # reported for this request alone
            return exc

    def encode_requests(self, requests: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray] | BaseException]:
        """Each request's texts as bucket-padded arrays, or the exception that refuses that request alone.

        The valid texts of every request go through one encode_batch call: one hand-over to the
        tokenizers' pool per execute() instead of one per request. Should the tokenizer itself fail on
        the merged batch, every request is tokenized on its own, so that only the bad one fails.
        """
        decoded: list[list[str] | BaseException] = []
        for items in requests:
            try:
                decoded.append(decode_texts(items, self.max_text_bytes, self.max_text_chars))
            except Exception as exc:
                decoded.append(exc)
        texts = [text for d in decoded if not isinstance(d, BaseException) for text in d]
        try:
            encodings = iter(self.encode_batch(texts) if texts else [])
        except Exception:
            return [d if isinstance(d, BaseException) else self._encode_alone(d) for d in decoded]
        return [d if isinstance(d, BaseException) else self._pad([next(encodings) for _ in d]) for d in decoded]

    def execute(self, requests: list) -> list:
        """One response per request; a bad one gets its own error (INVALID_ARGUMENT for bad text)."""
        encoded = self.encode_requests([pb_utils.get_input_tensor_by_name(r, "TEXT").as_numpy() for r in requests])
        responses = []
        for result in encoded:
            if isinstance(result, BaseException):
                responses.append(tb.error_response(self.name, result))
                continue
            ids, mask = result
            responses.append(
                pb_utils.InferenceResponse(
                    output_tensors=[tb.output_tensor("input_ids", ids), tb.output_tensor("attention_mask", mask)]
                )
            )
        return responses
