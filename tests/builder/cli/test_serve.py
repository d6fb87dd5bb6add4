"""`tritonbuild serve --replicas`: refusals before anything starts, and the command end to end (real servers, nginx)."""

from __future__ import annotations

import socket
import subprocess
import sys

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from click.testing import CliRunner
from double_model import write_double

from builder.cli import main
from builder.serving.server import free_port


def test_a_missing_nginx_is_said_before_any_server_starts(tmp_path, monkeypatch):
    monkeypatch.setenv("TRITONBUILD_NGINX", str(tmp_path / "no-nginx"))
    result = CliRunner().invoke(main, ["serve", "--repo", str(write_double(tmp_path / "repo")), "--replicas", "2"])
    assert result.exit_code == 1 and "hint: run scripts/setup.sh" in result.output, result.output
    assert "apt-get install nginx-light" in result.output and "Traceback" not in result.output


def test_metrics_port_belongs_to_one_server(tmp_path):
    result = CliRunner().invoke(main, ["serve", "--repo", str(tmp_path), "--replicas", "2", "--metrics-port", "9"])
    assert result.exit_code == 2 and "each replica has its own" in result.output


@pytest.mark.slow
def test_serve_replicas_prints_one_url_that_serves_and_ctrl_c_stops_everything(tmp_path):
    http_port, grpc_port = free_port(), free_port()
    repo, logs = write_double(tmp_path / "repo"), tmp_path / "logs"
    command = [sys.executable, "-m", "builder", "serve", "--repo", str(repo), "--replicas", "2",
               "--http-port", str(http_port), "--grpc-port", str(grpc_port), "--log", str(logs)]  # fmt: skip
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as serve:
        assert serve.stdout is not None
        lines = []
        for line in serve.stdout:
            lines.append(line)
            if "Ctrl-C stops everything" in line or serve.poll() is not None:
                break
        ready = f"ready: HTTP 127.0.0.1:{http_port}, gRPC 127.0.0.1:{grpc_port} (nginx over 2 replicas)\n"
        assert ready in lines, lines
        assert sum(line.startswith("  replica ") for line in lines) == 2
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}")
        x = grpcclient.InferInput("X", [1, 2], "FP32")
        x.set_data_from_numpy(np.array([[1.5, -2.0]], dtype=np.float32))
        assert client.infer("double", [x]).as_numpy("Y").tolist() == [[3.0, -4.0]]
        serve.send_signal(2)  # Ctrl-C
        rest, _ = serve.communicate(timeout=60)
    assert serve.returncode == 0 and "stopping" in rest, rest
    assert sorted(p.name for p in logs.iterdir()) == ["replica-0.log", "replica-1.log"]
    for port in (http_port, grpc_port):
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2)
