"""What a target takes, checked before any load: the point's requests fit it, and shapes it refuses are refused."""

import numpy as np
import pytest

from builder.sources.source import resolve_path
from client.points import Load, Point
from client.targets.inputs import SAFE_VOCAB, InputError
from client.targets.requests import REQUEST_POOL, Requests
from client.targets.target import Target, check_point

POINT = Point(2, 16, Load(concurrency=1))


@pytest.fixture(scope="module")
def minilm() -> Requests:
    return Requests("minilm", resolve_path("minilm") / "tokenizer.json", seed=3)


def test_an_ensemble_gets_texts_and_a_bare_model_token_ids_of_the_points_shape(minilm):
    text = minilm.arrays(POINT, Target(text_input=True, max_batch_size=32, max_length=256))
    assert len(text) == REQUEST_POOL and all(a["TEXT"].shape == (2, 1) and a["TEXT"].dtype == object for a in text)
    ids = minilm.arrays(POINT, Target(text_input=False, max_batch_size=32, max_length=None))
    assert all(a["input_ids"].shape == (2, 16) and (a["attention_mask"] == 1).all() for a in ids)
    assert all(a["input_ids"][0, 0] == 101 for a in ids)  # real tokens: MiniLM's [CLS] first


def test_every_generator_gets_the_same_requests_for_a_point(minilm):
    again = Requests("minilm", resolve_path("minilm") / "tokenizer.json", seed=3)
    assert again.texts(POINT) == minilm.texts(POINT)
    pairs = zip(again.tokens(POINT), minilm.tokens(POINT), strict=True)
    assert all(np.array_equal(a["input_ids"], b["input_ids"]) for a, b in pairs)


def test_without_a_tokenizer_text_is_refused_and_ids_stay_in_every_vocabulary():
    bare = Requests("m", None)
    with pytest.raises(InputError, match="needs its tokenizer") as refused:
        bare.texts(POINT)
    assert "--tokenizer" in refused.value.hint
    assert all(a["input_ids"].max() < SAFE_VOCAB for a in bare.tokens(POINT))


def test_shapes_the_model_refuses_are_refused_before_any_load():
    target = Target(text_input=True, max_batch_size=8, max_length=128)
    check_point(Point(8, 128, Load(concurrency=4)), target, "m")
    with pytest.raises(InputError, match="batch size 16 exceeds max_batch_size 8 of m"):
        check_point(Point(16, 32, Load(concurrency=1)), target, "m")
    with pytest.raises(InputError, match="sequence length 256 exceeds the 128 tokens m accepts"):
        check_point(Point(1, 256, Load(request_rate=5.0)), target, "m")
    check_point(Point(64, 512, Load(concurrency=1)), Target(False, 0, None), "m")  # no limits declared
