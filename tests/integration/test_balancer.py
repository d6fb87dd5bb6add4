"""Faults behind the balancer: real tritonservers serving the bundled MiniLM, a real nginx, real sockets.

A replica killed under load is routed around while a sweep runs; a replica that is not ready gets no
request; a rolling restart of every replica loses no request that a client retries.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from builder.repository.pipeline import make_repo
from builder.serving.replicas import Replica, ReplicaSet
from builder.serving.server import is_ready
from client.generators.measure import MeasurementConfig
from client.records import ResultStore
from client.sweep import SweepConfig, run_sweep
from client.transport.text_client import AsyncTextClient, ClientConfig, ClientError, TextClient

pytestmark = pytest.mark.slow

GATE = """
import os, sys, time
if os.environ.get("TRITONBUILD_SITE_PACKAGES"):
    sys.path[:0] = os.environ["TRITONBUILD_SITE_PACKAGES"].split(os.pathsep)
import triton_python_backend_utils as pb_utils

class TritonPythonModel:
    def initialize(self, args):
        while not os.path.exists({release!r}):  # loading, so the server is not ready, until the test says
            time.sleep(0.05)

    def execute(self, requests):
        return [pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(
            "Y", pb_utils.get_input_tensor_by_name(r, "X").as_numpy())]) for r in requests]
"""
GATE_CONFIG = """name: "gate"
backend: "python"
max_batch_size: 1
input { name: "X" data_type: TYPE_FP32 dims: [ 1 ] }
output { name: "Y" data_type: TYPE_FP32 dims: [ 1 ] }
"""


@pytest.fixture(scope="module")
def minilm_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("balanced") / "repo"
    make_repo("minilm", "feature-extraction", "minilm", "python-onnxruntime", "cpu", repo, force=False,
              trust_remote_code=False, echo=lambda _: None)  # fmt: skip
    return repo


def _served(replica: Replica) -> int:
    """How many requests the replica's current server has answered (its own statistics)."""
    with TextClient(ClientConfig(replica.grpc_url, "minilm", timeout_s=10)) as client:
        return next(s["inference_count"] for s in client.model_statistics() if s["name"] == "minilm_model")


def _until(condition, what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout_s:.0f} s: {what}"
        time.sleep(0.05)


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_a_replica_killed_mid_sweep_is_routed_around_and_the_sweep_finishes(minilm_repo, tmp_path, protocol):
    events: list[str] = []
    with ReplicaSet(minilm_repo, 2, report=events.append) as replicas:
        survivor, victim = replicas.replicas
        url = replicas.grpc_url if protocol == "grpc" else replicas.http_url
        config = SweepConfig(
            ClientConfig(url, "minilm", protocol, timeout_s=10),  # a request that hangs would count as a timeout
            batch_sizes=(1,),
            seq_lens=(16,),
            concurrency=(4,),
            measurement=MeasurementConfig(window_s=2.0, stable_windows=3, max_trials=6, warmup_s=1.0),
        )
        killed: list[int] = []

        def kill_when_busy() -> None:  # past the warm-up: the victim has answered a share of the load
            _until(lambda: _served(victim) >= 100, "the victim served 100 requests")
            killed.append(_served(survivor))
            assert victim.server is not None and victim.server.pid is not None
            os.kill(victim.server.pid, signal.SIGKILL)

        killer = threading.Thread(target=kill_when_busy)
        killer.start()
        lines: list[str] = []
        (record,) = run_sweep(config, ResultStore(tmp_path), echo=lines.append, repo=minilm_repo, progress=False)
        killer.join()
        assert killed, "the victim was never killed"
        assert _served(survivor) > killed[0] + 100, "the sweep did not go on after the kill"
        assert replicas.ready() == {0}
    assert record.timeouts == 0, "a request hung"
    assert record.errors < 0.01 * record.requests, f"{record.errors} errors in {record.requests} requests"
    assert tuple(record.settings["stats_urls"]) == (survivor.ports.address(protocol), victim.ports.address(protocol))
    assert list(record.replicas) == [survivor.ports.address(protocol)]  # the victim's statistics are gone with it
    assert (
        record.server["minilm_model"].inference_count
        == record.replicas[survivor.ports.address(protocol)]["minilm_model"].inference_count
    )
    assert "replica 1 (its tritonserver exited, code -9): out of the balancer" in events, events
    assert any(f"server statistics from 2: {survivor.ports.address(protocol)}" in line for line in lines), lines


