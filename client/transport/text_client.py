"""A typed client for tritonbuild ensembles: texts in; embeddings, labels or logits out.

Sync and asyncio variants over gRPC and HTTP share the request building and result decoding.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import numpy as np
from tritonclient.utils import InferenceServerException

from builder.common.errors import UserError

PROTOCOLS = ("grpc", "http")
Text = str | bytes


class ClientError(UserError):
    """A request failed: the server said no, could not be reached, or timed out."""


class RequestTimeout(ClientError):
    """No answer came within the client's timeout: counted apart from other errors in a measurement."""


@dataclass(frozen=True)
class ClientConfig:
    """Where and how to reach one model."""

    url: str  # host:port
    model: str
    protocol: str = "grpc"
    timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ClientError(f"unknown protocol '{self.protocol}'", hint="use grpc or http")
        if self.timeout_s <= 0:
            raise ClientError("timeout must be positive")


@dataclass(frozen=True)
class Classification:
    """One text's predicted label and the probability of every label."""

    label: str
    probs: np.ndarray


def text_array(texts: Sequence[Text]) -> np.ndarray:
    """A [batch, 1] object array of UTF-8 bytes, the ensemble's TEXT input."""
    if isinstance(texts, str | bytes):
        raise ClientError("pass a list of texts, not a single string")
    if not texts:
        raise ClientError("no texts to send")
    return np.array([[t.encode() if isinstance(t, str) else t] for t in texts], dtype=object)


def _module(protocol: str, aio: bool) -> Any:
    if protocol == "grpc":
        import tritonclient.grpc as grpc_module
        import tritonclient.grpc.aio as grpc_aio

        return grpc_aio if aio else grpc_module
    import tritonclient.http as http_module
    import tritonclient.http.aio as http_aio

    return http_aio if aio else http_module


def build_inputs(module: Any, texts: Sequence[Text]) -> list[Any]:
    """The TEXT input for `texts`, for the given tritonclient module."""
    array = text_array(texts)
    tensor = module.InferInput("TEXT", list(array.shape), "BYTES")
    tensor.set_data_from_numpy(array)
    return [tensor]


def build_array_inputs(module: Any, arrays: dict[str, np.ndarray]) -> list[Any]:
    """Inputs for a bare model from named arrays (INT64 token ids and masks, for example)."""
    from tritonclient.utils import np_to_triton_dtype

    tensors = []
    for name, array in arrays.items():
        tensor = module.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
        tensor.set_data_from_numpy(array)
        tensors.append(tensor)
    return tensors


def decode_result(result: Any) -> dict[str, np.ndarray]:
    """Every output of a tritonclient result, by name."""
    response = result.get_response()
    names = (
        [o["name"] for o in response["outputs"]] if isinstance(response, dict) else [o.name for o in response.outputs]
    )
    return {name: result.as_numpy(name) for name in names}


# A gRPC call answered by a proxy's HTTP error instead of a server: grpc reports it as UNAVAILABLE with this.
_PROXY_STATUS = re.compile(r"http2 header with status: (5\d\d)")
_PROXY_ERRORS = ("502", "503", "504")


def proxy_error(config: ClientConfig, status: str) -> ClientError:
    """A balancer's own answer (502/503/504): it is up, but no replica took the request. Not `cannot reach`."""
    return ClientError(f"{config.model}: the balancer at {config.url} answered HTTP {status}: no replica took it")


def unreachable(config: ClientConfig, detail: object) -> ClientError:
    """No server at the URL: what ends a measurement (load.py's `_SERVER_GONE`)."""
    return ClientError(
        f"cannot reach Triton at {config.url} ({config.protocol}): {detail}",
        hint="is the server running? (tritonbuild serve)",
    )


def grpc_unavailable(config: ClientConfig, details: str) -> ClientError:
    """A gRPC UNAVAILABLE: a balancer's 5xx (the balancer is up), or a server that cannot be reached."""
    proxied = _PROXY_STATUS.search(details)
    return proxy_error(config, proxied.group(1)) if proxied else unreachable(config, details)


def _dropped(exc: BaseException) -> bool:
    """Whether aiohttp lost a connection it had (not one it could not open): closed or reset under a request.

    A balancer that reloads closes its idle client connections; a request sent at that moment meets this,
    as ServerDisconnectedError, or as a reset or failed write while sending its body (ClientOSError). A
    refused connection (ClientConnectorError, a ClientOSError too) means the server cannot be reached.

    aiohttp is loaded only by the HTTP aio client; what was never imported cannot have been raised.
    """
    aiohttp = sys.modules.get("aiohttp")
    if aiohttp is None or isinstance(exc, aiohttp.ClientConnectorError):
        return False
    return isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError | aiohttp.ClientConnectionResetError)


def _raised_by(protocol: str) -> tuple[type[Exception], ...]:
    """What a request of the aio client may raise: a server's refusal, OSError, and over HTTP aiohttp's errors."""
    if protocol == "http":
        import aiohttp

        return (InferenceServerException, OSError, aiohttp.ClientError)
    return (InferenceServerException, OSError)


def _error(config: ClientConfig, exc: Exception) -> ClientError:
    if isinstance(exc, InferenceServerException):
        text = exc.message() or str(exc)
        if str(exc.status()) in _PROXY_ERRORS:
            return proxy_error(config, str(exc.status()))
        if "StatusCode.UNAVAILABLE" in str(exc.status()):
            return grpc_unavailable(config, text)
        if "failed to connect" in text.lower():
            return unreachable(config, text)
        if "DEADLINE_EXCEEDED" in str(exc.status()) or "Deadline" in text:
            return RequestTimeout(f"{config.model}: no answer within {config.timeout_s:g} s")
        return ClientError(f"{config.model}: {text}")
    if isinstance(exc, TimeoutError):
        return RequestTimeout(f"{config.model}: no answer within {config.timeout_s:g} s")
    if _dropped(exc):
        return ClientError(f"{config.model}: {config.url} closed the connection before answering")
    return unreachable(config, exc)


