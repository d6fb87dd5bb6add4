import numpy as np
import pytest

from templates.python.tokenizer_model import InputError, bucket_for, decode_texts, pad_to_bucket

BUCKETS = [16, 32, 64, 128, 256]


@pytest.mark.parametrize(("length", "bucket"), [(1, 16), (16, 16), (17, 32), (100, 128), (256, 256), (300, 256)])
def test_bucket_for(length, bucket):
    assert bucket_for(length, BUCKETS) == bucket


def test_pad_to_bucket_pads_right_with_the_pad_id():
    ids, mask = pad_to_bucket([[5, 6, 7], list(range(1, 21))], pad_id=9, buckets=BUCKETS)
    assert ids.shape == mask.shape == (2, 32) and ids.dtype == mask.dtype == np.int64
    assert ids[0, :3].tolist() == [5, 6, 7] and (ids[0, 3:] == 9).all()
    assert mask[0].sum() == 3 and mask[1].sum() == 20 and mask[1, :20].all()


def test_decode_texts_accepts_utf8_and_rejects_bad_items_by_index():
    items = np.array([["héllo".encode()], [b"world"]], dtype=object)
    assert decode_texts(items, 100, 100) == ["héllo", "world"]
    with pytest.raises(InputError, match=r"TEXT\[1\] is empty"):
        decode_texts(np.array([[b"ok"], [b""]], dtype=object), 100, 100)
    with pytest.raises(InputError, match=r"TEXT\[0\] is empty or whitespace only"):
        decode_texts(np.array([[b" \t\n "]], dtype=object), 100, 100)
    with pytest.raises(InputError, match=r"TEXT\[0\] is not valid UTF-8 \(byte 0xff at offset 2\)"):
        decode_texts(np.array([[b"ab\xffcd"]], dtype=object), 100, 100)
    with pytest.raises(InputError, match=r"TEXT\[0\] has 101 bytes; the limit is 100"):
        decode_texts(np.array([[b"x" * 101]], dtype=object), 100, 100)


def test_texts_are_cut_to_the_character_bound_before_tokenizing():
    items = np.array([["é" * 50 + "x" * 50], [b"short"], [(" " * 30 + "word").encode()]], dtype=object)
    assert decode_texts(items, 1000, 20) == ["é" * 20, "short", " " * 20]  # cut by characters, never mid-character
    with pytest.raises(InputError, match=r"TEXT\[0\] is not valid UTF-8"):  # the whole text is checked, cut or not
        decode_texts(np.array([[b"fine" * 10 + b"\xff"]], dtype=object), 1000, 8)


def test_every_request_of_an_execute_is_tokenized_in_one_call_and_a_bad_one_fails_alone():
    import json

    import numpy as np
    from tokenizer_model import InputError, TritonPythonModel

    from builder.sources.source import resolve_path

    model = TritonPythonModel()
    parameters = {
        "max_length": "256",
        "buckets": "16,32,64,128,256",
        "pad_id": "0",
        "max_text_bytes": "1000",
        "max_text_chars": "4096",
    }
    config = {
        "name": "t",
        "instance_group": [{"count": 1}],
        "parameters": {k: {"string_value": v} for k, v in parameters.items()},
    }
    model.initialize(
        {
            "model_config": json.dumps(config),
            "model_instance_kind": "CPU",
            "model_repository": str(resolve_path("minilm").parent),
            "model_version": "model",
            "model_name": "t",
        }
    )
    calls = []
    encode = model.encode_batch
    model.encode_batch = lambda texts: calls.append(len(texts)) or encode(texts)
    requests = [
        np.array([b"one text"], dtype=object),
        np.array([b"\xff"], dtype=object),
        np.array([b"two", b"texts here"], dtype=object),
    ]
    first, bad, third = model.encode_requests(requests)
    assert calls == [3]  # the valid texts of all three requests, in one call
    assert isinstance(bad, InputError) and "not valid UTF-8" in str(bad)
    alone = [model.encode(r) for r in (requests[0], requests[2])]
    for got, expected in zip((first, third), alone, strict=True):
        assert (got[0] == expected[0]).all() and (got[1] == expected[1]).all()  # same ids as one by one


def _minilm_tokenizer(lowercase: bool = True):
    import json

    from tokenizers import Tokenizer

    from builder.sources.source import resolve_path

    spec = json.loads((resolve_path("minilm") / "tokenizer.json").read_text())
    spec["normalizer"]["lowercase"] = lowercase
    tokenizer = Tokenizer.from_str(json.dumps(spec))
    tokenizer.no_padding()
    tokenizer.enable_truncation(128)
    return tokenizer


PLAIN = [
    "The Quick Brown Fox, 3.5 times: JUMPED! (over) the lazy dog's [tail] & ran #away @ 10:30 ~ 100%?",
    "  leading and   many   inner spaces  ",
    "x" * 150 + " a word longer than WordPiece's 100 characters, then more words",
    "supercalifragilisticexpialidocious unbelievable unaffordable tokenization's sub-words",
    " ".join(["word"] * 200),  # truncated to 128 tokens either way
    "“Curly” quotes, an em—dash, an en–dash… and ‘single’ ones: «guillemets» ¿¡ § ¶ · • †",
]
NOT_PLAIN = [
    "tab\there",
    "new\nline",
    "bell\x07 inside",
    "del\x7f",
    "café Crème",
    "日本語 text",
    "emoji 🙂",
    "zero\x00",
]


