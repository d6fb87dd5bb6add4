"""The bundled server's lifecycle, started for real on free ports."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as httpclient
from built_repos import write_repo
from double_model import write_double
from hostile import Served
from pollers import no_pollers_within, pollers_on_host
from tritonclient.utils import InferenceServerException

from builder.common.errors import ServerError
from builder.engines import BACKENDS
from builder.serving.cpu_latency import PM_QOS_DEVICE, current_limit_us
from builder.serving.idle_poll import IdlePoll
from builder.serving.server import TritonServer, check_servable, fill_ports, find_bundle, free_port
from builder.serving.stubs import stubs_of

pytestmark = pytest.mark.slow


def test_bundle_is_found():
    assert (find_bundle() / "bin" / "tritonserver").is_file()


def test_start_serve_stop(tmp_path):
    write_double(tmp_path)
    with TritonServer(tmp_path) as server:
        assert server.is_alive()
        client = httpclient.InferenceServerClient(server.http_url)
        x = httpclient.InferInput("X", [1, 2], "FP32")
        x.set_data_from_numpy(np.array([[1.5, -2.0]], dtype=np.float32))
        assert client.infer("double", [x]).as_numpy("Y").tolist() == [[3.0, -4.0]]
        port = server.http_port
    assert not server.is_alive()
    with pytest.raises(ConnectionRefusedError):  # nothing listens there any more
        socket.create_connection(("127.0.0.1", port), timeout=2)


def test_a_model_that_fails_to_load_shows_its_error(tmp_path):
    write_double(tmp_path, name="broken", init="raise RuntimeError('weights are missing')")
    server = TritonServer(tmp_path, startup_timeout_s=60)
    with pytest.raises(ServerError, match="weights are missing") as err, server:
        pass
    assert "full log" in err.value.hint
    assert not server.is_alive()


@pytest.mark.skipif(not os.access(PM_QOS_DEVICE, os.W_OK), reason=f"{PM_QOS_DEVICE} is not writable here")
def test_the_cpu_latency_limit_holds_exactly_while_the_server_runs(tmp_path):
    write_double(tmp_path)
    before = current_limit_us()
    with TritonServer(tmp_path, cpu_latency_us=0) as server:
        assert current_limit_us() == 0 and server.is_alive()
    assert current_limit_us() == before
    write_double(tmp_path, name="broken", init="raise RuntimeError('weights are missing')")
    with pytest.raises(ServerError, match="weights are missing"), TritonServer(tmp_path, cpu_latency_us=0):
        pass
    assert current_limit_us() == before  # a server that never became ready gives the limit back too


@pytest.mark.skipif(not os.access(PM_QOS_DEVICE, os.W_OK), reason=f"{PM_QOS_DEVICE} is not writable here")
def test_serve_holds_the_cpu_latency_limit_and_says_so(tmp_path):
    write_double(tmp_path)
    before = current_limit_us()
    served = Served(tmp_path, options=("--cpu-latency-us", "0"))
    try:
        served.wait_for("CPU latency: held at 0 µs")
        assert current_limit_us() == 0
        served.process.send_signal(signal.SIGINT)
    finally:
        served.finish()
    assert served.process.returncode == 0, served.output()
    assert current_limit_us() == before


def test_idle_pollers_run_exactly_while_the_server_runs(tmp_path):
    write_double(tmp_path)
    assert pollers_on_host() == []
    with TritonServer(tmp_path, idle_poll=True) as server:
        (polls,) = [h for h in server.holds if isinstance(h, IdlePoll)]
        assert sorted(pollers_on_host()) == sorted(polls.pids)
        assert len(polls.pids) == len(os.sched_getaffinity(0)) and server.is_alive()
    assert no_pollers_within()
    write_double(tmp_path, name="broken", init="raise RuntimeError('weights are missing')")
    with pytest.raises(ServerError, match="weights are missing"), TritonServer(tmp_path, idle_poll=True):
        pass
    assert no_pollers_within()  # a server that never became ready stops its pollers too


def test_serve_idle_poll_says_so_and_stops_its_pollers_with_the_server(tmp_path):
    write_double(tmp_path)
    served = Served(tmp_path, options=("--idle-poll",))
    try:
        served.wait_for(f"idle poll: a nice-19 spinning process on each of {len(os.sched_getaffinity(0))} CPUs")
        assert len(pollers_on_host()) == len(os.sched_getaffinity(0))
        served.process.send_signal(signal.SIGINT)
    finally:
        served.finish()
    assert served.process.returncode == 0, served.output()
    assert no_pollers_within()


def test_ports_drawn_for_one_server_are_distinct_even_when_the_source_repeats_itself():
    draws = iter([9001, 9001, 8000, 9002, 9002, 9003])  # what free_port may do: a port is free each time it is asked
    assert fill_ports((0, 8000, 0, 0), lambda: next(draws)) == (9001, 8000, 9002, 9003)
    with pytest.raises(ServerError, match="no free port distinct from"):
        fill_ports((7000, 0), lambda: 7000)
    assert len(set(fill_ports((0, 0, 0)))) == 3  # the real source


def test_missing_repository():
    with pytest.raises(ServerError, match="does not exist"):
        check_servable(Path("/nonexistent/repo"))


def test_platforms_the_bundle_lacks_point_to_the_ngc_container(tmp_path):
    (tmp_path / "m" / "1").mkdir(parents=True)
    (tmp_path / "m" / "config.pbtxt").write_text('name: "m"\nplatform: "onnxruntime_onnx"\nmax_batch_size: 1\n')
    with pytest.raises(ServerError, match="onnxruntime_onnx") as err:
        check_servable(tmp_path)
    assert "serve_ngc.sh" in err.value.hint


@pytest.mark.parametrize("backend", BACKENDS.values(), ids=list(BACKENDS))
def test_the_bundled_server_refuses_exactly_the_backends_that_need_the_ngc_container(tmp_path, backend):
    gpu = "a100" if backend.needs_gpu else "cpu"
    repo = write_repo(tmp_path, backend.name, gpu, "fp16" if backend.name != "python-torch" else "fp32")
    if backend.bundled:
        check_servable(repo)
        return
    with pytest.raises(ServerError, match=f"uses platform {backend.platform} \\(what --engine .*{backend.name}") as err:
        check_servable(repo)
    assert "serve_ngc.sh" in err.value.hint and "--engine python-onnxruntime or python-torch" in err.value.hint


def test_python_backend_settings_reach_the_backend(tmp_path):
    write_double(tmp_path)
    with TritonServer(tmp_path, python_backend_config=("shm-default-byte-size=16777216",)) as server:
        assert server.is_alive()
        log = server.log_path.read_text()
    assert '"shm-default-byte-size":"16777216"' in log  # the server's own table of backend settings


def _infer(url: str) -> list:
    client = httpclient.InferenceServerClient(url)
    x = httpclient.InferInput("X", [1, 2], "FP32")
    x.set_data_from_numpy(np.array([[1.5, -2.0]], dtype=np.float32))
    return client.infer("double", [x]).as_numpy("Y").tolist()


def _kill_stub(server: TritonServer, model: str) -> None:
    (stub,) = [s for s in stubs_of(server.pid, server.repo) if s.model == model]
    os.kill(stub.pid, signal.SIGKILL)


@pytest.mark.parametrize("trial", range(3))  # a race: without the fix a stub stayed in about half the tries
def test_a_server_killed_under_load_leaves_no_stub_behind(tmp_path, trial):
    write_double(tmp_path)
    body = json.dumps({"inputs": [{"name": "X", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]}).encode()
    stop = threading.Event()

    def load(port: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)  # kept open: many requests a second
        while not stop.is_set():
            try:
                connection.request("POST", "/v2/models/double/infer", body)
                connection.getresponse().read()
            except (OSError, http.client.HTTPException):  # refused or reset once the server is gone
                connection.close()

    with TritonServer(tmp_path) as server:
        (stub,) = stubs_of(server.pid, server.repo)
        senders = [threading.Thread(target=load, args=(server.http_port,)) for _ in range(4)]
        for sender in senders:
            sender.start()
        time.sleep(1.0)
        os.kill(server.pid, signal.SIGKILL)  # the stub is orphaned while requests pass, not stopped
        stop.set()
        for sender in senders:
            sender.join()
    deadline = time.monotonic() + 10
    while stub.alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not stub.alive(), "the stub of a killed server still runs after the server was stopped"


def test_a_killed_stub_is_reloaded_and_serves_again_within_10_s(tmp_path):
    write_double(tmp_path)
    reported: list[str] = []
    with TritonServer(tmp_path, report=reported.append) as server:
        assert _infer(server.http_url) == [[3.0, -4.0]]
        _kill_stub(server, "double")
        killed = time.monotonic()
        while time.monotonic() - killed < 30:
            try:
                assert _infer(server.http_url) == [[3.0, -4.0]]
                break
            except InferenceServerException:
                time.sleep(0.1)
        recovered = time.monotonic() - killed
        log = server.log_path.read_text()
    assert recovered < 10, f"serving again only after {recovered:.1f} s"
    assert "double: 1 of its 1 backend stub(s) died; reloading double" in reported[0]
    assert "double: serving again" in reported[1] and server.events == reported
    assert "tritonbuild supervisor: double: serving again" in log


def test_serve_reloads_a_model_and_exits_1_when_it_cannot(tmp_path):
    flag = tmp_path / "double" / "broken"
    write_double(tmp_path, init=f"assert not os.path.exists({str(flag)!r}), 'model files damaged'")
    served = Served(tmp_path)
    try:
        served.wait_for("ready:")
        server_pid = served.server_pid()
        (stub,) = stubs_of(server_pid, tmp_path.resolve())
        os.kill(stub.pid, signal.SIGKILL)
        served.wait_for("supervisor: double: serving again", timeout_s=30)
        flag.write_text("")  # the next reload fails: serve must give up and say so
        (stub,) = stubs_of(server_pid, tmp_path.resolve())
        os.kill(stub.pid, signal.SIGKILL)
    finally:
        output = served.finish()
    assert served.process.returncode == 1, output
    assert "reload 3 of 3 failed" in output and "double lost a backend stub and could not be reloaded" in output
    assert "model files damaged" in output  # the log's lines say why
    assert "Traceback (most recent call last)" not in output.split("error:")[0]


def test_serve_exits_1_with_the_logs_last_lines_when_the_server_dies(tmp_path):
    write_double(tmp_path)
    served = Served(tmp_path)
    try:
        served.wait_for("ready:")
        os.kill(served.server_pid(), signal.SIGKILL)
    finally:
        output = served.finish(timeout_s=60)
    assert served.process.returncode == 1, output
    assert "tritonserver exited unexpectedly (code -9); its log ends:" in output
    assert "Started HTTPService at 127.0.0.1" in output  # the last lines, not only error lines
    if not Path("/dev/nvidiactl").exists():  # a CPU host: the CUDA and NVML complaints are noise
        assert "CUDA driver version is insufficient" not in output and "NVML" not in output


def test_a_port_that_another_server_owns_is_refused(tmp_path):
    write_double(tmp_path / "a")
    write_double(tmp_path / "b")
    with TritonServer(tmp_path / "a") as first:
        second = TritonServer(tmp_path / "b", http_port=first.http_port)
        with pytest.raises(ServerError, match=f"http port {first.http_port} is in use") as err, second:
            pass
        assert "--http-port" in err.value.hint and not second.is_alive()
        # and `serve` says so instead of "ready:"
        served = Served(tmp_path / "b", free_port(), first.grpc_port, free_port())
        output = served.finish(timeout_s=60)
        assert served.process.returncode == 1 and "grpc port" in output and "ready:" not in output, output
        # a server that answers on our ports but is not ours is never taken for ours
        impostor = TritonServer(tmp_path / "b", http_port=first.http_port, grpc_port=first.grpc_port)
        with pytest.raises(ServerError, match="is not the one just started"):
            impostor._check_identity()
        assert _infer(first.http_url) == [[3.0, -4.0]]  # the first server was left alone


def test_make_repos_staging_folders_inside_the_repository_are_not_served(tmp_path):
    write_double(tmp_path)
    write_double(tmp_path / ".staging-x1")  # what a make-repo in progress (or killed) leaves
    (tmp_path / ".staging-x1" / "unfinished").mkdir()
    (tmp_path / ".tritonbuild.lock").write_text("")
    with TritonServer(tmp_path, startup_timeout_s=60) as server:
        assert _infer(server.http_url) == [[3.0, -4.0]]
