"""Does PyTorch's TunableOp (benchmarking cuBLAS/cuBLASLt algorithms per GEMM shape) beat cuBLAS's own
choices for the fused BERT-base trunk? CUDA-graph time at 1 x 128 and 32 x 128, off then on.

From the repository's root:
  python -m scripts.probes.gpu_tunableop_probe OUT
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from builder.common.backend_files import backend_module
from scripts.bench.gpu_bench import environment, full_size_models
from scripts.bench.timing import graph_of, time_gpu

# The backend's own files, imported as the server imports them. The backend helper's stub settings (one thread
# per pool, tokenizers' pool off, one compile thread) stay in this process, as they always did here.
fuse = backend_module("fused_transformer", stub_environment=True).fuse
apply_precision = backend_module("torch_model", stub_environment=True).apply_precision


def main() -> None:
    """Time the trunk with cuBLAS's heuristics, then with TunableOp's tuned choices (its CSV: what it chose)."""
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    model = apply_precision(full_size_models(smoke=False)["bert-base"], "fp16").cuda()
    result: dict = {"environment": environment(), "rows": []}
    for tuned in (False, True):
        torch.cuda.tunable.enable(tuned)
        torch.cuda.tunable.tuning_enable(tuned)
        torch.cuda.tunable.set_filename(str(out / "tunableop_results.csv"))
        for gelu_epilogue in (False, True):
            trunk = fuse(model, gelu_epilogue=gelu_epilogue)
            for batch in (1, 32):
                ids = torch.randint(1000, 20000, (batch, 128), device="cuda")
                mask = torch.ones_like(ids)
                mask[0, -1] = 0
                ms = time_gpu(graph_of(trunk, ids, mask), 100)
                row = {"tunableop": tuned, "gelu_epilogue": gelu_epilogue, "batch": batch, "ms": ms,
                       "seq_per_s": batch / ms * 1000}  # fmt: skip
                result["rows"].append(row)
                print(json.dumps(row), flush=True)
    (out / "tunableop_probe.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
