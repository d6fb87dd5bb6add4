"""ReplicaSet's errors a user can fix: refused before any server starts, or every failed replica named."""

from __future__ import annotations

import os
import socket

import pytest
from double_model import write_double
from pollers import no_pollers_within, pollers_on_host

from builder.common.errors import ServerError
from builder.serving.cpu_latency import PM_QOS_DEVICE, current_limit_us
from builder.serving.replicas import ReplicaSet


def test_a_busy_balancer_port_is_refused_before_any_server_starts(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        replicas = ReplicaSet(write_double(tmp_path), 2, http_port=busy)
        with pytest.raises(ServerError, match=f"the http port {busy} is in use"), replicas:
            pass
    assert all(r.server is None for r in replicas.replicas)


@pytest.mark.slow
def test_replicas_that_fail_to_start_are_all_named_and_nothing_is_left_running(tmp_path):
    replicas = ReplicaSet(write_double(tmp_path / "repo", init="raise RuntimeError('weights are missing')"), 2)
    with pytest.raises(ServerError, match="2 of 2 replicas failed to start") as error, replicas:
        pass
    assert str(error.value).count("weights are missing") >= 2 and "replica 0" in str(error.value)
    for replica in replicas.replicas:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", replica.ports.http), timeout=2)
    with pytest.raises(ServerError, match="not running"):
        replicas.nginx  # noqa: B018 - never started


@pytest.mark.slow
@pytest.mark.skipif(not os.access(PM_QOS_DEVICE, os.W_OK), reason=f"{PM_QOS_DEVICE} is not writable here")
def test_the_set_holds_one_cpu_latency_limit_for_its_replicas_and_nginx(tmp_path):
    before = current_limit_us()
    with ReplicaSet(write_double(tmp_path), 2, cpu_latency_us=0) as replicas:
        assert current_limit_us() == 0 and replicas.nginx.running()
        replicas.replicas[0].server.stop()  # one replica gone: the set still holds it
        assert current_limit_us() == 0
    assert current_limit_us() == before


@pytest.mark.slow
def test_the_set_runs_one_poller_per_cpu_for_all_its_replicas_and_stops_them_with_it(tmp_path):
    with ReplicaSet(write_double(tmp_path), 2, idle_poll=True) as replicas:
        assert replicas.nginx.running()
        assert len(pollers_on_host()) == len(os.sched_getaffinity(0))  # one set, not one per replica
    assert no_pollers_within()