@pytest.mark.parametrize("lowercase", [True, False])
def test_every_punctuation_mark_beyond_ascii_is_split_off_as_the_tokenizer_does(lowercase):
    from tokenizer_model import PUNCTUATION, PlainWordPiece

    full = _minilm_tokenizer(lowercase)
    plain = PlainWordPiece.of(full, 128)
    import unicodedata

    assert "’" in PUNCTUATION and "—" in PUNCTUATION and "…" in PUNCTUATION
    assert all(unicodedata.normalize("NFD", m) == m == m.lower() == m.upper() for m in PUNCTUATION)
    for mark in PUNCTUATION:
        text = f"It{mark}s a{mark}b {mark}{mark} word{mark} {mark}Start and end{mark}"
        assert plain(text) == full.encode(text).ids, mark


def test_plain_texts_are_printable_ascii_spaces_and_common_punctuation():
    from tokenizer_model import is_plain

    assert all(is_plain(t) for t in PLAIN)
    assert not any(is_plain(t) for t in NOT_PLAIN)


def _fuzz_texts(tokenizer, count: int, seed: int) -> list[str]:
    """Plain texts built to trip a WordPiece: whole words, pieces, unknown runs, punctuation, digits, case, spaces."""
    import random
    import string

    from tokenizer_model import PUNCTUATION

    rng = random.Random(seed)
    vocab = [t for t in tokenizer.get_vocab() if t.isascii() and t.isprintable()]
    pieces = [t.removeprefix("##") for t in vocab]
    parts = [
        lambda: rng.choice(vocab),  # "##ing" and "[MASK]" too: the plain path must refuse or match them
        lambda: rng.choice(pieces) + rng.choice(pieces),  # glued pieces: split again by the longest match
        lambda: "".join(rng.choices(string.ascii_letters + string.digits, k=rng.randint(1, 12))),
        lambda: rng.choice(string.punctuation + PUNCTUATION) * rng.randint(1, 3),
        lambda: " " * rng.randint(1, 3),
        lambda: rng.choice(pieces).upper(),
        lambda: "".join(rng.choices(string.ascii_lowercase, k=rng.choice((99, 100, 101, 150)))),  # WordPiece's limit
    ]
    weights = [30, 15, 15, 15, 20, 4, 1]
    return ["".join(rng.choices(parts, weights)[0]() for _ in range(rng.randint(1, 60))) for _ in range(count)]


@pytest.mark.parametrize("lowercase", [True, False])
def test_the_plain_path_gives_the_tokenizers_own_ids(lowercase):
    from tokenizer_model import PlainWordPiece, is_plain

    from builder.common.corpus import corpus_sentences

    full = _minilm_tokenizer(lowercase)
    plain = PlainWordPiece.of(full, 128)
    assert plain is not None
    texts = PLAIN + corpus_sentences() + _fuzz_texts(full, 3000, seed=int(lowercase))
    refused = 0
    for text in texts:
        ids = plain(text)
        if ids is None:  # only for a text that is not plain or holds one of the tokenizer's added tokens
            added = any(token in text.lower() for token in ("[pad]", "[unk]", "[cls]", "[sep]", "[mask]"))
            assert added or not is_plain(text), text
            refused += 1
            continue
        assert ids == full.encode(text).ids, text
    assert 0 < refused < len(texts) / 20


@pytest.mark.parametrize("max_length", [3, 8, 16, 128, 512])
def test_the_plain_path_truncates_where_the_tokenizer_does(max_length):
    from tokenizer_model import PlainWordPiece

    full = _minilm_tokenizer()
    full.enable_truncation(max_length)
    plain = PlainWordPiece.of(full, max_length)
    for text in [*PLAIN, *_fuzz_texts(full, 300, seed=max_length)]:
        ids = plain(text)
        assert ids is None or ids == full.encode(text).ids, text


def test_the_plain_path_refuses_texts_tokenizers_must_see():
    from tokenizer_model import PlainWordPiece

    plain = PlainWordPiece.of(_minilm_tokenizer(), 128)
    assert all(plain(text) is None for text in NOT_PLAIN)
    # added tokens are matched before the normalizer, so they stay whole in the tokenizer's ids
    assert plain("fill the [MASK] here") is None and plain("a [sep] b") is None
    assert plain("fill the MASK here") is not None


def test_a_batch_mixing_plain_and_other_texts_keeps_order_and_ids():
    from tokenizer_model import TritonPythonModel

    from builder.sources.source import resolve_path

    model = TritonPythonModel()
    model.load(str(resolve_path("minilm") / "tokenizer.json"), 128)
    assert model.plain is not None
    full = _minilm_tokenizer()
    texts = [PLAIN[0], NOT_PLAIN[4], PLAIN[1], NOT_PLAIN[0], "the [MASK] stays whole", NOT_PLAIN[5], PLAIN[3]]
    for batch in (texts, texts[::2], texts[1::2], [PLAIN[2]]):  # mixed, all plain, none plain, one
        assert model.encode_batch(batch) == [full.encode(t).ids for t in batch]


def test_no_plain_path_for_other_tokenizers():
    import json

    from tokenizer_model import PlainWordPiece
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    tokenizer = Tokenizer(models.WordLevel({"a": 0, "[UNK]": 1}, unk_token="[UNK]"))
    assert PlainWordPiece.of(tokenizer, 128) is None
    tokenizer.normalizer = normalizers.BertNormalizer()
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    assert PlainWordPiece.of(tokenizer, 128) is None  # not a WordPiece
    bert = _minilm_tokenizer()
    for part, other in (("normalizer", normalizers.NFKC()), ("pre_tokenizer", pre_tokenizers.Whitespace())):
        changed = Tokenizer.from_str(bert.to_str())
        setattr(changed, part, other)
        assert PlainWordPiece.of(changed, 128) is None, part
    spec = json.loads(bert.to_str())
    spec["post_processor"] = None  # nothing around a text: still the plain path, with no special tokens
    bare = Tokenizer.from_str(json.dumps(spec))
    assert PlainWordPiece.of(bare, 128)("hello world") == bare.encode("hello world").ids
