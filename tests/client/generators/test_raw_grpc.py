import numpy as np
from tritonclient.grpc import service_pb2
from tritonclient.utils import deserialize_bytes_tensor

from client.generators.raw_grpc import serialize_request
from client.transport.text_client import text_array


def test_text_request_round_trips_through_the_protobuf():
    wire = serialize_request("m", {"TEXT": text_array(["héllo", "world"])})
    request = service_pb2.ModelInferRequest.FromString(wire)
    assert request.model_name == "m" and request.inputs[0].name == "TEXT"
    assert request.inputs[0].datatype == "BYTES" and list(request.inputs[0].shape) == [2, 1]
    assert deserialize_bytes_tensor(request.raw_input_contents[0]).tolist() == ["héllo".encode(), b"world"]


def test_token_request_carries_int64_arrays():
    ids = np.arange(6, dtype=np.int64).reshape(2, 3)
    wire = serialize_request("m_model", {"input_ids": ids, "attention_mask": np.ones_like(ids)})
    request = service_pb2.ModelInferRequest.FromString(wire)
    assert [(t.name, t.datatype, list(t.shape)) for t in request.inputs] == [
        ("input_ids", "INT64", [2, 3]),
        ("attention_mask", "INT64", [2, 3]),
    ]
    assert np.frombuffer(request.raw_input_contents[0], dtype=np.int64).tolist() == list(range(6))
