"""Triton Python-backend post-processing: pooled embeddings, label probabilities or last-token logits."""

from __future__ import annotations

import json
import os
import sys

# The bundled server's Python backend stub ignores PYTHONPATH; `tritonbuild serve` passes the site here.
if os.environ.get("TRITONBUILD_SITE_PACKAGES"):
    sys.path[:0] = os.environ["TRITONBUILD_SITE_PACKAGES"].split(os.pathsep)

import numpy as np

try:
    import triton_python_backend_utils as pb_utils
except ImportError:  # imported by unit tests outside the server
    pb_utils = None


def mean_pool_normalize(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean over real tokens, then L2 normalisation (sentence-transformers' pooling)."""
    weights = mask.astype(np.float32)[..., None]
    pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable softmax over the last axis."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return (exp / exp.sum(axis=-1, keepdims=True)).astype(np.float32)


class TritonPythonModel:
    """Turns raw model outputs into the ensemble's public outputs."""

    def initialize(self, args: dict) -> None:
        """Read the task and, for classification, the label names."""
        config = json.loads(args["model_config"])
        self.task = config["parameters"]["task"]["string_value"]
        self.labels: list[str] = []
        labels_path = os.path.join(args["model_repository"], args["model_version"], "labels.json")
        if os.path.exists(labels_path):
            with open(labels_path) as f:
                self.labels = json.load(f)

    def outputs(self, request: object) -> list:
        """The public output tensors for one request."""
        if self.task == "feature-extraction":
            hidden = pb_utils.get_input_tensor_by_name(request, "last_hidden_state").as_numpy()
            mask = pb_utils.get_input_tensor_by_name(request, "attention_mask").as_numpy()
            return [pb_utils.Tensor("EMBEDDING", mean_pool_normalize(hidden, mask))]
        logits = pb_utils.get_input_tensor_by_name(request, "logits").as_numpy()
        if self.task == "text-classification":
            probs = softmax(logits)
            names = np.array([[self.labels[i].encode()] for i in probs.argmax(axis=1)], dtype=object)
            return [pb_utils.Tensor("LABEL", names), pb_utils.Tensor("PROBS", probs)]
        return [pb_utils.Tensor("LOGITS", np.ascontiguousarray(logits, dtype=np.float32))]

    def execute(self, requests: list) -> list:
        """One response per request."""
        return [pb_utils.InferenceResponse(output_tensors=self.outputs(r)) for r in requests]
