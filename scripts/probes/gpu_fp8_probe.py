"""What FP8 GEMMs would buy the fused trunk on an H100, and what they cost in fidelity.

Every Linear of the fused trunk becomes torch._scaled_mm on float8_e4m3fn: weights scaled per tensor
once, activations per tensor on every call (an amax reduction and a cast: the price of dynamic
scaling), bias in the epilogue, FP16 out; GELU runs separately (tanh form). Times BERT-base at
1 x 128 and 32 x 128 in CUDA graphs against the FP16 trunk, and measures the per-token cosine against
FP32 on real text with the trained MiniLM. An experiment, not an engine option.

From the repository's root:
  python -m scripts.probes.gpu_fp8_probe OUT MINILM_DIR
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from builder.common.backend_files import backend_module
from builder.common.corpus import corpus_sentences
from scripts.bench.gpu_bench import environment, full_size_models, token_batches
from scripts.bench.timing import graph_of, time_gpu

# The backend's own files, imported as the server imports them. The backend helper's stub settings (one thread
# per pool, tokenizers' pool off, one compile thread) stay in this process, as they always did here.
fused_transformer = backend_module("fused_transformer", stub_environment=True)
FusedTransformer, Linear, fuse = fused_transformer.FusedTransformer, fused_transformer.Linear, fused_transformer.fuse
apply_precision = backend_module("torch_model", stub_environment=True).apply_precision

E4M3 = torch.float8_e4m3fn
E4M3_MAX = torch.finfo(E4M3).max


@dataclasses.dataclass(frozen=True)
class Fp8Linear:
    """A Linear with an FP8 weight (per-tensor scale) and per-call FP8 activations."""

    weight: torch.Tensor  # [out, in], float8_e4m3fn
    scale: torch.Tensor  # FP32 scalar
    bias: torch.Tensor

    @classmethod
    def of(cls, linear: Linear) -> Fp8Linear:
        """Quantize a fused Linear's weight once."""
        scale = linear.weight.abs().max().float() / E4M3_MAX
        return cls((linear.weight.float() / scale).to(E4M3), scale, linear.bias)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x W^T + b through FP8 tensor cores, FP16 out."""
        x_scale = x.abs().max().float().clamp(min=1e-12) / E4M3_MAX
        x8 = (x.float() / x_scale).to(E4M3)
        return torch._scaled_mm(x8, self.weight.t(), scale_a=x_scale, scale_b=self.scale, bias=self.bias,
                                out_dtype=x.dtype)  # fmt: skip

    def gelu_tanh(self, x: torch.Tensor) -> torch.Tensor:
        """tanh GELU after the FP8 GEMM (no FP8 GELU epilogue here)."""
        return F.gelu(self(x), approximate="tanh")


def to_fp8(trunk: FusedTransformer) -> FusedTransformer:
    """The same trunk with every GEMM in FP8."""
    trunk.layers = [
        dataclasses.replace(x, qkv=Fp8Linear.of(x.qkv), out=Fp8Linear.of(x.out), fc1=Fp8Linear.of(x.fc1),
                            fc2=Fp8Linear.of(x.fc2))
        for x in trunk.layers
    ]  # fmt: skip
    return trunk


def main() -> None:
    """Speed on BERT-base, fidelity on MiniLM, JSON to OUT."""
    from transformers import AutoModel, AutoTokenizer

    out, minilm = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    result: dict = {"environment": environment(), "speed": [], "fidelity": []}
    bert = apply_precision(full_size_models(smoke=False)["bert-base"], "fp16").cuda()
    for label, trunk in (("fp16", fuse(bert, gelu_epilogue=True)), ("fp8", to_fp8(fuse(bert, gelu_epilogue=True)))):
        for batch in (1, 32):
            ids = torch.randint(1000, 20000, (batch, 128), device="cuda")
            mask = torch.ones_like(ids)
            mask[0, -1] = 0
            ms = time_gpu(graph_of(trunk, ids, mask), 100)
            row = {"gemms": label, "batch": batch, "ms": ms, "seq_per_s": batch / ms * 1000}
            result["speed"].append(row)
            print(json.dumps(row), flush=True)
    torch.backends.cuda.matmul.allow_tf32 = False
    reference = AutoModel.from_pretrained(minilm, dtype=torch.float32).eval().cuda()
    half = apply_precision(AutoModel.from_pretrained(minilm, dtype=torch.float32).eval(), "fp16").cuda()
    batches = token_batches(AutoTokenizer.from_pretrained(minilm), corpus_sentences()[:512], 32, 128)
    for label, trunk in (("fp16", fuse(half, gelu_epilogue=True)), ("fp8", to_fp8(fuse(half, gelu_epilogue=True)))):
        cosines = []
        with torch.inference_mode():
            for b in batches:
                ids, mask = b["input_ids"].cuda(), b["attention_mask"].cuda()
                ref = reference(input_ids=ids, attention_mask=mask).last_hidden_state
                got = trunk(ids, mask).float()
                cosines.append(F.cosine_similarity(got[mask.bool()], ref[mask.bool()], dim=-1))
        cos = torch.cat(cosines)
        row = {"gemms": label, "token_cosine_min": float(cos.min()), "token_cosine_mean": float(cos.mean()),
               "nan": int(cos.isnan().sum())}  # fmt: skip
        result["fidelity"].append(row)
        print(json.dumps(row), flush=True)
    (out / "fp8_probe.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
