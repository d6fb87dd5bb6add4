"""Triton Python-backend post-processing: pooled embeddings, label probabilities or last-token logits."""

from __future__ import annotations

# isort: off
import tritonbuild_backend as tb  # first: it puts the right site-packages on sys.path

tb.use_stub_numpy()
import numpy as np
# isort: on

pb_utils = tb.pb_utils


def mean_pool_normalize(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean over real tokens, then L2 normalisation (sentence-transformers' pooling)."""
    weights = mask.astype(np.float32)
    # (batch, 1, seq) @ (batch, seq, hidden): the masked sum without a (batch, seq, hidden) temporary
    pooled = np.matmul(weights[:, None, :], hidden)[:, 0] / np.maximum(weights.sum(axis=1, keepdims=True), 1e-9)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable softmax over the last axis."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return (exp / exp.sum(axis=-1, keepdims=True)).astype(np.float32)


def label_tensor(labels: list[str], probs: object) -> object:
    """The LABEL output: the name of each row's most probable class (probs: numpy array or torch tensor)."""
    names = np.array([[labels[int(i)].encode()] for i in probs.argmax(axis=1)], dtype=object)
    return pb_utils.Tensor("LABEL", names)


class TritonPythonModel:
    """Turns raw model outputs into the ensemble's public outputs."""

    def initialize(self, args: dict) -> None:
        """Read the task and, for classification, the label names."""
        tb.configure_threads(args, computes_on_host=False)  # pooling or a softmax: one thread is plenty
        self.task = tb.params(args)["task"]
        self.labels: list[str] = tb.read_json(args, "labels.json", default=[])

    def execute(self, requests: list) -> list:
        """One response per request; logits of every request go through one softmax."""
        if self.task == "feature-extraction":  # lengths differ between requests: pooled one by one
            return [pb_utils.InferenceResponse(output_tensors=self.embedding(r)) for r in requests]
        parts = [pb_utils.get_input_tensor_by_name(r, "logits").as_numpy() for r in requests]
        if self.task == "text-classification":
            probs = softmax(np.concatenate(parts) if len(parts) > 1 else parts[0])
            outputs = [
                [label_tensor(self.labels, p), tb.output_tensor("PROBS", p)]
                for p in tb.split_rows(probs, [len(x) for x in parts])
            ]
        else:
            outputs = [[tb.output_tensor("LOGITS", p.astype(np.float32))] for p in parts]
        return [pb_utils.InferenceResponse(output_tensors=o) for o in outputs]

    def embedding(self, request: object) -> list:
        """The EMBEDDING output of one request."""
        hidden = pb_utils.get_input_tensor_by_name(request, "last_hidden_state").as_numpy()
        mask = pb_utils.get_input_tensor_by_name(request, "attention_mask").as_numpy()
        return [tb.output_tensor("EMBEDDING", mean_pool_normalize(hidden, mask))]
