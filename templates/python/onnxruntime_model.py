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
    """ONNX Runtime session per model instance, writing its outputs into a buffer reused across requests."""

    def initialize(self, args: dict) -> None:
        """Open the session with the configured providers that this ONNX Runtime build has."""
        params = tb.params(args)
        self.name = args["model_name"]
        self.limits = tb.TokenLimits.of(args)
        self.output_name = tb.output_names(args)[0]
        config = tb.json.loads(args["model_config"])
        self.output_dims = [int(d) for d in config["output"][0]["dims"]]  # -1: the sequence axis
        wanted = params.get("providers", "CPUExecutionProvider").split(",")
        available = set(ort.get_available_providers())
        providers: list = [p for p in wanted if p in available] or ["CPUExecutionProvider"]
        on_gpu = "CUDAExecutionProvider" in providers
        if on_gpu:
            index = providers.index("CUDAExecutionProvider")
            providers[index] = ("CUDAExecutionProvider", {"device_id": int(args["model_instance_device_id"])})
        self.threads = tb.configure_threads(args, computes_on_host=not on_gpu)["threads"]
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(self.threads)
        options.inter_op_num_threads = 1
        # Spinning worker threads would steal the cores that the tokenizer and post-processing stubs share.
        options.add_session_config_entry("session.intra_op.allow_spinning", params.get("allow_spinning", "0"))
        self.session = ort.InferenceSession(tb.version_file(args, "model.onnx"), options, providers=providers)
        self.binding = self.session.io_binding()
        self.arena = tb.OutputArena(np.float32)

    def run(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """One ONNX Runtime call for a batch of one sequence length, its output written into the arena."""
        shape = (ids.shape[0], *(ids.shape[1] if d == -1 else d for d in self.output_dims))
        out = self.arena.take(shape)
        self.binding.clear_binding_inputs()
        self.binding.clear_binding_outputs()
        self.binding.bind_cpu_input("input_ids", np.ascontiguousarray(ids))
        self.binding.bind_cpu_input("attention_mask", np.ascontiguousarray(mask))
        self.binding.bind_output(self.output_name, "cpu", 0, np.float32, list(out.shape), out.ctypes.data)
        self.session.run_with_iobinding(self.binding)
        return out

    def execute(self, requests: list) -> list:
        """Answer every request; same-length valid requests run together, a bad one fails alone."""
        self.arena.reset()
        groups, errors = tb.token_inputs(requests, self.limits)
        return tb.run_grouped(
            self.name, groups, errors, self.run, lambda part: [tb.output_tensor(self.output_name, part)]
        )
