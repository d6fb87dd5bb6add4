"""Where a sweep's requests go and whose statistics it reads; a real nginx balancer announces its replicas."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from balancers import idle_balancer

from builder.serving.server import free_port
from client.generators.raw_grpc import RawGrpcSender, serialize_request
from client.transport.replicas import Endpoints, announced_replicas, endpoints_of, parse_replicas
from client.transport.text_client import AsyncTextClient, ClientConfig, ClientError


def test_a_balancer_is_replaced_by_its_replicas_for_statistics_only():
    endpoints = endpoints_of(["lb:8001", "plain:8001"], {"lb:8001": ("r0:1", "r1:1"), "plain:8001": ()})
    assert endpoints == Endpoints(("lb:8001", "plain:8001"), ("r0:1", "r1:1", "plain:8001"))
    assert endpoints.several and not Endpoints.single("plain:8001").several
    assert endpoints_of(["lb:8001"], {"lb:8001": ("r0:1",)}).several  # one URL, but not the server it names


def test_the_header_value_is_a_list_of_host_ports():
    assert parse_replicas(" 127.0.0.1:1, 127.0.0.1:2 ,") == ("127.0.0.1:1", "127.0.0.1:2")
    assert parse_replicas(None) == () == parse_replicas("")


@pytest.fixture
def balancer(tmp_path):
    with idle_balancer(tmp_path) as ports:
        yield ports


def test_a_balancer_names_its_replicas_over_http(balancer):
    http_port, _, replicas = balancer
    found = announced_replicas(ClientConfig(f"127.0.0.1:{http_port}", "m", "http", timeout_s=5))
    assert found == tuple(r.address("http") for r in replicas)


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_a_balancer_without_a_live_replica_is_up_not_unreachable(balancer, protocol):
    http_port, grpc_port, _ = balancer
    config = ClientConfig(f"127.0.0.1:{grpc_port if protocol == 'grpc' else http_port}", "m", protocol, 5)
    text = {"TEXT": np.array([[b"hi"]], dtype=object)}

    async def send() -> None:
        if protocol == "grpc":
            sender = RawGrpcSender(config)
            try:
                await sender.send(serialize_request("m", text))
            finally:
                await sender.close()
        else:
            async with AsyncTextClient(config) as client:
                await client.infer_inputs(client.prepare_arrays(text))

    with pytest.raises(ClientError) as error:
        asyncio.run(send())
    assert "answered HTTP 502: no replica took it" in error.value.message
    assert "cannot reach" not in error.value.message  # what would end a measurement (load.py)


def test_over_grpc_a_balancer_without_a_live_replica_says_so(balancer):
    _, grpc_port, _ = balancer
    with pytest.raises(ClientError, match="answered HTTP 502: no replica took it"):
        announced_replicas(ClientConfig(f"127.0.0.1:{grpc_port}", "m", "grpc", timeout_s=5))


def test_a_url_nothing_listens_on_cannot_be_reached():
    with pytest.raises(ClientError, match="cannot reach Triton"):
        announced_replicas(ClientConfig(f"127.0.0.1:{free_port()}", "m", "http", timeout_s=2))
