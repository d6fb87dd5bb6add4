"""Where the last 7 % of BERT-base at 32×128 could come from: variants of the fused trunk timed as CUDA graphs.

Issue 6 asks for 20,000 sequences/s; the fused-tanh-gelu trunk gave about 18,600 on an H100, its GEMMs
taking 1.23 of 1.65 ms of kernels. Each variant below keeps the numbers (checked against the shipped
trunk) and changes one thing:
  - nomask: no attention mask when no row is padded (the trunk's `full` path, which the engine adopted);
  - sdpa-*: the masked attention through each SDPA backend that takes a mask;
  - residual-epilogue: each residual add folded into the GEMM (C = residual, beta = 1);
  - kn: GEMM weights stored [in, out], another layout for cuBLASLt to choose kernels for;
  - two-streams: the batch as two halves on two streams inside one graph, so that one half's
    LayerNorms and attention overlap the other's GEMMs.
Then Inductor's max-autotune times Triton GEMM templates against cuBLAS for the four GEMM shapes.

From the repository's root:
  python -m scripts.probes.gpu_trunk_probe OUT.json [--smoke] [--no-autotune]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch
import torch.nn.functional as F

from builder.common.backend_files import backend_module
from scripts.bench.timing import graph_of, kernel_table, time_cpu

# The backend's own files, imported as the server imports them. The backend helper's stub settings (one thread
# per pool, tokenizers' pool off, one compile thread) stay in this process, as they always did here.
ft = backend_module("fused_transformer", stub_environment=True)
apply_precision = backend_module("torch_model", stub_environment=True).apply_precision

SMOKE = {"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 2, "intermediate_size": 128}


def graph_ms(fn: object, rounds: int = 7, replays: int = 50) -> float:
    """Median time of one replay of fn() captured as a CUDA graph (CPU: of one eager call)."""
    if not torch.cuda.is_available():
        return time_cpu(fn, 1)
    replay = graph_of(lambda ids, mask: fn(), None, None)
    times = []
    for _ in range(rounds):  # replays back to back, as a server at full load runs them
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(replays):
            replay()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / replays)
    return statistics.median(times)


def residual_epilogue(trunk: ft.FusedTransformer, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The post-norm trunk with x += h W^T done by the GEMM (beta = 1) and the bias added inside the LayerNorm."""
    batch, seq = ids.shape
    x = (trunk.word[ids] + trunk.position[:seq] + trunk.token_type).reshape(batch * seq, -1)
    x = trunk.embed_norm(x)
    low = x.dtype
    bias = torch.zeros(mask.shape, dtype=low, device=x.device).masked_fill_(mask == 0, torch.finfo(low).min)
    bias = bias[:, None, None, :]
    hidden = x.shape[-1]
    for layer in trunk.layers:
        qkv = layer.qkv(x).view(batch, seq, 3, trunk.heads, hidden // trunk.heads).permute(2, 0, 3, 1, 4)
        ctx = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=bias)
        y = x.addmm_(ctx.transpose(1, 2).reshape(batch * seq, hidden), layer.out.weight.t())
        x = norm_bias(y, layer.out.bias, layer.norm1.weight, layer.norm1.bias, layer.norm1.eps)
        y = x.clone().addmm_(layer.fc1.gelu_tanh(x), layer.fc2.weight.t())
        x = norm_bias(y, layer.fc2.bias, layer.norm2.weight, layer.norm2.bias, layer.norm2.eps)
    return x.view(batch, seq, -1)


def _norm_bias(y: torch.Tensor, b: torch.Tensor, w: torch.Tensor, beta: torch.Tensor, eps: float) -> torch.Tensor:
    return F.layer_norm(y + b, y.shape[-1:], w, beta, eps)


norm_bias = torch.compile(_norm_bias, dynamic=False) if torch.cuda.is_available() else _norm_bias


