"""Triton Python-backend tokenizer: TEXT (bytes) → input_ids, attention_mask padded to a length bucket.

Padding to a few fixed lengths lets Triton's dynamic batcher merge requests downstream: it only
batches requests whose tensors have the same shape. Each text is cut to `max_text_chars` characters
before tokenizing (the planner derives the bound from the model's maximum length): the model reads
max_length tokens whatever the text's length, so a megabyte costs what a few kilobytes do.
"""

from __future__ import annotations

import json
import re
import unicodedata

# isort: off
import tritonbuild_backend as tb  # first: it puts the right site-packages on sys.path

tb.use_stub_numpy()
import numpy as np
from tokenizers import Tokenizer
# isort: on

pb_utils = tb.pb_utils
InputError = tb.InputError
_CONTROLS = re.compile("[\x00-\x1f\x7f]")  # tab and newline too: what is left is printable ASCII and spaces
# Punctuation beyond ASCII that English text is full of (curly quotes, dashes, the ellipsis, guillemets): caseless
# and unchanged by NFD, so BERT's normalizer leaves each as it is, and its pre-tokenizer splits each off as it does
# ASCII punctuation (both take Unicode's P* categories for punctuation).
PUNCTUATION = "".join(
    c for c in map(chr, [*range(0xA1, 0xC0), *range(0x2010, 0x2060)]) if unicodedata.category(c).startswith("P")
)
_NOT_PLAIN = re.compile(f"[^\x20-\x7e{re.escape(PUNCTUATION)}]")


def is_plain(text: str) -> bool:
    """Printable ASCII, spaces and PUNCTUATION only: what BERT's normalizer leaves as it is, but for the case."""
    if text.isascii():  # a flag of the string: no scan
        return _CONTROLS.search(text) is None
    return _NOT_PLAIN.search(text) is None


class PlainWordPiece:
    """A BERT tokenizer's ids for plain texts (is_plain) from dictionary lookups: less than half tokenizers' time.

    On printable ASCII, spaces and PUNCTUATION, BertNormalizer at most lower-cases (it strips no accent, spaces out
    no CJK character, cleans nothing), BertPreTokenizer splits at spaces and around every other character that is not
    a letter or digit, and WordPiece takes the longest vocabulary entry from the left of each word. Here a word in the
    vocabulary costs one dict lookup, while tokenizers builds a full Encoding (tokens, offsets, masks) for every
    text: the step encoded a 127-token English text in 38–45 µs, against 83–106 µs through tokenizers (e1896de's
    file), on the 2-core CPU machine (scripts/results/cpu_tokenizer_2026-12-07/). The special tokens around a text and
    where truncation cuts are read off the tokenizer itself. A text that holds an added token's content (such as
    "[MASK]"), which tokenizers matches before normalizing, is left to tokenizers.
    """

    _WORDS = re.compile(r"[A-Za-z0-9]+|[^ A-Za-z0-9]")

    def __init__(
        self,
        vocab: dict[str, int],
        prefix: str,
        unk: int,
        max_word_chars: int,
        lowercase: bool,
        around: tuple[list[int], list[int]],
        budget: int,
        added: list[str],
    ) -> None:
        self.vocab, self.unk, self.max_word_chars, self.lowercase = vocab, unk, max_word_chars, lowercase
        self.pieces = {token[len(prefix) :]: i for token, i in vocab.items() if token.startswith(prefix)}
        self.before, self.after = around
        self.budget = budget  # tokens of the text itself that fit between the special tokens
        lowered = sorted({token.lower() for token in added if token})
        self.added = re.compile("|".join(map(re.escape, lowered))) if lowered else None

    @classmethod
    def of(cls, tokenizer: Tokenizer, max_length: int) -> PlainWordPiece | None:
        """The plain path of a BertNormalizer + BertPreTokenizer + WordPiece tokenizer truncating to max_length."""
        spec = json.loads(tokenizer.to_str())
        normalizer, model = spec.get("normalizer") or {}, spec.get("model") or {}
        if (
            normalizer.get("type") != "BertNormalizer"
            or (spec.get("pre_tokenizer") or {}).get("type") != "BertPreTokenizer"
            or model.get("type") != "WordPiece"
            or model.get("unk_token") not in model.get("vocab", {})
        ):
            return None
        around = _special_tokens_around(tokenizer)
        if around is None or max_length - len(around[0]) - len(around[1]) < 1:
            return None
        return cls(
            model["vocab"],
            model.get("continuing_subword_prefix") or "##",
            model["vocab"][model["unk_token"]],
            int(model.get("max_input_chars_per_word", 100)),
            bool(normalizer.get("lowercase", True)),
            around,
            max_length - len(around[0]) - len(around[1]),
            [token["content"] for token in spec.get("added_tokens") or []],
        )

    def __call__(self, text: str) -> list[int] | None:
        """The tokenizer's ids for `text`, special tokens included and truncated as it truncates; None unless plain.

        None, too, for a text holding an added token's content: tokenizers matches those before normalizing.
        """
        if not is_plain(text):
            return None
        lowered = text.lower()
        if self.added and self.added.search(lowered):
            return None
        words = self._WORDS.findall(lowered if self.lowercase else text)[: self.budget]  # ≥ 1 token each
        ids = list(map(self.vocab.get, words))  # a word of the vocabulary is one token: most words
        if None in ids:
            ids = self.split_the_rest(words, ids)
        return self.before + ids[: self.budget] + self.after

    def split_the_rest(self, words: list[str], ids: list[int | None]) -> list[int]:
        """`ids` with each None (a word not in the vocabulary) replaced by that word's pieces."""
        out: list[int] = []
        start = 0
        while True:
            try:
                missing = ids.index(None, start)
            except ValueError:
                return out + ids[start:]
            out += ids[start:missing]
            out += self.word_pieces(words[missing])
            start = missing + 1

    def word_pieces(self, word: str) -> list[int]:
        """WordPiece of one word: the longest known prefix, then the longest known continuation, ...; else unknown."""
        if len(word) > self.max_word_chars:
            return [self.unk]
        pieces, start, table = [], 0, self.vocab
        while start < len(word):
            # the whole word is not in the vocabulary (it is asked only then): its first piece is shorter
            for end in range(len(word) - (start == 0), start, -1):
                found = table.get(word[start:end])
                if found is not None:
                    pieces.append(found)
                    start, table = end, self.pieces
                    break
            else:
                return [self.unk]
        return pieces


