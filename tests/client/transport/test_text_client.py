import numpy as np
import pytest

from builder.common.corpus import corpus_sentences, sample_texts
from client.transport.text_client import ClientConfig, ClientError, text_array


def test_text_array_shape_and_encoding():
    array = text_array(["héllo", b"\xff raw"])
    assert array.shape == (2, 1) and array.dtype == object
    assert array[0, 0] == "héllo".encode() and array[1, 0] == b"\xff raw"


def test_text_array_rejects_a_bare_string_and_nothing():
    with pytest.raises(ClientError, match="list of texts"):
        text_array("hello")
    with pytest.raises(ClientError, match="no texts"):
        text_array([])


def test_config_validation():
    with pytest.raises(ClientError, match="unknown protocol"):
        ClientConfig("127.0.0.1:1", "m", protocol="smtp")
    with pytest.raises(ClientError, match="timeout"):
        ClientConfig("127.0.0.1:1", "m", timeout_s=0)


def test_corpus_is_real_english_and_sampling_is_reproducible():
    import random

    sentences = corpus_sentences()
    assert len(sentences) > 1000 and all(20 <= len(s) <= 300 for s in sentences)
    assert sum(" the " in s for s in sentences) > len(sentences) / 4
    assert sample_texts(5, random.Random(1)) == sample_texts(5, random.Random(1))
    assert np.unique(sample_texts(50, random.Random(2))).size > 40


@pytest.mark.parametrize(
    "lost",
    [
        lambda aiohttp: aiohttp.ServerDisconnectedError(),
        lambda aiohttp: aiohttp.ClientOSError(
            None, "Can not write request body for http://127.0.0.1:1/v2/models/m/infer"
        ),
        lambda aiohttp: aiohttp.ClientConnectionResetError("Cannot write to closing transport"),
    ],
)
def test_a_connection_lost_under_a_request_is_an_error_not_an_unreachable_server(lost):
    import aiohttp

    from client.transport.text_client import _error

    error = _error(ClientConfig("127.0.0.1:1", "m", "http"), lost(aiohttp))
    assert "closed the connection before answering" in error.message and "cannot reach" not in error.message


def test_a_refused_connection_is_an_unreachable_server():
    import aiohttp
    from aiohttp.client_reqrep import ConnectionKey

    from client.transport.text_client import _error

    key = ConnectionKey("127.0.0.1", 1, False, True, None, None, None)
    refused = aiohttp.ClientConnectorError(key, ConnectionRefusedError(111, "Connection refused"))
    assert "cannot reach" in _error(ClientConfig("127.0.0.1:1", "m", "http"), refused).message


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_statistics_from_a_server_that_never_answers_end_at_the_timeout(silent_url, protocol):
    import asyncio
    import time

    from client.transport.text_client import AsyncTextClient, TextClient

    config = ClientConfig(silent_url, "m", protocol, timeout_s=1)

    async def statistics() -> None:
        client = AsyncTextClient(config)
        try:
            await client.statistics()
        finally:
            await client.close()

    began = time.monotonic()
    with pytest.raises(ClientError):
        asyncio.run(statistics())
    with pytest.raises(ClientError), TextClient(config) as client:
        client.model_statistics()
    # two calls of a 1 s timeout; without a deadline gRPC gives up here only at its 20 s handshake timeout,
    # and never on a server that took the call and hangs
    assert time.monotonic() - began < 6
