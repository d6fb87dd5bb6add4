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