def _special_tokens_around(tokenizer: Tokenizer) -> tuple[list[int], list[int]] | None:
    """The ids the tokenizer's post-processor puts before and after a text's own; None if it does more than that."""
    untruncated = Tokenizer.from_str(tokenizer.to_str())
    untruncated.no_truncation()
    found = set()
    for probe in ("a", "hello world"):
        bare = untruncated.encode(probe, add_special_tokens=False).ids
        full = untruncated.encode(probe).ids
        starts = [i for i in range(len(full) - len(bare) + 1) if full[i : i + len(bare)] == bare]
        if not bare or len(starts) != 1:
            return None
        found.add((tuple(full[: starts[0]]), tuple(full[starts[0] + len(bare) :])))
    if len(found) != 1:
        return None
    before, after = found.pop()
    return list(before), list(after)


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
        # Tokenizing is this stub's compute: plain texts on its own thread, the others in tokenizers' pool, through
        # which its instances share the host's cores. Inside the single text model on a GPU the rule gives one
        # thread: tokenizing runs inline.
        tb.configure_threads(args, computes_on_host=args["model_instance_kind"] != "GPU")
        self.max_length = int(params["max_length"])
        self.buckets = [int(b) for b in params["buckets"].split(",")]
        self.pad_id = int(params["pad_id"])
        self.max_text_bytes = int(params["max_text_bytes"])
        self.max_text_chars = int(params["max_text_chars"])
        self.name = args["model_name"]
        self.load(tb.version_file(args, "tokenizer.json"), self.max_length)

    def load(self, path: str, max_length: int) -> None:
        """The tokenizer of a tokenizer.json, unpadded and truncated to `max_length`, and its plain path."""
        self.tokenizer = Tokenizer.from_file(path)
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length)
        self.plain = PlainWordPiece.of(self.tokenizer, max_length)
        # Without character offsets (unused here) when this tokenizers release can: about 20% less time.
        self.encode_full = getattr(self.tokenizer, "encode_batch_fast", self.tokenizer.encode_batch)

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """Token ids of `texts` in order: plain ones through the plain path, the rest through the tokenizer."""
        ids = list(map(self.plain, texts)) if self.plain else [None] * len(texts)
        rest = [text for text, found in zip(texts, ids, strict=True) if found is None]
        if not rest:
            return ids
        encoded = iter(self.encode_full(rest))
        return [found if found is not None else next(encoded).ids for found in ids]

    def encode(self, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Tokenize a request's texts into bucket-padded arrays."""
        result = self.encode_requests([items])[0]
        if isinstance(result, BaseException):
            raise result
        return result

    def _pad(self, ids: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        return pad_to_bucket(ids, self.pad_id, self.buckets)

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
            ids = iter(self.encode_batch(texts) if texts else [])
        except Exception:
            return [d if isinstance(d, BaseException) else self._encode_alone(d) for d in decoded]
        return [d if isinstance(d, BaseException) else self._pad([next(ids) for _ in d]) for d in decoded]

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
