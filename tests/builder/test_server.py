"""The bundled server's lifecycle, started for real on free ports."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as httpclient

from builder.common.errors import ServerError
from builder.server import TritonServer, check_servable, find_bundle

pytestmark = pytest.mark.slow

IDENTITY = """
import os, sys
if os.environ.get("TRITONBUILD_SITE_PACKAGES"):
    sys.path[:0] = os.environ["TRITONBUILD_SITE_PACKAGES"].split(os.pathsep)
import numpy as np
import triton_python_backend_utils as pb_utils

class TritonPythonModel:
    def initialize(self, args):
        {init}

    def execute(self, requests):
        return [pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(
            "Y", pb_utils.get_input_tensor_by_name(r, "X").as_numpy() * 2)]) for r in requests]
"""
CONFIG = """name: "{name}"
backend: "python"
max_batch_size: 4
input {{ name: "X" data_type: TYPE_FP32 dims: [ 2 ] }}
output {{ name: "Y" data_type: TYPE_FP32 dims: [ 2 ] }}
"""


def _python_model(repo: Path, name: str, init: str = "pass") -> None:
    (repo / name / "1").mkdir(parents=True)
    (repo / name / "config.pbtxt").write_text(CONFIG.format(name=name))
    (repo / name / "1" / "model.py").write_text(IDENTITY.format(init=init))


def test_bundle_is_found():
    assert (find_bundle() / "bin" / "tritonserver").is_file()


def test_start_serve_stop(tmp_path):
    _python_model(tmp_path, "double")
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
    _python_model(tmp_path, "broken", init="raise RuntimeError('weights are missing')")
    server = TritonServer(tmp_path, startup_timeout_s=60)
    with pytest.raises(ServerError, match="weights are missing") as err, server:
        pass
    assert "full log" in err.value.hint
    assert not server.is_alive()


def test_missing_repository():
    with pytest.raises(ServerError, match="does not exist"):
        check_servable(Path("/nonexistent/repo"))


def test_platforms_the_bundle_lacks_point_to_the_ngc_container(tmp_path):
    (tmp_path / "m" / "1").mkdir(parents=True)
    (tmp_path / "m" / "config.pbtxt").write_text('name: "m"\nplatform: "onnxruntime_onnx"\nmax_batch_size: 1\n')
    with pytest.raises(ServerError, match="onnxruntime_onnx") as err:
        check_servable(tmp_path)
    assert "serve_ngc.sh" in err.value.hint


def test_python_backend_settings_reach_the_backend(tmp_path):
    _python_model(tmp_path, "double")
    with TritonServer(tmp_path, python_backend_config=("shm-default-byte-size=16777216",)) as server:
        assert server.is_alive()
        log = server.log_path.read_text()
    assert '"shm-default-byte-size":"16777216"' in log  # the server's own table of backend settings
