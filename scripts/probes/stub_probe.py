"""Report what the Triton Python backend stub imports on this host (numpy version and path, sys.path).

The 2.51 stub embeds the system's libpython: which numpy it loads decides whether BYTES inputs and
numpy outputs survive. Writes OUT/stub_probe.json. From the repository's root:
  python -m scripts.probes.stub_probe OUT
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from builder.serving.server import TritonServer

ROOT = Path(__file__).resolve().parents[2]

MODEL = """
import json, os, sys
before = {"numpy_loaded_at_import": "numpy" in sys.modules,
          "numpy_file": getattr(sys.modules.get("numpy"), "__file__", None),
          "sys_path": list(sys.path), "env": os.environ.get("TRITONBUILD_STUB_NUMPY")}
import tritonbuild_backend as tb
tb.use_stub_numpy()
import numpy as np
import triton_python_backend_utils as pb_utils

class TritonPythonModel:
    def initialize(self, args):
        self.out = os.environ["STUB_PROBE_OUT"]
        with open(self.out, "w") as f:  # what was imported, in case the first request kills the stub
            json.dump(dict(before, numpy_version=np.__version__, numpy_now=np.__file__), f, indent=2)

    def execute(self, requests):
        report = dict(before, numpy_version=np.__version__, numpy_now=np.__file__)
        with open(self.out, "w") as f:  # written first: a corrupt BYTES tensor kills the stub outright
            json.dump(report, f, indent=2)
        texts = pb_utils.get_input_tensor_by_name(requests[0], "T").as_numpy().reshape(-1)
        report["bytes_input"] = [x.decode() for x in texts]
        with open(self.out, "w") as f:
            json.dump(report, f, indent=2)
        return [pb_utils.InferenceResponse(output_tensors=[tb.output_tensor("Y", np.ones((1, 1), np.float32))])]
"""
CONFIG = """name: "probe"
backend: "python"
max_batch_size: 4
input { name: "T" data_type: TYPE_STRING dims: [ 1 ] }
output { name: "Y" data_type: TYPE_FP32 dims: [ 1 ] }
"""


def main() -> None:
    """Serve the probe model, send one BYTES request, print the report."""
    import os

    import numpy as np
    import tritonclient.http as http

    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    os.environ["STUB_PROBE_OUT"] = str(out / "stub_probe.json")
    with tempfile.TemporaryDirectory() as tmp:
        version = Path(tmp) / "probe" / "1"
        version.mkdir(parents=True)
        (version.parent / "config.pbtxt").write_text(CONFIG)
        (version / "model.py").write_text(MODEL)
        (version / "tritonbuild_backend.py").write_text((ROOT / "templates/python/tritonbuild_backend.py").read_text())
        with TritonServer(Path(tmp), log_path=out / "stub_probe.log") as server:
            client = http.InferenceServerClient(server.http_url)
            text = http.InferInput("T", [1, 1], "BYTES")
            text.set_data_from_numpy(np.array([[b"hello stub"]], dtype=object))
            try:
                client.infer("probe", [text])
            except Exception as exc:  # the report file says more than the error
                print("request failed:", exc)
    print((out / "stub_probe.json").read_text() if (out / "stub_probe.json").exists() else "no report")


if __name__ == "__main__":
    main()
