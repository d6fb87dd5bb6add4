import contextlib
import random

import pytest

from builder.common.tokenizer import load_tokenizer
from client.targets.inputs import InputError, TextSource, find_tokenizer, request_texts, request_tokens


@pytest.fixture(scope="module")
def minilm_tokenizer():
    from builder.sources.source import resolve_path

    return load_tokenizer(resolve_path("minilm"))


@pytest.mark.parametrize("seq_len", [3, 8, 32, 128, 256])
def test_texts_have_exactly_the_requested_token_count(minilm_tokenizer, seq_len):
    batches = request_texts(TextSource(minilm_tokenizer), batch=4, seq_len=seq_len, requests=3, seed=seq_len)
    assert len(batches) == 3 and all(len(b) == 4 for b in batches)
    for text in (t for b in batches for t in b):
        assert len(minilm_tokenizer.encode(text).ids) == seq_len
        assert sum(c.isalpha() for c in text) > len(text) / 3  # prose, not random characters


def test_gpt2_byte_level_tokenizer_too(tiny_models):
    tokenizer = load_tokenizer(tiny_models["gpt2"])
    source = TextSource(tokenizer)
    for seq_len in (1, 16, 100):
        assert len(tokenizer.encode(source.text_of_length(seq_len, random.Random(0))).ids) == seq_len


@pytest.mark.parametrize("seq_len", [16, 128])
def test_byte_level_texts_start_at_a_word_boundary_at_the_first_attempt_mostly(tiny_models, seq_len):
    tokenizer = load_tokenizer(tiny_models["gpt2"])
    source, rng, cut = TextSource(tokenizer), random.Random(1), []
    for _ in range(100):
        with contextlib.suppress(InputError):  # the rest of the 100 draws: counted as misses
            cut.append(source.text_of_length(seq_len, rng, attempts=1))
    assert len(cut) > 30  # about 1 in 40 before byte-level starts were accepted: batches ran out of attempts
    assert all(len(tokenizer.encode(text).ids) == seq_len for text in cut)


def test_too_short_for_the_special_tokens(minilm_tokenizer):
    with pytest.raises(InputError, match="special tokens"):
        TextSource(minilm_tokenizer).text_of_length(2, random.Random(0))


def test_token_inputs_are_valid_ids(minilm_tokenizer):
    arrays = request_tokens(minilm_tokenizer, 2, 16, 3, seed=0)
    assert arrays[0]["input_ids"].shape == (2, 16) and arrays[0]["attention_mask"].all()
    assert arrays[0]["input_ids"][:, 0].tolist() == [101, 101]  # [CLS]: real tokenization
    blind = request_tokens(None, 2, 16, 1, seed=0)[0]["input_ids"]
    assert blind.max() < 1000 and blind.dtype.name == "int64"


def test_find_tokenizer_through_the_repositorys_manifest(tmp_path):
    from builder.common.tokenizer import TokenizerError
    from builder.contract.manifest import MANIFEST, Manifest

    path = tmp_path / "m_model" / "1" / "tokenizer.json"  # a single-model deployment: the tokenizer sits there
    path.parent.mkdir(parents=True)
    path.write_text("{}")
    (tmp_path / "m").mkdir()
    manifest = Manifest("m", "feature-extraction", "src", "bert", "python-torch", "cpu", 256, [16, 256], 8,
                        ["EMBEDDING"], "fp32", None, [], steps=["m_model"],
                        tokenizer="m_model/1/tokenizer.json")  # fmt: skip
    manifest.write(tmp_path / "m" / MANIFEST)
    assert find_tokenizer("m", None, tmp_path) == path
    assert find_tokenizer("m_model", None, tmp_path) == path  # a step of the deployment
    assert find_tokenizer("x", None, tmp_path) is None
    assert find_tokenizer("m", tmp_path / "mine.json", tmp_path) == tmp_path / "mine.json"  # explicit wins
    with pytest.raises(TokenizerError, match="no tokenizer.json"):
        load_tokenizer(tmp_path / "nowhere")