def _norm_sum_bias(x: torch.Tensor, y: torch.Tensor, b: torch.Tensor, w: torch.Tensor, beta: torch.Tensor,
                   eps: float) -> torch.Tensor:  # fmt: skip
    return F.layer_norm(x + y + b, y.shape[-1:], w, beta, eps)


norm_sum_bias = torch.compile(_norm_sum_bias, dynamic=False) if torch.cuda.is_available() else _norm_sum_bias


def embedded(
    trunk: ft.FusedTransformer, ids: torch.Tensor, mask: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """BERT's normed embeddings as [tokens, hidden] and the FP16 additive attention mask (None: no mask)."""
    x = trunk.embed_norm((trunk.word[ids] + trunk.position[: ids.shape[1]] + trunk.token_type).flatten(0, 1))
    if mask is None:
        return x, None
    bias = torch.zeros(mask.shape, dtype=x.dtype, device=x.device).masked_fill_(mask == 0, -65504.0)
    return x, bias[:, None, None, :]


def bias_in_norm(trunk: ft.FusedTransformer, ids: torch.Tensor, mask: torch.Tensor | None, kn: dict) -> torch.Tensor:
    """The post-norm trunk with the out and fc2 GEMMs bias-free (plain cuBLAS mm), their bias added in the norm.

    mask None: no attention mask. kn: weight → the same weight stored [in, out] (other GEMM layouts).
    """
    batch, seq = ids.shape
    x, bias = embedded(trunk, ids, mask)
    hidden = x.shape[-1]

    def mm(h: torch.Tensor, linear: ft.Linear) -> torch.Tensor:
        return h @ kn[id(linear)] if kn else h @ linear.weight.t()

    for layer in trunk.layers:
        qkv = torch.addmm(layer.qkv.bias, x, kn[id(layer.qkv)]) if kn else layer.qkv(x)
        qkv = qkv.view(batch, seq, 3, trunk.heads, hidden // trunk.heads).permute(2, 0, 3, 1, 4)
        ctx = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=bias)
        y = mm(ctx.transpose(1, 2).reshape(batch * seq, hidden), layer.out)
        x = norm_sum_bias(x, y, layer.out.bias, layer.norm1.weight, layer.norm1.bias, layer.norm1.eps)
        y = mm(layer.fc1.gelu_tanh(x), layer.fc2)
        x = norm_sum_bias(x, y, layer.fc2.bias, layer.norm2.weight, layer.norm2.bias, layer.norm2.eps)
    return x.view(batch, seq, -1)


def static_norms(trunk: ft.FusedTransformer, ids: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """The shipped post-norm trunk with its add+LayerNorm kernels compiled for static shapes."""
    batch, seq = ids.shape
    x, bias = embedded(trunk, ids, mask)
    hidden = x.shape[-1]
    for layer in trunk.layers:
        qkv = layer.qkv(x).view(batch, seq, 3, trunk.heads, hidden // trunk.heads).permute(2, 0, 3, 1, 4)
        ctx = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=bias)
        y = layer.out(ctx.transpose(1, 2).reshape(batch * seq, hidden))
        x = static_norm(x, y, layer.norm1.weight, layer.norm1.bias, layer.norm1.eps)
        x = static_norm(x, layer.fc2(layer.fc1.gelu_tanh(x)), layer.norm2.weight, layer.norm2.bias, layer.norm2.eps)
    return x.view(batch, seq, -1)


static_norm = torch.compile(ft.norm_of_sum, dynamic=False) if torch.cuda.is_available() else ft.norm_of_sum


class LinearKN(ft.Linear):
    """A Linear whose weight is stored [in, out]: the GEMM reads it untransposed (another cuBLASLt layout)."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x W + b."""
        return torch.addmm(self.bias, x, self.weight)

    def gelu_tanh(self, x: torch.Tensor) -> torch.Tensor:
        """GELU(x W + b) in the epilogue."""
        return torch._addmm_activation(self.bias, x, self.weight, use_gelu=True)


def kn_layout(trunk: ft.FusedTransformer, names: tuple[str, ...]) -> ft.FusedTransformer:
    """A copy of the trunk with the named GEMMs' weights stored [in, out]."""
    import copy
    import dataclasses

    other = copy.copy(trunk)
    kn = {name: None for name in names}
    other.layers = [
        dataclasses.replace(
            layer,
            **{n: LinearKN(getattr(layer, n).weight.t().contiguous(), getattr(layer, n).bias) for n in kn},
        )
        for layer in trunk.layers
    ]
    return other


def two_streams(trunk: object, ids: torch.Tensor, mask: torch.Tensor, streams: list) -> torch.Tensor:
    """The two halves of the batch on two streams, joined at the end."""
    if not torch.cuda.is_available():
        return trunk(ids, mask)
    half = ids.shape[0] // 2
    current = torch.cuda.current_stream()
    outs = []
    for stream, rows in zip(streams, (slice(0, half), slice(half, None)), strict=True):
        stream.wait_stream(current)
        with torch.cuda.stream(stream):
            outs.append(trunk(ids[rows], mask[rows]))
    for stream in streams:
        current.wait_stream(stream)
    return torch.cat(outs)


def autotune_gemms(tokens: int, hidden: int, inner: int) -> list[dict]:
    """cuBLAS (F.linear) against Inductor's max-autotune choice for each GEMM shape of the layer."""
    import torch._inductor.config as inductor

    inductor.max_autotune_gemm_backends = "ATEN,TRITON"
    rows = []
    for name, n, k in (("qkv", 3 * hidden, hidden), ("out", hidden, hidden), ("fc1", inner, hidden),
                       ("fc2", hidden, inner)):  # fmt: skip
        x = torch.randn(tokens, k, device="cuda", dtype=torch.float16)
        w = torch.randn(n, k, device="cuda", dtype=torch.float16) / k**0.5
        b = torch.randn(n, device="cuda", dtype=torch.float16)
        tuned = torch.compile(F.linear, mode="max-autotune-no-cudagraphs", dynamic=False)
        try:
            tuned_ms = graph_ms(lambda x=x, w=w, b=b, f=tuned: f(x, w, b))
        except Exception as exc:  # no Triton for this GPU: report it, keep the rest
            tuned_ms, error = float("nan"), repr(exc)[:300]
        else:
            error = None
        cublas_ms = graph_ms(lambda x=x, w=w, b=b: F.linear(x, w, b))
        tflops = 2 * tokens * n * k / 1e9
        rows.append({"gemm": name, "m": tokens, "n": n, "k": k, "cublas_ms": cublas_ms, "max_autotune_ms": tuned_ms,
                     "cublas_tflops": tflops / cublas_ms, "error": error})  # fmt: skip
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    """Time each variant at 32×128 and 1×128, check each against the shipped trunk, write JSON."""
    from transformers import BertConfig, BertModel

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--smoke", action="store_true", help="a tiny model (CPU check of the code)")
    parser.add_argument("--no-autotune", action="store_true", help="skip the GEMM autotuning comparison")
    args = parser.parse_args()
    # A served model is one per process; this one compiles the fused kernels for many models and dtypes.
    torch._dynamo.config.recompile_limit = 64
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    config = BertConfig(**(SMOKE if args.smoke else {}))
    model = apply_precision(BertModel(config).eval(), "fp32" if args.smoke else "fp16").to(device)
    trunk = ft.fuse(model, gelu_epilogue=True)
    streams = [torch.cuda.Stream(), torch.cuda.Stream()] if device.type == "cuda" else []
    result: dict = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
                    "torch": torch.__version__, "rows": []}  # fmt: skip
    for batch in (32, 1):
        ids = torch.randint(1000, 20000, (batch, 128), device=device)
        mask = torch.ones_like(ids)
        with torch.inference_mode():
            reference = trunk(ids, mask).float()
            variants = variants_for(trunk, ids, mask, streams)
            for name, fn in variants.items():
                try:
                    ms = graph_ms(fn)
                    cos = float(F.cosine_similarity(fn().float().flatten(1), reference.flatten(1)).min())
                except Exception as exc:
                    result["rows"].append({"batch": batch, "variant": name, "error": repr(exc)[:300]})
                    print(result["rows"][-1], flush=True)
                    continue
                row = {"batch": batch, "variant": name, "ms": ms, "seq_per_s": batch / ms * 1e3, "cosine_min": cos}
                result["rows"].append(row)
                print(row, flush=True)
    if device.type == "cuda":  # where the time of the shipped and the leanest variant goes
        ids = torch.randint(1000, 20000, (32, 128), device=device)
        mask = torch.ones_like(ids)
        kn_all = kn_layout(trunk, ("qkv", "out", "fc1", "fc2"))
        result["kernels"] = {
            "shipped (masked)": kernel_table(trunk, ids, mask, top=20),
            "nomask": kernel_table(lambda i, m: trunk(i, m, True), ids, mask, top=20),
            "nomask kn all": kernel_table(lambda i, m: kn_all(i, m, True), ids, mask, top=20),
        }
    if device.type == "cuda" and not args.no_autotune:
        result["gemms"] = autotune_gemms(32 * 128, config.hidden_size, config.intermediate_size)
    args.out.write_text(json.dumps(result, indent=2))


def variants_for(trunk: ft.FusedTransformer, ids: torch.Tensor, mask: torch.Tensor, streams: list) -> dict:
    """name → forward of every variant at one shape."""
    backends = torch.nn.attention.SDPBackend
    variants = {
        "shipped (masked)": lambda: trunk(ids, mask),
        "nomask": lambda: trunk(ids, mask, True),
        "residual-epilogue": lambda: residual_epilogue(trunk, ids, mask),
    }
    kn = {id(linear): linear.weight.t().contiguous() for layer in trunk.layers
          for linear in (layer.qkv, layer.out, layer.fc2)}  # fmt: skip
    variants["static-norms"] = lambda: static_norms(trunk, ids, mask)
    variants["static-norms nomask"] = lambda: static_norms(trunk, ids, None)
    variants["bias-in-norm"] = lambda: bias_in_norm(trunk, ids, mask, {})
    variants["bias-in-norm nomask"] = lambda: bias_in_norm(trunk, ids, None, {})
    variants["bias-in-norm nomask kn-weights"] = lambda: bias_in_norm(trunk, ids, None, kn)
    variants["nomask flash"] = lambda: _with_backend(backends.FLASH_ATTENTION, trunk, ids, mask, True)
    variants["nomask cudnn"] = lambda: _with_backend(backends.CUDNN_ATTENTION, trunk, ids, mask, True)
    every, residual = kn_layout(trunk, ("qkv", "out", "fc1", "fc2")), kn_layout(trunk, ("out", "fc2"))
    variants["nomask kn all"] = lambda: every(ids, mask, True)
    variants["nomask kn out+fc2"] = lambda: residual(ids, mask, True)
    variants["masked kn all"] = lambda: every(ids, mask)
    if ids.shape[0] > 1:
        variants["two-streams"] = lambda: two_streams(trunk, ids, mask, streams)
        variants["two-streams nomask"] = lambda: two_streams(lambda i, m: trunk(i, m, True), ids, mask, streams)
    for name, backend in (("sdpa-efficient", backends.EFFICIENT_ATTENTION), ("sdpa-math", backends.MATH)):
        variants[name] = lambda b=backend: _with_backend(b, trunk, ids, mask)
    return variants


def _with_backend(
    backend: object, trunk: ft.FusedTransformer, ids: torch.Tensor, mask: torch.Tensor, full: bool = False
) -> torch.Tensor:
    with torch.nn.attention.sdpa_kernel(backend):
        return trunk(ids, mask, full)


if __name__ == "__main__":
    main()
