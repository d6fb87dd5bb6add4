"""The smallest servable repository: one Python model, `double`, that loads in a second."""

from __future__ import annotations

from pathlib import Path

DOUBLE = """
import os, sys
if os.environ.get("TRITONBUILD_SITE_PACKAGES"):
    sys.path[:0] = os.environ["TRITONBUILD_SITE_PACKAGES"].split(os.pathsep)
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


def write_double(folder: Path, init: str = "pass", name: str = "double") -> Path:
    """`folder` with a Python model `name` that doubles its input; `init` runs when it loads."""
    (folder / name / "1").mkdir(parents=True)
    (folder / name / "config.pbtxt").write_text(CONFIG.format(name=name))
    (folder / name / "1" / "model.py").write_text(DOUBLE.format(init=init))
    return folder
