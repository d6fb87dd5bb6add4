"""The timed path of a gRPC sweep: pre-serialized ModelInfer requests sent as bytes.

tritonclient's aio client builds and serializes a protobuf on every call; on a small machine that
shares its cores with the server, that work lowers the throughput measured. Serializing each
distinct request once, before the load starts, leaves nothing but the RPC on the timed path.
`RawGrpcSender` sends on a grpc.aio channel; `BlockingGrpcSender` on a synchronous one, for a closed loop
of a few threads, where each call waits in its own thread instead of handing the answer to the event loop.
"""

from __future__ import annotations

import grpc
import numpy as np
from tritonclient.grpc import service_pb2
from tritonclient.utils import np_to_triton_dtype, serialize_byte_tensor

from client.transport.text_client import ClientConfig, ClientError, RequestTimeout, grpc_unavailable

_METHOD = "/inference.GRPCInferenceService/ModelInfer"
_UNLIMITED = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]


def tensor_bytes(array: np.ndarray) -> tuple[str, bytes]:
    """An input's Triton datatype and raw contents, as both protocols send them (object arrays become BYTES)."""
    if array.dtype == object:  # length-prefixed strings, as one bytes item
        return "BYTES", serialize_byte_tensor(array).item()
    return np_to_triton_dtype(array.dtype), np.ascontiguousarray(array).tobytes()


def serialize_request(model: str, arrays: dict[str, np.ndarray]) -> bytes:
    """A ModelInferRequest for `arrays` (object arrays become BYTES), as wire bytes."""
    request = service_pb2.ModelInferRequest(model_name=model)
    for name, array in arrays.items():
        tensor = request.inputs.add()
        tensor.name = name
        tensor.datatype, data = tensor_bytes(array)
        tensor.shape.extend(array.shape)
        request.raw_input_contents.append(data)
    return request.SerializeToString()


class RawGrpcSender:
    """Sends pre-serialized requests; raises ClientError like the typed client does."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self._channel = grpc.aio.insecure_channel(config.url, options=_UNLIMITED)
        self._call = self._channel.unary_unary(_METHOD)  # no serializers: bytes in, bytes out

    async def send(self, request: bytes) -> bytes:
        """One RPC; the response stays serialized (its size is all a load test needs)."""
        try:
            return bytes(await self._call(request, timeout=self.config.timeout_s))
        except grpc.aio.AioRpcError as exc:
            raise rpc_error(self.config, exc.code(), exc.details() or "") from exc

    async def close(self) -> None:
        """Close the channel."""
        await self._channel.close()


class BlockingGrpcSender:
    """Sends pre-serialized requests on a synchronous channel, from any thread; raises ClientError likewise."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self._channel = grpc.insecure_channel(config.url, options=_UNLIMITED)
        self._call = self._channel.unary_unary(_METHOD)

    def send(self, request: bytes) -> bytes:
        """One RPC, blocking this thread (not the others: the call releases the GIL while it waits)."""
        try:
            return bytes(self._call(request, timeout=self.config.timeout_s))
        except grpc.RpcError as exc:
            raise rpc_error(self.config, exc.code(), exc.details() or "") from exc  # type: ignore[attr-defined]

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()


def rpc_error(config: ClientConfig, code: grpc.StatusCode, details: str) -> ClientError:
    """A failed RPC as the error the typed client raises: unreachable, timed out, or the server's message."""
    if code == grpc.StatusCode.UNAVAILABLE:
        return grpc_unavailable(config, details)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return RequestTimeout(f"{config.model}: no answer within {config.timeout_s:g} s")
    return ClientError(f"{config.model}: {details}")
