"""Text in, answers out: the real bundled tritonserver, real tokenizers and models, real sockets."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import torch
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from builder.common.corpus import corpus_sentences
from builder.sources.source import resolve_path
from client.transport.text_client import AsyncTextClient, ClientConfig, ClientError, TextClient

pytestmark = pytest.mark.slow

SENTENCES = corpus_sentences()
TEXTS = [
    "Hi",
    "Triton batches requests dynamically.",
    "Grüße aus Köln — 東京からこんにちは 🙂",
    " ".join(SENTENCES[:3]),
    " ".join(SENTENCES[10:25]),  # longer than 256 tokens: truncated by the tokenizer step
]


@pytest.fixture(scope="module")
def minilm_reference():
    from transformers import AutoModel, AutoTokenizer

    path = resolve_path("minilm")
    tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()

    def embed(texts: list[str]) -> np.ndarray:
        batch = tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
        with torch.inference_mode():
            hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=1).numpy()

    return embed


def _url(server, protocol: str) -> str:
    return server.grpc_url if protocol == "grpc" else server.http_url


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.mark.serves("python-onnxruntime")
@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_embeddings_match_pytorch_sentence_embeddings(server, minilm_reference, protocol):
    with TextClient(ClientConfig(_url(server, protocol), "minilm", protocol)) as client:
        served = client.embed(TEXTS)
        one_by_one = np.concatenate([client.embed([t]) for t in TEXTS])
    reference = minilm_reference(TEXTS)
    assert served.shape == (len(TEXTS), 384) and served.dtype == np.float32
    assert _cosines(served, reference).min() >= 0.9999
    assert _cosines(one_by_one, reference).min() >= 0.9999  # other padding bucket, same answer


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_async_client(server, minilm_reference, protocol):
    async def go() -> list[np.ndarray]:
        async with AsyncTextClient(ClientConfig(_url(server, protocol), "minilm", protocol)) as client:
            return await asyncio.gather(*(client.embed([t]) for t in TEXTS))

    served = np.concatenate(asyncio.run(go()))
    assert _cosines(served, minilm_reference(TEXTS)).min() >= 0.9999


def test_dynamic_batching_merges_concurrent_requests(server):
    config = ClientConfig(server.grpc_url, "minilm")

    def counts() -> tuple[int, int]:
        with TextClient(config) as client:
            stats = {s["name"]: s for s in client.model_statistics()}
        return stats["minilm_model"]["inference_count"], stats["minilm_model"]["execution_count"]

    async def burst() -> None:
        async with AsyncTextClient(config) as client:
            await asyncio.gather(*(client.embed([s]) for s in SENTENCES[:64]))

    inferences0, executions0 = counts()
    asyncio.run(burst())
    inferences1, executions1 = counts()
    assert inferences1 - inferences0 == 64
    assert executions1 - executions0 < 64, "no two requests were batched together"


@pytest.mark.parametrize("deployment", ["dbert", "dtext"])  # dtext: --single-model, python-torch
def test_text_classification_matches_pytorch(server, tiny_models, deployment):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    texts = ["what a lovely day", "the server fell over again", SENTENCES[5]]
    with TextClient(ClientConfig(server.http_url, deployment, "http")) as client:
        results = client.classify(texts)
    tokenizer = AutoTokenizer.from_pretrained(tiny_models["distilbert"])
    model = AutoModelForSequenceClassification.from_pretrained(tiny_models["distilbert"]).eval()
    with torch.inference_mode():
        probs = torch.softmax(model(**tokenizer(texts, padding=True, return_tensors="pt")).logits, -1).numpy()
    np.testing.assert_allclose(np.stack([r.probs for r in results]), probs, atol=1e-5)
    assert [r.label for r in results] == [model.config.id2label[int(i)] for i in probs.argmax(1)]


def test_causal_lm_returns_last_real_token_logits(server, tiny_models):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    texts = ["def f(x):", "The quick brown fox jumps over the lazy dog and keeps running"]
    with TextClient(ClientConfig(server.grpc_url, "gpt2")) as client:
        logits = client.logits(texts)
    tokenizer = AutoTokenizer.from_pretrained(tiny_models["gpt2"])
    model = AutoModelForCausalLM.from_pretrained(tiny_models["gpt2"]).eval()
    for text, served in zip(texts, logits, strict=True):
        with torch.inference_mode():
            reference = model(**tokenizer([text], return_tensors="pt")).logits[0, -1].numpy()
        np.testing.assert_allclose(served, reference, atol=1e-4)


def _still_serving(server) -> None:
    with TextClient(ClientConfig(server.grpc_url, "minilm")) as client:
        assert client.embed(["still here"]).shape == (1, 384)


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        ([""], r"TEXT\[0\] is empty"),
        (["fine", "  \n\t "], r"TEXT\[1\] is empty or whitespace only"),
        ([b"caf\xc3"], r"TEXT\[0\] is not valid UTF-8"),
        ([b"\xff\xfe bad"], r"TEXT\[0\] is not valid UTF-8 \(byte 0xff at offset 0\)"),
        (["x" * 1_500_000], r"TEXT\[0\] has 1500000 bytes; the limit is 1000000"),
        (["ok"] * 33, r"batch-size must be <= 32"),
    ],
)
@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_bad_text_gets_a_clear_error_and_the_server_keeps_serving(server, protocol, texts, message):
    with (
        TextClient(ClientConfig(_url(server, protocol), "minilm", protocol)) as client,
        pytest.raises(ClientError, match=message),
    ):
        client.embed(texts)
    _still_serving(server)


def test_huge_text_is_truncated_not_rejected(server, minilm_reference):
    text = " ".join(SENTENCES)[:100_000]
    assert len(text) == 100_000
    with TextClient(ClientConfig(server.grpc_url, "minilm")) as client:
        served = client.embed([text])
    assert _cosines(served, minilm_reference([text]))[0] >= 0.9999


@pytest.mark.parametrize(
    ("deployment", "bad", "message"),
    [("minilm", "", "is empty"), ("mtext", b"caf\xc3", "not valid UTF-8")],  # mtext: --single-model
)
def test_one_bad_request_does_not_fail_its_neighbours(server, deployment, bad, message):
    async def go():
        async with AsyncTextClient(ClientConfig(server.grpc_url, deployment)) as client:
            return await asyncio.gather(
                *(client.embed([t]) for t in ["good one", bad, "good two"] * 4), return_exceptions=True
            )

    results = asyncio.run(go())
    assert [isinstance(r, ClientError) for r in results] == [False, True, False] * 4
    assert message in results[1].message


def test_wrong_input_name_and_dtype_are_rejected_by_triton(server):
    client = grpcclient.InferenceServerClient(server.grpc_url)
    wrong_name = grpcclient.InferInput("TXT", [1, 1], "BYTES")
    wrong_name.set_data_from_numpy(np.array([[b"hi"]], dtype=object))
    with pytest.raises(InferenceServerException, match="TXT"):
        client.infer("minilm", [wrong_name])
    wrong_dtype = grpcclient.InferInput("TEXT", [1, 1], "INT64")
    wrong_dtype.set_data_from_numpy(np.array([[7]], dtype=np.int64))
    with pytest.raises(InferenceServerException, match="(?i)data.?type|dtype|INT64"):
        client.infer("minilm", [wrong_dtype])
    http = httpclient.InferenceServerClient(server.http_url)
    wrong_shape = httpclient.InferInput("TEXT", [1, 2], "BYTES")
    wrong_shape.set_data_from_numpy(np.array([[b"a", b"b"]], dtype=object))
    with pytest.raises(InferenceServerException, match="(?i)shape"):
        http.infer("minilm", [wrong_shape])
    _still_serving(server)


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_unknown_model_and_unreachable_server(server, protocol):
    with (
        TextClient(ClientConfig(_url(server, protocol), "nope", protocol)) as client,
        pytest.raises(ClientError, match="nope"),
    ):
        client.embed(["hello"])
    from builder.serving.server import free_port

    with (
        TextClient(ClientConfig(f"127.0.0.1:{free_port()}", "minilm", protocol, timeout_s=5)) as client,
        pytest.raises(ClientError, match="cannot reach Triton"),
    ):
        client.embed(["hello"])
    _still_serving(server)


@pytest.mark.serves("python-torch")
def test_python_torch_engine_serves_the_same_embeddings(server, minilm_reference):
    with TextClient(ClientConfig(server.grpc_url, "mtorch")) as client:
        served = client.embed(TEXTS)
    assert _cosines(served, minilm_reference(TEXTS)).min() >= 0.9999


def test_single_model_serves_the_same_embeddings_in_one_step(server, served_repo, minilm_reference):
    assert not (served_repo / "mtext_tokenizer").exists() and not (served_repo / "mtext_post").exists()
    texts = [*TEXTS, " ".join(SENTENCES)[:100_000]]  # the last one is truncated to the model maximum
    with TextClient(ClientConfig(server.grpc_url, "mtext")) as client:
        served = client.embed(texts)
    assert _cosines(served, minilm_reference(texts)).min() >= 0.9999


def _settings_from_log(server) -> dict[str, dict[str, str]]:
    """Each stub's thread settings, as it printed them into the server log after applying them."""
    found = {}
    for line in server.log_path.read_text(errors="replace").splitlines():
        _, sep, tail = line.partition("tritonbuild: ")
        if sep and " instance " in tail:
            model, _, described = tail.partition(" instance ")
            found[model] = dict(item.split("=", 1) for item in described.split(": ", 1)[1].split())
    return found


