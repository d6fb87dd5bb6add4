"""The HTTP sweep's timed path: requests built once, answered by the real server over kept-alive connections."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
from tritonclient.utils import deserialize_bytes_tensor

from builder.serving.server import free_port
from client.generators.raw_http import RawHttpSender, parse_head, read_body, serialize_http_request
from client.transport.text_client import ClientConfig, ClientError, TextClient, text_array


def split(message: bytes) -> tuple[str, dict[str, str], dict, bytes]:
    """(request line, headers, JSON header, binary part) of a built request."""
    head, _, body = message.partition(b"\r\n\r\n")
    line, *rest = head.decode().split("\r\n")
    headers = dict(h.split(": ", 1) for h in rest)
    size = int(headers["Inference-Header-Content-Length"])
    assert int(headers["Content-Length"]) == len(body)
    return line, headers, json.loads(body[:size]), body[size:]


def test_a_text_request_is_one_http_message_with_binary_inputs_and_asks_for_binary_outputs():
    line, headers, header, binary = split(
        serialize_http_request("127.0.0.1:8000", "m/x", {"TEXT": text_array(["héllo", "w"])})
    )
    assert line == "POST /v2/models/m%2Fx/infer HTTP/1.1" and headers["Host"] == "127.0.0.1:8000"
    assert header["parameters"] == {"binary_data_output": True}
    (tensor,) = header["inputs"]
    assert (tensor["name"], tensor["datatype"], tensor["shape"]) == ("TEXT", "BYTES", [2, 1])
    assert tensor["parameters"]["binary_data_size"] == len(binary)
    assert deserialize_bytes_tensor(binary).tolist() == ["héllo".encode(), b"w"]


def test_token_arrays_follow_each_other_in_the_binary_part():
    ids = np.arange(6, dtype=np.int64).reshape(2, 3)
    _, _, header, binary = split(
        serialize_http_request("h:1", "m_model", {"input_ids": ids, "attention_mask": ids * 0})
    )
    assert [(t["name"], t["datatype"], t["shape"], t["parameters"]["binary_data_size"]) for t in header["inputs"]] == [
        ("input_ids", "INT64", [2, 3], 48),
        ("attention_mask", "INT64", [2, 3], 48),
    ]
    assert np.frombuffer(binary, dtype=np.int64).tolist() == [*range(6), *[0] * 6]


def test_response_heads_and_chunked_bodies_are_read():
    status, headers = parse_head(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 7\r\nConnection: close\r\n\r\n")
    assert status == 400 and headers == {"content-length": "7", "connection": "close"}
    with pytest.raises(ConnectionError, match="not an HTTP response"):
        parse_head(b"SSH-2.0-OpenSSH\r\n\r\n")

    async def chunked() -> tuple[bytes, bytes]:
        reader = asyncio.StreamReader()
        reader.feed_data(b"5\r\nhello\r\n3;x=1\r\n wo\r\n0\r\nTrailer: t\r\n\r\nnext")
        body = await read_body(reader, {"transfer-encoding": "chunked"})
        return body, await reader.readexactly(4)

    assert asyncio.run(chunked()) == (b"hello wo", b"next")  # and nothing of the next response was read


def outputs(body: bytes) -> tuple[dict, bytes]:
    """The JSON header of a response body (its outputs' names and sizes) and the binary part after it."""
    header, end = json.JSONDecoder().raw_decode(body.decode("latin-1"))
    return header, body[end:]


def test_the_server_answers_with_the_embedding_the_typed_client_gets(server):
    texts = ["a sentence to embed", "and another one"]
    with TextClient(ClientConfig(server.grpc_url, "minilm")) as client:
        expected = client.embed(texts)

    async def go() -> tuple[list[bytes], int]:
        sender = RawHttpSender(ClientConfig(server.http_url, "minilm", "http"))
        message = serialize_http_request(server.http_url, "minilm", {"TEXT": text_array(texts)})
        bodies = [await sender.send(message) for _ in range(3)]
        connections = len(sender._open)
        await sender.close()
        return bodies, connections

    bodies, connections = asyncio.run(go())
    assert connections == 1, "sequential requests should reuse one kept-alive connection"
    for body in bodies:
        header, binary = outputs(body)
        (output,) = header["outputs"]
        assert output["name"] == "EMBEDDING" and output["shape"] == [2, expected.shape[1]]
        served = np.frombuffer(binary, dtype=np.float32).reshape(output["shape"])
        np.testing.assert_allclose(served, expected, atol=1e-6)


def test_concurrent_requests_each_get_a_connection_and_refusals_arrive_as_client_errors(server):
    async def go() -> tuple[list, int]:
        sender = RawHttpSender(ClientConfig(server.http_url, "minilm", "http"))
        good = serialize_http_request(server.http_url, "minilm", {"TEXT": text_array(["fine"])})
        empty = serialize_http_request(server.http_url, "minilm", {"TEXT": text_array([""])})
        unknown = serialize_http_request(server.http_url, "nope", {"TEXT": text_array(["fine"])})
        results = await asyncio.gather(
            *(sender.send(m) for m in [good, empty, good, unknown] * 2), return_exceptions=True
        )
        after = await sender.send(good)  # a refusal leaves its connection usable
        connections = len(sender._open)
        await sender.close()
        return [*results, after], connections

    results, connections = asyncio.run(go())
    assert [type(r).__name__ for r in results] == ["bytes", "ClientError", "bytes", "ClientError"] * 2 + ["bytes"]
    assert "TEXT[0] is empty" in results[1].message and "'nope' is not found" in results[3].message
    assert connections == 8


def test_an_open_loop_that_outruns_the_server_waits_for_a_connection_instead_of_opening_more(server):
    async def go() -> tuple[list, int]:
        sender = RawHttpSender(ClientConfig(server.http_url, "minilm", "http"), max_connections=2)
        message = serialize_http_request(server.http_url, "minilm", {"TEXT": text_array(["fine"])})
        results = await asyncio.gather(*(sender.send(message) for _ in range(8)), return_exceptions=True)
        connections = len(sender._open)
        await sender.close()
        return results, connections

    results, connections = asyncio.run(go())
    assert all(isinstance(r, bytes) for r in results), results
    assert connections == 2


def test_a_server_that_is_not_there_cannot_be_reached():
    async def go() -> None:
        sender = RawHttpSender(ClientConfig(f"127.0.0.1:{free_port()}", "m", "http", timeout_s=5))
        try:
            await sender.send(serialize_http_request("x", "m", {"TEXT": text_array(["a"])}))
        finally:
            await sender.close()

    with pytest.raises(ClientError, match="cannot reach Triton"):
        asyncio.run(go())