def _load_gate(replica: Replica) -> None:
    request = urllib.request.Request(f"http://{replica.http_url}/v2/repository/models/gate/load", b"{}", method="POST")
    with urllib.request.urlopen(request, timeout=120) as response:
        assert response.status == 200


def test_a_replica_that_is_not_ready_gets_no_traffic(minilm_repo, tmp_path):
    repo, release = tmp_path / "repo", tmp_path / "release"
    shutil.copytree(minilm_repo, repo)
    with ReplicaSet(repo, 2) as replicas:
        first, second = replicas.replicas
        (repo / "gate" / "1").mkdir(parents=True)  # after the start: only the second replica is told to load it
        (repo / "gate" / "config.pbtxt").write_text(GATE_CONFIG)
        (repo / "gate" / "1" / "model.py").write_text(GATE.format(release=str(release)))
        loading = threading.Thread(target=_load_gate, args=(second,))
        loading.start()
        _until(lambda: replicas.ready() == {0}, "the loading replica left the balancer")
        assert not is_ready(second.http_url)  # yet it listens and answers (_served below): only not ready

        def burst(count: int) -> None:
            with TextClient(ClientConfig(replicas.grpc_url, "minilm", timeout_s=10)) as client:
                for i in range(count):
                    client.embed([f"request number {i}"])

        before = _served(first), _served(second)
        burst(40)
        after = _served(first), _served(second)
        assert after == (before[0] + 40, before[1]), "the replica that is not ready got traffic"
        release.touch()
        loading.join()
        _until(lambda: replicas.ready() == {0, 1}, "the replica came back once ready")
        burst(40)
        assert _served(second) > before[1], "the ready replica never got traffic: the test above proves nothing"


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_a_rolling_restart_loses_no_request_that_a_client_retries(minilm_repo, protocol):
    attempts = 3
    with ReplicaSet(minilm_repo, 2) as replicas:
        url = replicas.grpc_url if protocol == "grpc" else replicas.http_url
        outcomes: list[int] = []  # per request: the attempt that succeeded, 0 when every attempt failed
        failures: list[str] = []
        rolled = threading.Event()

        def roll() -> None:
            try:
                for index in range(len(replicas.replicas)):
                    replicas.restart(index)
            finally:
                rolled.set()

        async def client_loop(worker: int) -> None:
            async with AsyncTextClient(ClientConfig(url, "minilm", protocol, timeout_s=10)) as client:
                number = 0
                while not rolled.is_set():
                    number += 1
                    for attempt in range(1, attempts + 1):
                        try:
                            await client.embed([f"worker {worker} request {number}"])
                        except ClientError as exc:
                            failures.append(exc.message)
                            continue
                        outcomes.append(attempt)
                        break
                    else:
                        outcomes.append(0)

        async def load() -> None:
            restarts = threading.Thread(target=roll)
            restarts.start()
            await asyncio.gather(*(client_loop(w) for w in range(4)))
            restarts.join()

        starts = [r.starts for r in replicas.replicas]
        asyncio.run(load())
        assert [r.starts for r in replicas.replicas] == [s + 1 for s in starts], "not every replica was restarted"
        served_after = [_served(r) for r in replicas.replicas]
    retried = sum(a > 1 for a in outcomes)
    assert outcomes and 0 not in outcomes, f"{outcomes.count(0)} lost, {retried} retried; errors: {failures[:5]}"
    assert all(served_after), f"a restarted replica never served again: {served_after}"
