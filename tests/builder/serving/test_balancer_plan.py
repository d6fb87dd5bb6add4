"""The balancer as data: replica ports, upstream lists with readiness, and the settings nginx gets."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from builder.common.errors import ServerError
from builder.serving.balancer_plan import BalancerSettings, ReplicaPorts, plan_nginx, plan_ports

REPLICAS = (ReplicaPorts(9000, 9001, 9002), ReplicaPorts(9010, 9011, 9012), ReplicaPorts(9020, 9021, 9022))


def test_ports_are_distinct_and_avoid_the_balancers_even_when_the_source_repeats_itself():
    source = iter([8000, 7001, 7001, 7002, 8001, 7003, 7004, 7005, 7006])  # 8000/8001: the balancer's
    ports = plan_ports(2, {8000, 8001}, lambda: next(source))
    assert ports == (ReplicaPorts(7001, 7002, 7003), ReplicaPorts(7004, 7005, 7006))


def test_a_port_source_that_keeps_repeating_is_an_error_not_a_loop():
    with pytest.raises(ServerError, match="found only 1 free ports for 2 replicas"):
        plan_ports(2, (), itertools.repeat(7001).__next__)
    with pytest.raises(ServerError, match="at least 1"):
        plan_ports(0, (), itertools.count(7000).__next__)


def test_replicas_that_are_not_ready_are_listed_down_on_both_frontends():
    config = plan_nginx(Path("/run/x"), 8000, 8001, REPLICAS, ready={0, 2}, generation=7)
    http, grpc = config.frontends
    assert (http.protocol, http.port, grpc.protocol, grpc.port) == ("http", 8000, "grpc", 8001)
    assert [(s.address, s.down) for s in http.servers] == [
        ("127.0.0.1:9000", False),
        ("127.0.0.1:9010", True),
        ("127.0.0.1:9020", False),
    ]
    assert [s.address for s in grpc.servers if not s.down] == ["127.0.0.1:9001", "127.0.0.1:9021"]
    assert grpc.replicas == "127.0.0.1:9001,127.0.0.1:9011,127.0.0.1:9021"  # every replica, ready or not
    assert config.generation == 7 and config.settings == BalancerSettings()


def test_no_replica_ready_still_makes_a_valid_upstream_of_down_servers():
    config = plan_nginx(Path("/run/x"), 8000, 8001, REPLICAS, ready=set(), generation=1)
    assert all(s.down for f in config.frontends for s in f.servers) and all(f.servers for f in config.frontends)


def test_inference_is_retried_on_the_next_replica_including_posts():
    http, grpc = plan_nginx(Path("/run/x"), 8000, 8001, REPLICAS, {0}, 1).frontends
    assert {"error", "timeout", "non_idempotent"} <= set(http.retry_on) & set(grpc.retry_on)
    assert "http_502" in http.retry_on and not any(c.startswith("http_") for c in grpc.retry_on)


def test_impossible_inputs_are_refused():
    with pytest.raises(ServerError, match="are not all among the 3 replicas"):
        plan_nginx(Path("/run/x"), 8000, 8001, REPLICAS, ready={3}, generation=1)
    with pytest.raises(ServerError, match="at least one replica"):
        plan_nginx(Path("/run/x"), 8000, 8001, (), ready=set(), generation=1)
    with pytest.raises(ServerError, match="must be positive"):
        BalancerSettings(keepalive=0)
