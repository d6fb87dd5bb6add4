"""Hostile requests against the real server: each fails alone, as INVALID_ARGUMENT / HTTP 400, briefly."""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as grpcaio
import tritonclient.http as httpclient
from hostile import HOSTILE, inputs, tokens
from tritonclient.utils import InferenceServerException

from builder.common.corpus import corpus_sentences
from builder.serving.server import TritonServer
from builder.serving.stubs import stubs_of
from client.transport.text_client import AsyncTextClient, ClientConfig

pytestmark = pytest.mark.slow

TEMPLATES = Path(__file__).parents[2] / "templates" / "python"
SENTENCES = corpus_sentences()


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_input_is_an_invalid_argument_with_a_short_message(server, case):
    model, arrays, message = HOSTILE[case]
    with pytest.raises(InferenceServerException) as grpc_error:
        grpcclient.InferenceServerClient(server.grpc_url).infer(model, inputs(grpcclient, arrays))
    assert grpc_error.value.status() == "StatusCode.INVALID_ARGUMENT", grpc_error.value
    with pytest.raises(InferenceServerException) as http_error:
        httpclient.InferenceServerClient(server.http_url).infer(model, inputs(httpclient, arrays))
    assert http_error.value.status() == "400", http_error.value
    for error in (grpc_error.value, http_error.value):
        text = error.message()
        assert message in text and len(text) < 200 and "Traceback" not in text and ".py" not in text, text


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_bad_text_through_the_ensemble_is_an_invalid_argument(server, protocol):
    module, url = (grpcclient, server.grpc_url) if protocol == "grpc" else (httpclient, server.http_url)
    with pytest.raises(InferenceServerException) as error:
        module.InferenceServerClient(url).infer("minilm", inputs(module, {"TEXT": np.array([[b""]], dtype=object)}))
    assert error.value.status() in ("StatusCode.INVALID_ARGUMENT", "400")
    assert "TEXT[0] is empty" in error.value.message()


def test_poisoned_members_do_not_fail_good_ensemble_requests(server):
    """Bad requests to every member model at full rate, good ensemble requests beside them: all good ones pass."""
    good_texts = [[f"good request number {i}"] for i in range(40)]  # 16-token bucket, like the token-id poison
    poison = [HOSTILE[c][:2] for c in HOSTILE if HOSTILE[c][0].startswith("minilm")]

    async def attacker(stop: asyncio.Event, counts: list[int]) -> None:
        client = grpcaio.InferenceServerClient(server.grpc_url)
        index = 0
        while not stop.is_set():
            model, arrays = poison[index % len(poison)]
            index += 1
            try:
                await client.infer(model, inputs(grpcaio, arrays))
            except InferenceServerException as exc:
                counts.append(exc.status() == "StatusCode.INVALID_ARGUMENT")
        await client.close()

    async def go() -> tuple[list, list[int]]:
        stop, refused = asyncio.Event(), []
        attackers = [asyncio.create_task(attacker(stop, refused)) for _ in range(6)]
        async with AsyncTextClient(ClientConfig(server.grpc_url, "minilm")) as client:
            results = []
            for _ in range(5):  # 200 good requests, 8 at a time
                batch = good_texts[:8], good_texts[8:16], good_texts[16:24], good_texts[24:32], good_texts[32:40]
                for texts in batch:
                    results += await asyncio.gather(*(client.embed(t) for t in texts), return_exceptions=True)
        stop.set()
        await asyncio.gather(*attackers)
        return results, refused

    results, refused = asyncio.run(go())
    failed = [r for r in results if isinstance(r, BaseException)]
    assert not failed, f"{len(failed)} of {len(results)} good requests failed: {failed[0]}"
    assert len(refused) > 100 and all(refused), "every bad request is refused as INVALID_ARGUMENT"


def test_bad_logits_merged_with_good_ones_fail_alone(server, served_repo):
    """The post step checks a merged batch once, and request by request only when it holds a bad value.

    Good and NaN logits at once to the classifier's post step: every good one gets the softmax and label of its
    own logits, every NaN one INVALID_ARGUMENT, and the server's counts show that batches were merged.
    """
    good = np.array([[0.0, 1.0, 2.0]], np.float32)
    bad = np.array([[np.nan, 0.0, 1.0]], np.float32)
    labels = json.loads((served_repo / "dbert_post" / "1" / "labels.json").read_text())

    async def one(client: grpcaio.InferenceServerClient, logits: np.ndarray) -> object:
        try:
            result = await client.infer("dbert_post", inputs(grpcaio, {"logits": logits}))
        except InferenceServerException as exc:
            return exc
        return result.as_numpy("PROBS"), result.as_numpy("LABEL")

    async def go() -> list:
        client = grpcaio.InferenceServerClient(server.grpc_url)
        results = await asyncio.gather(*(one(client, bad if i % 4 == 0 else good) for i in range(400)))
        await client.close()
        return results

    def counts() -> tuple[int, int]:
        stats = grpcclient.InferenceServerClient(server.grpc_url).get_inference_statistics("dbert_post", as_json=True)
        model = stats["model_stats"][0]
        return int(model.get("inference_count", 0)), int(model.get("execution_count", 0))

    before = counts()
    results = asyncio.run(go())
    inferred, executed = (b - a for a, b in zip(before, counts(), strict=True))
    expected = np.exp(good - good.max()) / np.exp(good - good.max()).sum()
    for index, result in enumerate(results):
        if index % 4 == 0:
            assert isinstance(result, InferenceServerException), result
            assert result.status() == "StatusCode.INVALID_ARGUMENT" and "NaN or infinite" in result.message()
        else:
            assert not isinstance(result, BaseException), result
            np.testing.assert_allclose(result[0], expected, rtol=1e-6)
            assert result[1].tolist() == [[labels[2].encode()]]
    assert inferred == 400 and executed < inferred, (inferred, executed)