def classifications(outputs: dict[str, np.ndarray]) -> list[Classification]:
    """LABEL/PROBS outputs as one Classification per text."""
    return [
        Classification(label.decode() if isinstance(label, bytes) else str(label), probs)
        for label, probs in zip(outputs["LABEL"].reshape(-1), outputs["PROBS"], strict=True)
    ]


class TextClient:
    """Blocking client; use as a context manager or call close()."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self._module = _module(config.protocol, aio=False)
        if config.protocol == "http":
            self._client = self._module.InferenceServerClient(
                config.url, connection_timeout=config.timeout_s, network_timeout=config.timeout_s
            )
        else:
            self._client = self._module.InferenceServerClient(config.url)
        # every call's deadline: gRPC calls have none unless given one; HTTP's are bounded by network_timeout
        self._deadline = {"client_timeout": config.timeout_s} if config.protocol == "grpc" else {}

    def infer(self, texts: Sequence[Text]) -> dict[str, np.ndarray]:
        """Send `texts` as one request; every output by name."""
        inputs = build_inputs(self._module, texts)
        try:
            return decode_result(self._client.infer(self.config.model, inputs, **self._deadline))
        except (InferenceServerException, OSError) as exc:
            raise _error(self.config, exc) from exc

    def embed(self, texts: Sequence[Text]) -> np.ndarray:
        """L2-normalised sentence embeddings, [len(texts), hidden]."""
        return self.infer(texts)["EMBEDDING"]

    def classify(self, texts: Sequence[Text]) -> list[Classification]:
        """Label and label probabilities per text."""
        return classifications(self.infer(texts))

    def logits(self, texts: Sequence[Text]) -> np.ndarray:
        """Next-token logits after each text's last token, [len(texts), vocab]."""
        return self.infer(texts)["LOGITS"]

    def model_statistics(self) -> list[dict[str, Any]]:
        """Per-model counters from the statistics extension: name, inference_count, execution_count."""
        try:
            stats: Any = self._client.get_inference_statistics(**self._deadline)
        except (InferenceServerException, OSError) as exc:
            raise _error(self.config, exc) from exc
        if isinstance(stats, dict):
            return [
                {
                    "name": s["name"],
                    "inference_count": int(s.get("inference_count", 0)),
                    "execution_count": int(s.get("execution_count", 0)),
                }
                for s in stats["model_stats"]
            ]
        return [
            {"name": s.name, "inference_count": s.inference_count, "execution_count": s.execution_count}
            for s in stats.model_stats
        ]

    def close(self) -> None:
        """Release the connection."""
        self._client.close()

    def __enter__(self) -> TextClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncTextClient:
    """asyncio client; use as an async context manager or await close()."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self._module = _module(config.protocol, aio=True)
        if config.protocol == "http":
            self._client = self._module.InferenceServerClient(config.url, conn_timeout=config.timeout_s)
        else:
            self._client = self._module.InferenceServerClient(config.url)
        self._raised = _raised_by(config.protocol)

    async def infer_inputs(self, inputs: list[Any]) -> dict[str, np.ndarray]:
        """Send prepared inputs (see build_inputs), so load generators keep encoding off the timed path."""
        extra = (
            {"client_timeout": self.config.timeout_s}
            if self.config.protocol == "grpc"
            else {"timeout": int(self.config.timeout_s * 1e6)}
        )
        try:
            return decode_result(await self._client.infer(self.config.model, inputs, **extra))
        except self._raised as exc:
            raise _error(self.config, exc) from exc

    def prepare(self, texts: Sequence[Text]) -> list[Any]:
        """Build the request inputs for `texts`."""
        return build_inputs(self._module, texts)

    def prepare_arrays(self, arrays: dict[str, np.ndarray]) -> list[Any]:
        """Build request inputs from named arrays, for bare models."""
        return build_array_inputs(self._module, arrays)

    async def _call(self, method: str, *args: Any) -> Any:
        # gRPC calls have no deadline unless given one; HTTP's session is bounded by conn_timeout
        extra = {"as_json": True, "client_timeout": self.config.timeout_s} if self.config.protocol == "grpc" else {}
        try:
            return await getattr(self._client, method)(*args, **extra)
        except self._raised as exc:
            raise _error(self.config, exc) from exc

    async def statistics(self) -> dict[str, Any]:
        """The statistics extension's report for every model, as JSON-style dicts."""
        return dict(await self._call("get_inference_statistics"))

    async def model_config(self, name: str) -> dict[str, Any]:
        """A model's configuration as a JSON-style dict (without gRPC's wrapper)."""
        config = dict(await self._call("get_model_config", name))
        return dict(config.get("config", config))

    async def infer(self, texts: Sequence[Text]) -> dict[str, np.ndarray]:
        """Send `texts` as one request; every output by name."""
        return await self.infer_inputs(self.prepare(texts))

    async def embed(self, texts: Sequence[Text]) -> np.ndarray:
        """L2-normalised sentence embeddings."""
        return (await self.infer(texts))["EMBEDDING"]

    async def classify(self, texts: Sequence[Text]) -> list[Classification]:
        """Label and label probabilities per text."""
        return classifications(await self.infer(texts))

    async def logits(self, texts: Sequence[Text]) -> np.ndarray:
        """Next-token logits after each text's last token."""
        return (await self.infer(texts))["LOGITS"]

    async def close(self) -> None:
        """Release the connection."""
        await self._client.close()

    async def __aenter__(self) -> AsyncTextClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
