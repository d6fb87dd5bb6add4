"""Triton Python-backend post-processing: pooled embeddings, label probabilities or last-token logits."""

from __future__ import annotations

# isort: off
import tritonbuild_backend as tb  # first: it puts the right site-packages on sys.path

tb.use_stub_numpy()
import numpy as np
# isort: on

pb_utils = tb.pb_utils


def check_finite(name: str, values: np.ndarray) -> None:
    """Raise InputError unless every value is finite: NaN survives min and max, so no temporary is needed."""
    if values.size and not (np.isfinite(values.min()) and np.isfinite(values.max())):
        raise tb.InputError(f"{name} holds NaN or infinite values")


def check_hidden(hidden: np.ndarray, mask: np.ndarray) -> None:
    """Raise InputError unless the hidden states and mask of one request fit together and are finite."""
    if hidden.shape[:2] != mask.shape:
        raise tb.InputError(
            f"last_hidden_state {list(hidden.shape)} and attention_mask {list(mask.shape)} differ in batch or length"
        )
    if mask.size and (int(mask.min()) < 0 or int(mask.max()) > 1):
        raise tb.InputError("attention_mask must hold only 0 and 1")
    check_finite("last_hidden_state", hidden)


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
        self.name = args["model_name"]
        self.task = tb.params(args)["task"]
        self.labels: list[str] = tb.read_json(args, "labels.json", default=[])

    def outputs(self, request: object) -> list:
        """The public output tensors for one request; InputError when its inputs cannot be post-processed."""
        if self.task == "feature-extraction":
            hidden = pb_utils.get_input_tensor_by_name(request, "last_hidden_state").as_numpy()
            mask = pb_utils.get_input_tensor_by_name(request, "attention_mask").as_numpy()
            check_hidden(hidden, mask)
            return [tb.output_tensor("EMBEDDING", mean_pool_normalize(hidden, mask))]
        logits = pb_utils.get_input_tensor_by_name(request, "logits").as_numpy()
        check_finite("logits", logits)
        if self.task == "text-classification":
            probs = softmax(logits)
            return [label_tensor(self.labels, probs), tb.output_tensor("PROBS", probs)]
        return [tb.output_tensor("LOGITS", logits.astype(np.float32))]

    def execute(self, requests: list) -> list:
        """One response per request; a bad one gets its own error."""
        responses = []
        for request in requests:
            try:
                responses.append(pb_utils.InferenceResponse(output_tensors=self.outputs(request)))
            except Exception as exc:
                responses.append(tb.error_response(self.name, exc))
        return responses
