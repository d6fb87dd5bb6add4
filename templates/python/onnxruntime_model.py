"""Triton Python-backend model running an ONNX graph with ONNX Runtime.

Requests that the dynamic batcher hands over together are concatenated per sequence length and
run as one ONNX Runtime call, then split back per request.
"""

from __future__ import annotations

# isort: off
import tritonbuild_backend as tb  # first: it puts the right site-packages on sys.path

tb.use_stub_numpy()
import numpy as np
import onnxruntime as ort
# isort: on


class TritonPythonModel:
    """ONNX Runtime session per model instance."""

    def initialize(self, args: dict) -> None:
        """Open the session with the configured providers that this ONNX Runtime build has."""
        params = tb.params(args)
        self.output_name = tb.output_names(args)[0]
        wanted = params.get("providers", "CPUExecutionProvider").split(",")
        available = set(ort.get_available_providers())
        providers: list = [p for p in wanted if p in available] or ["CPUExecutionProvider"]
        if "CUDAExecutionProvider" in providers:
            index = providers.index("CUDAExecutionProvider")
            providers[index] = ("CUDAExecutionProvider", {"device_id": int(args["model_instance_device_id"])})
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(params.get("intra_op_threads", "0"))
        # Spinning worker threads would steal the cores that the tokenizer and post-processing stubs share.
        options.add_session_config_entry("session.intra_op.allow_spinning", params.get("allow_spinning", "0"))
        self.session = ort.InferenceSession(tb.version_file(args, "model.onnx"), options, providers=providers)

    def run(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """One ONNX Runtime call for a batch of one sequence length."""
        return self.session.run([self.output_name], {"input_ids": ids, "attention_mask": mask})[0]

    def execute(self, requests: list) -> list:
        """Answer every request; same-length requests run together."""
        return tb.run_grouped(
            *tb.token_inputs(requests), self.run, lambda part: [tb.output_tensor(self.output_name, part)]
        )
