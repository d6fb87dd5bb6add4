"""Texts to measure with: the user's file (refused clearly when empty or unreadable), the built-in mix, and
requests that send every text in its real proportion."""

from __future__ import annotations

from collections import Counter

import pytest

from builder.common.tokenizer import load_tokenizer
from builder.sources.source import resolve_path
from client.points import MIXED
from client.sweep import SweepConfig
from client.targets.texts import (
    LONG_CHARS,
    MAX_TEXTS,
    SHORT_CHARS,
    TextsError,
    builtin_mix,
    mixed_requests,
    read_texts,
    texts_digest,
    token_lengths,
)
from client.transport.text_client import ClientConfig, ClientError


def test_read_texts_keeps_non_blank_lines(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("first text\n\n   \r\nsecond one  \r\nthird\n")
    assert read_texts(path) == ("first text", "second one", "third")


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "is empty"), (b"\n  \n\t\n", r"has 3 line\(s\), all blank"), (b"ok\n\xff\xfe bad\n", "is not UTF-8 text")],
)
def test_read_texts_refuses_empty_blank_and_undecodable_files(tmp_path, content, message):
    path = tmp_path / "t.txt"
    path.write_bytes(content)
    with pytest.raises(TextsError, match=message) as caught:
        read_texts(path)
    assert "--mix" in caught.value.hint


def test_read_texts_refuses_a_missing_or_unreadable_path(tmp_path):
    with pytest.raises(TextsError, match="cannot read the texts file"):
        read_texts(tmp_path / "missing.txt")
    with pytest.raises(TextsError, match="cannot read the texts file"):
        read_texts(tmp_path)  # a folder


def test_a_large_file_is_sampled_uniformly(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("".join("short\n" if i % 4 else "a much longer text\n" for i in range(3 * MAX_TEXTS)))
    texts = read_texts(path)
    assert len(texts) == MAX_TEXTS
    assert Counter(texts)["a much longer text"] / MAX_TEXTS == pytest.approx(0.25, abs=0.02)


def test_builtin_mix_has_the_stated_proportion_of_short_texts():
    texts = builtin_mix(0.7, 400, seed=3)
    short = [t for t in texts if len(t) <= SHORT_CHARS]
    assert len(texts) == 400 and len(short) == 280
    assert all(LONG_CHARS[0] <= len(t) <= LONG_CHARS[1] for t in texts if len(t) > SHORT_CHARS)
    assert builtin_mix(0.7, 400, seed=3) == texts and builtin_mix(0.7, 400, seed=4) != texts
    with pytest.raises(TextsError, match="must lie in 0..1"):
        builtin_mix(1.5, 10)


def test_mixed_requests_send_every_text_equally_often():
    texts = [f"text {i}" for i in range(10)]
    requests = mixed_requests(texts, batch=3, seed=1, minimum=20)
    assert len(requests) == 20 and all(len(r) == 3 for r in requests)
    sent = Counter(t for r in requests for t in r)  # 60 sends: every text 6 times
    assert set(sent.values()) == {6}
    assert [t for r in mixed_requests(texts, 1, 1) for t in r] != texts  # shuffled, seeded
    assert mixed_requests(texts, 1, 1) == mixed_requests(texts, 1, 1)
    assert len(mixed_requests(texts * 10, batch=1, seed=0, minimum=4)) == 100  # each text at least once


def test_token_lengths_count_special_tokens_and_stop_at_the_models_length():
    tokenizer = load_tokenizer(resolve_path("minilm"))
    short, long = "a short query", " ".join(["word"] * 400)
    assert token_lengths(tokenizer, [short]) == [len(tokenizer.encode(short).ids)]
    assert token_lengths(tokenizer, [short, long], max_length=256) == [5, 256]


def test_digest_tells_text_lists_apart():
    assert texts_digest(["a", "b"]) == texts_digest(["a", "b"]) != texts_digest(["b", "a"])


def test_a_sweep_over_texts_sends_their_own_lengths():
    client = ClientConfig("127.0.0.1:8001", "m")
    assert SweepConfig(client, (1,), (MIXED,), concurrency=(1,), texts=("a", "b")).texts == ("a", "b")
    with pytest.raises(ClientError, match="own lengths"):
        SweepConfig(client, (1,), (128,), concurrency=(1,), texts=("a",))
