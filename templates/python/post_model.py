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


def merge_rows(parts: list[np.ndarray]) -> np.ndarray:
    """Requests' rows as one batch: a lone request's own array, uncopied."""
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


def label_array(labels: list[str]) -> np.ndarray:
    """The label names as a BYTES array, made once: a request's names are then one indexing of it."""
    return np.array([label.encode() for label in labels], dtype=object)


def label_tensor(labels: np.ndarray, probs: object) -> object:
    """The LABEL output: the name of each row's most probable class (probs: numpy array or CPU torch tensor).

    `labels` comes from label_array. A torch tensor is read through numpy (a view): torch's own argmax costs
    more than the rest of a small request.
    """
    rows = probs if isinstance(probs, np.ndarray) else probs.numpy()
    return pb_utils.Tensor("LABEL", labels[rows.argmax(axis=1)][:, None])


class TritonPythonModel:
    """Turns raw model outputs into the ensemble's public outputs."""

    def initialize(self, args: dict) -> None:
        """Read the task and, for classification, the label names."""
        tb.configure_threads(args, computes_on_host=False)  # pooling or a softmax: one thread is plenty
        self.name = args["model_name"]
        self.task = tb.params(args)["task"]
        self.labels = label_array(tb.read_json(args, "labels.json", default=[]))

    def embedding(self, request: object) -> list:
        """The EMBEDDING output of one request; InputError when its inputs cannot be pooled."""
        hidden = pb_utils.get_input_tensor_by_name(request, "last_hidden_state").as_numpy()
        mask = pb_utils.get_input_tensor_by_name(request, "attention_mask").as_numpy()
        check_hidden(hidden, mask)
        return [tb.output_tensor("EMBEDDING", mean_pool_normalize(hidden, mask))]

    def execute(self, requests: list) -> list:
        """One response per request, a bad one getting its own error; logits of every good request in one softmax."""
        responses: list = [None] * len(requests)
        if self.task == "feature-extraction":  # lengths differ between requests: pooled one by one
            for index, request in enumerate(requests):
                try:
                    responses[index] = pb_utils.InferenceResponse(output_tensors=self.embedding(request))
                except Exception as exc:
                    responses[index] = tb.error_response(self.name, exc)
            return responses
        good, merged = self.finite_logits(requests, responses)
        if self.task == "text-classification" and good:
            probs = softmax(merged)
            names = self.labels[probs.argmax(axis=1)][:, None]  # one argmax and one lookup for the batch
            sizes = [len(logits) for _, logits in good]
            for (index, _), p, n in zip(good, tb.split_rows(probs, sizes), tb.split_rows(names, sizes), strict=True):
                outputs = [pb_utils.Tensor("LABEL", n), tb.output_tensor("PROBS", p)]
                responses[index] = pb_utils.InferenceResponse(output_tensors=outputs)
        else:
            for index, logits in good:
                outputs = [tb.output_tensor("LOGITS", logits.astype(np.float32, copy=False))]
                responses[index] = pb_utils.InferenceResponse(output_tensors=outputs)
        return responses

    def finite_logits(self, requests: list, responses: list) -> tuple[list[tuple[int, np.ndarray]], np.ndarray | None]:
        """(index, logits) of every request whose logits are finite, and those logits merged (None if there are none).

        Checked once for the whole batch, and request by request only when the batch holds a bad value; the others
        get their error in `responses`.
        """
        good = [(i, pb_utils.get_input_tensor_by_name(r, "logits").as_numpy()) for i, r in enumerate(requests)]
        merged = merge_rows([logits for _, logits in good])
        try:
            check_finite("logits", merged)
            return good, merged
        except tb.InputError:
            pass
        finite = []
        for index, logits in good:
            try:
                check_finite("logits", logits)
                finite.append((index, logits))
            except tb.InputError as exc:
                responses[index] = tb.error_response(self.name, exc)
        return finite, merge_rows([logits for _, logits in finite]) if finite else None