def test_every_stub_sets_its_thread_pools_by_the_rule(server):
    import os

    cores = len(os.sched_getaffinity(0))
    settings = _settings_from_log(server)
    # CPU profile: two instances of models and tokenizers, which compute on the host and share its cores
    shared = max(1, cores // 2)
    for computing in ("minilm_model", "minilm_tokenizer", "mtorch_model", "dtext_model"):
        assert settings[computing]["instances"] == "2", (computing, settings[computing])
        assert settings[computing]["threads"] == str(shared), (computing, settings[computing])
    for light in ("minilm_post", "dbert_post", "gpt2_post"):
        assert settings[light]["threads"] == "1", (light, settings[light])
    # read back from torch inside the stub, after the rule was applied
    assert settings["mtorch_model"]["torch_threads"] == str(shared)
    assert settings["mtorch_model"]["torch_interop_threads"] == "1"
    parallel = "true" if shared > 1 else "false"
    assert settings["minilm_tokenizer"]["tokenizers_parallelism"] == parallel


@pytest.mark.parametrize("deployment", ["minilm", "mtorch", "mtext"])
def test_requests_of_one_shape_reuse_buffers_and_keep_their_own_answers(server, minilm_reference, deployment):
    # same bucket (32 tokens), different texts: consecutive and concurrent requests share output buffers
    batches = [SENTENCES[i : i + 3] for i in range(40, 64, 3)]
    with TextClient(ClientConfig(server.grpc_url, deployment)) as client:
        consecutive = [client.embed(batch) for batch in batches]

    async def concurrent() -> list[np.ndarray]:
        async with AsyncTextClient(ClientConfig(server.grpc_url, deployment)) as client:
            return await asyncio.gather(*(client.embed(batch) for batch in batches * 3))

    merged = asyncio.run(concurrent())
    for batch, answer in zip(batches * 4, consecutive + merged, strict=True):
        assert _cosines(answer, minilm_reference(batch)).min() >= 0.9999
