"""Triton Python-backend model running an ONNX graph with ONNX Runtime.

Requests that the dynamic batcher hands over together are concatenated per sequence length and
run as one ONNX Runtime call, then split back per request.
"""

from __future__ import annotations

# isort: off
import tritonbuild_backend as tb  # first: it puts the right site-packages on sys.path
import numpy as np
import onnxruntime as ort
# isort: on

pb_utils = tb.pb_utils


def group_by_length(shapes: list[tuple[int, int]]) -> dict[int, list[int]]:
    """Request indices grouped by sequence length, in arrival order within each group."""
    groups: dict[int, list[int]] = {}
    for index, (_, seq) in enumerate(shapes):
        groups.setdefault(seq, []).append(index)
    return groups


def split_rows(batch: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    """Split a concatenated batch back into per-request arrays."""
    return np.split(batch, np.cumsum(sizes)[:-1]) if len(sizes) > 1 else [batch]


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
        path = tb.version_file(args, "model.onnx")
        self.session = ort.InferenceSession(path, options, providers=providers)

    def run(self, ids: list[np.ndarray], masks: list[np.ndarray]) -> list[np.ndarray]:
        """Run each same-length group as one batch; results in request order."""
        results: list[np.ndarray] = [np.empty(0)] * len(ids)
        for indices in group_by_length([i.shape for i in ids]).values():
            feed = {
                "input_ids": np.concatenate([ids[i] for i in indices]),
                "attention_mask": np.concatenate([masks[i] for i in indices]),
            }
            out = self.session.run([self.output_name], feed)[0]
            for index, part in zip(indices, split_rows(out, [ids[i].shape[0] for i in indices]), strict=True):
                results[index] = np.ascontiguousarray(part)
        return results

    def execute(self, requests: list) -> list:
        """Validate each request, run the valid ones together, answer every request."""
        responses: list = [None] * len(requests)
        good, ids, masks = [], [], []
        for n, request in enumerate(requests):
            a = pb_utils.get_input_tensor_by_name(request, "input_ids").as_numpy()
            m = pb_utils.get_input_tensor_by_name(request, "attention_mask").as_numpy()
            if a.shape != m.shape:
                error = pb_utils.TritonError(f"input_ids {a.shape} and attention_mask {m.shape} differ in shape")
                responses[n] = pb_utils.InferenceResponse(error=error)
                continue
            good.append(n)
            ids.append(a)
            masks.append(m)
        for n, out in zip(good, self.run(ids, masks), strict=True):
            responses[n] = pb_utils.InferenceResponse(output_tensors=[tb.output_tensor(self.output_name, out)])
        return responses
