"""The timed path of an HTTP sweep: whole KServe v2 infer requests built once, sent over kept-alive connections.

tritonclient's aio HTTP client builds the JSON header, wraps every call in aiohttp and parses every response
into numpy in the one event-loop thread. On a 16-vCPU H200 host that thread capped a 64-client closed loop at
2,269–3,059 requests/s against perf_analyzer's 6,801–7,304 on the same server
(scripts/results/h200_2026-12-03/http_1108/): the sweep measured its own client. Here each distinct request is
an HTTP/1.1 message (the binary tensor extension, outputs asked for as binary) built before the load starts;
the timed path writes it on an idle connection, reads the status line, the headers and the body, and keeps
the connection for the next request. HTTP/1.1 answers one request per connection at a time, so a closed loop
of N clients holds N connections; an open loop that outruns the server holds at most MAX_CONNECTIONS (as
aiohttp's default pool did), and the requests beyond wait for one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from urllib.parse import quote

import numpy as np

from client.generators.raw_grpc import tensor_bytes
from client.transport.text_client import (
    _PROXY_ERRORS,
    ClientConfig,
    ClientError,
    RequestTimeout,
    proxy_error,
    unreachable,
)

_HEAD_LIMIT = 64 * 1024  # a response's status line and headers; Triton's are a few hundred bytes
MAX_CONNECTIONS = 100  # per sender: an overloaded open loop must not run the process out of file descriptors


def serialize_http_request(url: str, model: str, arrays: dict[str, np.ndarray]) -> bytes:
    """POST /v2/models/MODEL/infer for `arrays` (object arrays become BYTES) as the bytes sent on the wire."""
    inputs, raw = [], []
    for name, array in arrays.items():
        datatype, data = tensor_bytes(array)
        inputs.append({"name": name, "shape": list(array.shape), "datatype": datatype,
                       "parameters": {"binary_data_size": len(data)}})  # fmt: skip
        raw.append(data)
    header = json.dumps({"inputs": inputs, "parameters": {"binary_data_output": True}}).encode()
    body = header + b"".join(raw)
    head = (
        f"POST /v2/models/{quote(model, safe='')}/infer HTTP/1.1\r\nHost: {url}\r\n"
        f"Content-Type: application/octet-stream\r\nInference-Header-Content-Length: {len(header)}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class RawHttpSender:
    """Sends pre-built requests on a pool of kept-alive connections; raises ClientError like the typed client."""

    def __init__(self, config: ClientConfig, max_connections: int = MAX_CONNECTIONS) -> None:
        self.config = config
        self._slots = asyncio.Semaphore(max_connections)
        self._host, _, port = config.url.rpartition(":")
        self._port = int(port)
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._open: set[asyncio.StreamWriter] = set()

    async def send(self, request: bytes) -> bytes:
        """One request; returns the response body (its size is all a load test needs)."""
        try:
            return await asyncio.wait_for(self._exchange(request), self.config.timeout_s)
        except TimeoutError:
            raise RequestTimeout(f"{self.config.model}: no answer within {self.config.timeout_s:g} s") from None

    async def _exchange(self, request: bytes) -> bytes:
        async with self._slots:  # waiting for a connection counts against the timeout, as in aiohttp
            return await self._on_a_connection(request)

    async def _on_a_connection(self, request: bytes) -> bytes:
        reader, writer = self._idle.pop() if self._idle else await self._connect()
        try:
            writer.write(request)
            status, headers = parse_head(await reader.readuntil(b"\r\n\r\n"))
            body = await read_body(reader, headers)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError) as exc:
            self._discard(writer)
            raise ClientError(f"{self.config.model}: {self.config.url} closed the connection before answering") from exc
        except BaseException:  # cancelled (a timeout) half-way: what is left on the connection is unknown
            self._discard(writer)
            raise
        if headers.get("connection", "").lower() == "close":
            self._discard(writer)
        else:
            self._idle.append((reader, writer))
        if status != 200:
            raise http_error(self.config, status, body)
        return body

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            reader, writer = await asyncio.open_connection(self._host, self._port, limit=_HEAD_LIMIT)
        except OSError as exc:
            raise unreachable(self.config, exc) from exc
        self._open.add(writer)
        return reader, writer

    def _discard(self, writer: asyncio.StreamWriter) -> None:
        writer.close()
        self._open.discard(writer)

    async def close(self) -> None:
        """Close every connection."""
        self._idle.clear()
        for writer in list(self._open):
            self._discard(writer)
            with contextlib.suppress(OSError):
                await writer.wait_closed()


def parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    """The status code and the headers (names lower-cased) of a response's head."""
    status_line, *lines = head.decode("latin-1").split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ConnectionError(f"not an HTTP response: {status_line[:80]!r}")
    headers = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


async def read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    """The body after the head: Content-Length bytes, or chunks (a proxy may re-chunk a response)."""
    if headers.get("transfer-encoding", "").lower() != "chunked":
        return await reader.readexactly(int(headers.get("content-length", "0")))
    chunks = []
    while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)
    while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
        pass
    return b"".join(chunks)


def http_error(config: ClientConfig, status: int, body: bytes) -> ClientError:
    """A refused request as the typed client's error: a balancer's 502/503/504, or the server's message."""
    if str(status) in _PROXY_ERRORS:
        return proxy_error(config, str(status))
    try:
        message = str(json.loads(body)["error"])
    except (ValueError, KeyError, TypeError):
        message = f"HTTP {status}: {body[:200].decode(errors='replace')}"
    return ClientError(f"{config.model}: {message}")
