"""Triton Python-backend model doing a whole request in one stub: TEXT → tokens → PyTorch → public outputs.

The tokenizer → model → post ensemble pays three backend-stub round trips per request; at batch 1 on a
GPU they cost more than the forward itself. This model reuses the same tokenizer, engine and label code
in one stub, and runs pooling or softmax inside the CUDA graphs.
"""

from __future__ import annotations

# isort: off
import tritonbuild_backend as tb  # first: it puts the right site-packages on sys.path

if tb.use_stub_numpy():  # TEXT is a BYTES input: the 2.51 stub decodes those right only under numpy 1.x
    tb.hide_modules("sklearn", "scipy")  # their numpy 2 builds break transformers under numpy 1.x
import torch
import post_model
import tokenizer_model
import torch_model
# isort: on

pb_utils = tb.pb_utils


def sentence_embedding(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over real tokens, then L2 normalisation (as post_model does on the host).

    The masked sum is one batched GEMM in the model's dtype (FP32 accumulation), not a per-element
    product and reduction over the whole hidden state.
    """
    weights = mask.to(hidden.dtype).unsqueeze(1)
    pooled = torch.bmm(weights, hidden).squeeze(1).float() / mask.sum(dim=1, keepdim=True).clamp(min=1)
    return torch.nn.functional.normalize(pooled, dim=1)


FINISH = {
    "feature-extraction": sentence_embedding,
    "text-classification": lambda logits, mask: torch.softmax(logits.float(), dim=-1),
    "causal-lm": None,
}


class TritonPythonModel:
    """Tokenizes each request (a bad one fails alone), runs same-length requests together."""

    def initialize(self, args: dict) -> None:
        """Tokenizer from tokenizer.json, engine from hf/, labels from labels.json."""
        self.tokenizer = tokenizer_model.TritonPythonModel()
        self.tokenizer.initialize(args)
        self.name = args["model_name"]
        self.task = tb.params(args)["task"]
        self.labels = post_model.label_array(tb.read_json(args, "labels.json", default=[]))
        self.runner = torch_model.load_runner(args, finish=FINISH[self.task])

    def outputs(self, part: torch.Tensor) -> list:
        """The public output tensors for one request's rows."""
        if self.task == "feature-extraction":
            return [tb.output_tensor("EMBEDDING", part)]
        if self.task == "text-classification":
            return [post_model.label_tensor(self.labels, part), tb.output_tensor("PROBS", part)]
        return [tb.output_tensor("LOGITS", part)]

    def execute(self, requests: list) -> list:
        """One response per request, an error response for a bad text; a failed batch is retried per request."""
        ids, masks, errors = [], [], []
        texts = [pb_utils.get_input_tensor_by_name(request, "TEXT").as_numpy() for request in requests]
        for result in self.tokenizer.encode_requests(texts):  # every request's texts in one tokenizer call
            if isinstance(result, BaseException):
                ids.append(None)
                masks.append(None)
                errors.append(tb.error_response(self.name, result))
                continue
            ids.append(result[0])
            masks.append(result[1])
            errors.append(None)
        return tb.run_grouped(self.name, tb.groups_of(ids, masks, errors), errors, self.runner, self.outputs)