RETRY_MODEL = """
import tritonbuild_backend as tb
import numpy as np

class TritonPythonModel:
    def initialize(self, args):
        self.limits = tb.TokenLimits(vocab_size=100, max_length=8)
        self.out = {}  # one buffer per length, reused by every call: as the Runner reuses its output buffers

    def run(self, ids, mask):
        if (ids == 13).any():  # a failure that no up-front check sees: the whole merged batch raises
            raise RuntimeError("unlucky number in the batch")
        out = self.out.setdefault(ids.shape[1], np.empty((16, ids.shape[1]), np.float32))[: ids.shape[0]]
        np.multiply(ids, 2, out=out, casting="unsafe")
        return out

    def execute(self, requests):
        groups, errors = tb.token_inputs(requests, self.limits)
        return tb.run_grouped("retry", groups, errors, self.run, lambda part: [tb.output_tensor("Y", part)])
"""
RETRY_CONFIG = """name: "retry"
backend: "python"
max_batch_size: 16
input { name: "input_ids" data_type: TYPE_INT64 dims: [ -1 ] }
input { name: "attention_mask" data_type: TYPE_INT64 dims: [ -1 ] }
output { name: "Y" data_type: TYPE_FP32 dims: [ -1 ] }
dynamic_batching { max_queue_delay_microseconds: 200000 }
instance_group { count: 1 kind: KIND_CPU }
"""


def test_a_failure_inside_a_merged_batch_is_retried_per_request(tmp_path):
    (tmp_path / "retry" / "1").mkdir(parents=True)
    (tmp_path / "retry" / "config.pbtxt").write_text(RETRY_CONFIG)
    (tmp_path / "retry" / "1" / "model.py").write_text(RETRY_MODEL)
    shutil.copy(TEMPLATES / "tritonbuild_backend.py", tmp_path / "retry" / "1")
    rows = [[1, 2, 3], [4, 5, 6], [7, 13, 9], [10, 11, 12], [20, 21, 22], [30, 31, 32]]

    async def go(url: str) -> list:
        client = grpcaio.InferenceServerClient(url)
        calls = [client.infer("retry", inputs(grpcaio, tokens([row]))) for row in rows]
        results = await asyncio.gather(*calls, return_exceptions=True)
        stats = await client.get_inference_statistics("retry", as_json=True)
        await client.close()
        return [results, stats]

    with TritonServer(tmp_path) as server:
        results, stats = asyncio.run(go(server.grpc_url))
        log = server.log_path.read_text(errors="replace")
    executions = int(stats["model_stats"][0]["execution_count"])
    assert executions < len(rows), "the requests were not merged into one batch: nothing tested"
    for row, result in zip(rows, results, strict=True):
        if 13 in row:
            assert isinstance(result, InferenceServerException) and result.status() == "StatusCode.INTERNAL"
            assert "retry failed on this request (RuntimeError)" in result.message()
            assert "Traceback" not in result.message() and "unlucky" not in result.message()
        else:
            assert not isinstance(result, BaseException), (row, result.message())
            assert result.as_numpy("Y").tolist() == [[2.0 * v for v in row]]
    assert "unlucky number in the batch" in log and "Traceback" in log  # the details stay in the server log


def _stub_rss(server, model: str) -> int:
    return sum(s.rss_bytes() for s in stubs_of(server.pid, server.repo) if s.model == model)


def test_a_maximal_request_neither_blocks_small_ones_nor_keeps_memory(server):
    """32 texts of ~1 MB (under every limit) beside small requests: small p99 stays low, the tokenizer stays lean."""
    megabyte = (" ".join(SENTENCES) * 3).encode()[:999_000]
    big = inputs(grpcclient, {"TEXT": np.array([[megabyte]] * 32, dtype=object)})
    small = inputs(grpcclient, {"TEXT": np.array([[b"a small request"]], dtype=object)})
    client = grpcclient.InferenceServerClient(server.grpc_url)
    client.infer("minilm", small)
    rss_before = _stub_rss(server, "minilm_tokenizer")
    done = threading.Event()

    def send_big() -> None:
        other = grpcclient.InferenceServerClient(server.grpc_url)
        for _ in range(2):
            other.infer("minilm", big, client_timeout=120)
        done.set()

    thread = threading.Thread(target=send_big)
    thread.start()
    latencies = []
    while not done.is_set():
        start = time.perf_counter()
        client.infer("minilm", small, client_timeout=60)
        latencies.append(time.perf_counter() - start)
        time.sleep(0.01)
    thread.join()
    p99 = float(np.percentile(latencies, 99))
    assert len(latencies) >= 50, latencies
    assert p99 < 0.5, f"small requests' p99 {p99 * 1000:.0f} ms while a maximal request ran (target 100 ms)"
    growth = _stub_rss(server, "minilm_tokenizer") - rss_before
    assert growth < 200e6, f"the tokenizer stubs kept {growth / 1e6:.0f} MB"
