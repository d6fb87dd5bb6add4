"""How much kernel fusion would buy: torch.compile of BERT-base FP16 against the plain CUDA graph.

Times, at 1 × 128 and 32 × 128 (median of 50, CUDA events): the eager forward captured in a CUDA graph,
and torch.compile(mode="reduce-overhead") (Inductor's fused kernels, replayed through CUDA graphs).
From the repository's root:
  python -m scripts.probes.gpu_compile_probe OUT_DIR
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from builder.common.backend_files import backend_module
from scripts.bench.timing import time_gpu  # same CUDA-event timing as the in-process benchmark

# Importing time_gpu from gpu_bench always gave this probe the backend helper's stub settings (one compile
# thread, one thread per pool): they stay, so that it compiles and measures as it did.
backend_module("tritonbuild_backend", stub_environment=True)


def main() -> None:
    """Plain graph vs compiled, two shapes."""
    from transformers import BertConfig, BertModel

    out = Path(sys.argv[1])
    torch.manual_seed(0)
    model = BertModel(BertConfig(), add_pooling_layer=False).eval().half().cuda()
    model.config._attn_implementation = "sdpa"
    rows = []
    for batch, seq in ((1, 128), (32, 128)):
        ids = torch.randint(1000, 20000, (batch, seq), device="cuda")
        mask = torch.ones_like(ids)
        mask[0, -1] = 0
        graph = torch.cuda.CUDAGraph()
        with torch.inference_mode():
            for _ in range(3):
                model(input_ids=ids, attention_mask=mask)
            torch.cuda.synchronize()
            with torch.cuda.graph(graph):
                model(input_ids=ids, attention_mask=mask)
        compiled = torch.compile(model, mode="reduce-overhead", fullgraph=False, dynamic=False)
        start = time.perf_counter()
        with torch.inference_mode():
            for _ in range(3):
                compiled(input_ids=ids, attention_mask=mask)
        compile_s = time.perf_counter() - start

        def run_compiled(ids: torch.Tensor = ids, mask: torch.Tensor = mask, compiled: object = compiled) -> None:
            with torch.inference_mode():
                compiled(input_ids=ids, attention_mask=mask)

        row = {
            "batch": batch,
            "seq": seq,
            "plain_graph_ms": time_gpu(graph.replay, 50),
            "compiled_ms": time_gpu(run_compiled, 50),
            "compile_s": compile_s,
        }
        row["seq_per_s_compiled"] = batch / row["compiled_ms"] * 1000
        print(json.dumps(row), flush=True)
        rows.append(row)
    out.mkdir(parents=True, exist_ok=True)
    (out / "compile_probe.json").write_text(
        json.dumps({"device": torch.cuda.get_device_name(), "torch": torch.__version__, "rows": rows}, indent=2)
    )


if __name__ == "__main__":
    main()
