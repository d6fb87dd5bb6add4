"""Check the python-torch engine's CUDA-graph path against eager PyTorch on padded real text.

For a random-weight BERT-base: FP32 eager (reference), then per precision the eager forward and the
Runner (graphs), on batches of real sentences padded to a 128-token bucket. Prints cosines.
  python scripts/gpu_graph_check.py TOKENIZER_DIR
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "templates" / "python")]

from torch_model import Runner, apply_precision, build_forward  # noqa: E402

from client.texts import corpus_sentences  # noqa: E402


def pooled(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over real tokens, L2-normalised."""
    m = mask.unsqueeze(-1).float()
    return torch.nn.functional.normalize((hidden.float() * m).sum(1) / m.sum(1), dim=1)


def main() -> None:
    """Reference vs eager vs graphs, per precision."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.backends.cuda.matmul.allow_tf32 = False
    device = torch.device("cuda")
    tokenizer = AutoTokenizer.from_pretrained(sys.argv[1])
    batch = tokenizer(
        corpus_sentences()[:32], padding="max_length", max_length=128, truncation=True, return_tensors="pt"
    )
    ids, mask = batch["input_ids"], batch["attention_mask"]
    torch.manual_seed(0)
    model = BertModel(BertConfig()).eval()
    model.config._attn_implementation = "sdpa"
    reference_model = copy.deepcopy(model).to(device)
    with torch.inference_mode():
        reference = pooled(
            reference_model(input_ids=ids.to(device), attention_mask=mask.to(device)).last_hidden_state, mask.to(device)
        ).cpu()
    for precision in ("fp32", "fp16"):
        variant = apply_precision(copy.deepcopy(model), precision).to(device)
        runner = Runner(build_forward(variant, "feature-extraction", "fused"), device, 32, [128], 32 * 128)
        eager = pooled(runner.eager(ids.to(device), mask.to(device)), mask.to(device)).cpu()
        graph = pooled(runner(ids.numpy(), mask.numpy()), mask)
        print(
            f"{precision}: eager vs fp32 cos min {float((eager * reference).sum(1).min()):.6f}; "
            f"graphs vs fp32 cos min {float((graph * reference).sum(1).min()):.6f}; "
            f"graphs vs eager cos min {float((graph * eager).sum(1).min()):.6f}",
            flush=True,
        )
        ones = torch.ones_like(mask)
        unmasked = pooled(runner.eager(ids.to(device), ones.to(device)), mask.to(device)).cpu()
        print(f"{precision}: eager ignoring the mask vs fp32 cos min {float((unmasked * reference).sum(1).min()):.6f}")


if __name__ == "__main__":
    main()
