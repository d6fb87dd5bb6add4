"""In-process GPU benchmarks and fidelity for the python-torch engine (issue 6; fidelity for issue 4).

Runs on a CUDA host (or `--smoke` on a CPU with tiny configs to check the script itself).
Prints tables and writes JSON to --out. Every number comes from this run; nothing is estimated.

From the repository's root:
  python -m scripts.bench.gpu_bench --out $OUT [--minilm PATH] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from builder.common.backend_files import backend_module
from builder.common.corpus import corpus_sentences
from scripts.bench.timing import graph_of, kernel_table, time_cpu, time_gpu

ROOT = Path(__file__).resolve().parents[2]
# The python-torch backend's own files, imported as the server imports them. The backend helper's stub settings
# (one thread per pool, tokenizers' pool off, one compile thread) stay in this process, as they always did here.
fused_transformer = backend_module("fused_transformer", stub_environment=True)
torch_model = backend_module("torch_model", stub_environment=True)
torch_text_model = backend_module("torch_text_model", stub_environment=True)
fuse = fused_transformer.fuse
Runner, apply_precision, build_forward = torch_model.Runner, torch_model.apply_precision, torch_model.build_forward
sentence_embedding = torch_text_model.sentence_embedding


def full_size_models(smoke: bool) -> dict[str, torch.nn.Module]:
    """Random-weight BERT-base, DistilBERT and GPT-2 (base models, no heads), seeded."""
    from transformers import BertConfig, BertModel, DistilBertConfig, DistilBertModel, GPT2Config, GPT2Model

    small = {"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 2, "intermediate_size": 128}
    torch.manual_seed(0)
    configs = {
        "bert-base": BertModel(BertConfig(**small) if smoke else BertConfig(), add_pooling_layer=False),
        "distilbert": DistilBertModel(
            DistilBertConfig(n_layers=2, dim=64, n_heads=2, hidden_dim=128) if smoke else DistilBertConfig()
        ),
        "gpt2": GPT2Model(GPT2Config(n_layer=2, n_embd=64, n_head=2) if smoke else GPT2Config()),
    }
    for model in configs.values():
        model.config._attn_implementation = "sdpa"
    return {name: m.eval() for name, m in configs.items()}


def hf_forward(model: torch.nn.Module) -> object:
    """The Hugging Face forward as fn(ids, mask)."""
    return lambda ids, mask: model(input_ids=ids, attention_mask=mask)


def pooled_forward(model: torch.nn.Module, kernels: str) -> object:
    """What the --single-model engine runs for feature extraction: trunk, then pooling on the GPU."""
    return build_forward(model, "feature-extraction", kernels, finish=sentence_embedding)


def bench_model(name: str, model: torch.nn.Module, shapes: list[tuple[int, int]], repeats: int) -> list[dict]:
    """Eager FP32/FP16 and plain CUDA-graph FP16 (baselines), the fused trunks, and the engine end to end."""
    import copy

    device = torch.device("cuda")
    rows = []
    variants: dict[str, torch.nn.Module] = {"fp32": copy.deepcopy(model).to(device)}
    for precision in ("fp16", "hybrid", "bf16"):
        variants[precision] = apply_precision(copy.deepcopy(model), precision).to(device)
    for batch, seq in shapes:
        ids = torch.randint(1000, 20000, (batch, seq), device=device)
        mask = torch.ones_like(ids)
        mask[0, -1] = 0  # one padded token: the masked path, as served (bucket padding)
        host_ids, host_mask = ids.cpu().numpy(), mask.cpu().numpy()

        def eager(m: torch.nn.Module, ids: torch.Tensor = ids, mask: torch.Tensor = mask) -> object:
            def run() -> None:
                with torch.inference_mode():
                    m(input_ids=ids, attention_mask=mask)

            return run

        timings = {
            "eager fp32": time_gpu(eager(variants["fp32"]), repeats),
            "eager fp16": time_gpu(eager(variants["fp16"]), repeats),
            "cuda-graph fp16 (plain)": time_gpu(graph_of(hf_forward(variants["fp16"]), ids, mask), repeats),
        }
        trunks = {
            "fused trunk, add+norm eager": fuse(variants["fp16"], gelu_epilogue=False, compile_norms=False),
            "fused trunk": fuse(variants["fp16"], gelu_epilogue=False),
            "fused-tanh-gelu trunk": fuse(variants["fp16"], gelu_epilogue=True),
        }
        for label, trunk in trunks.items():
            timings[f"cuda-graph fp16 {label}"] = time_gpu(graph_of(trunk, ids, mask), repeats)
        full = torch.ones_like(mask)  # every row batch × seq real tokens: the mask-free path
        for label in ("fused trunk", "fused-tanh-gelu trunk"):
            trunk = trunks[label]
            timings[f"cuda-graph fp16 {label}, full rows"] = time_gpu(
                graph_of(lambda i, m, t=trunk: t(i, m, True), ids, full), repeats
            )
        for precision, kernels in (
            ("fp16", "fused"),
            ("fp16", "fused-tanh-gelu"),
            ("hybrid", "fused"),
            ("bf16", "fused"),
        ):
            runner = Runner(pooled_forward(variants[precision], kernels), device, [batch], [seq], batch * seq)
            # the engine's path end to end: host arrays in, host embeddings out (copies and sync included)
            timings[f"engine {precision} {kernels} (host in/out)"] = time_gpu(
                lambda r=runner, i=host_ids, m=host_mask: r(i, m), repeats
            )
            if precision == "fp16":
                full_mask = np.ones_like(host_mask)
                timings[f"engine {precision} {kernels} (host in/out), full rows"] = time_gpu(
                    lambda r=runner, i=host_ids, m=full_mask: r(i, m), repeats
                )
            del runner
        for variant, ms in timings.items():
            rows.append(
                {
                    "model": name,
                    "batch": batch,
                    "seq": seq,
                    "variant": variant,
                    "median_ms": ms,
                    "seq_per_s": batch / ms * 1000,
                }
            )
    return rows


def cpu_anchor(models: dict[str, torch.nn.Module], threads: int) -> list[dict]:
    """CPU FP32 at 1 × 128, for the GPU-vs-CPU speedup."""
    torch.set_num_threads(threads)
    rows = []
    for name, model in models.items():
        ids = torch.randint(1000, 20000, (1, 128))

        def run(m: torch.nn.Module = model, ids: torch.Tensor = ids) -> None:
            with torch.inference_mode():
                m(input_ids=ids, attention_mask=torch.ones_like(ids))

        rows.append(
            {
                "model": name,
                "batch": 1,
                "seq": 128,
                "variant": f"cpu fp32 ({threads} threads)",
                "median_ms": time_cpu(run, 10),
                "seq_per_s": 1000 / time_cpu(run, 3),
            }
        )
    return rows


def token_batches(tokenizer: object, texts: list[str], batch: int, max_len: int) -> list[dict]:
    """Real text tokenized in padded batches."""
    return [
        tokenizer(texts[i : i + batch], padding=True, truncation=True, max_length=max_len, return_tensors="pt")
        for i in range(0, len(texts), batch)
    ]


def random_batches(real: list[dict], vocab: int, seed: int) -> list[dict]:
    """Random token ids with the same shapes and masks as the real batches (the seed paper's 'random inputs')."""
    gen = torch.Generator().manual_seed(seed)
    return [
        {
            "input_ids": torch.randint(1000, vocab, b["input_ids"].shape, generator=gen),
            "attention_mask": b["attention_mask"],
        }
        for b in real
    ]


def pooled(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean pooling over real tokens, L2-normalised."""
    m = mask.unsqueeze(-1).float()
    return torch.nn.functional.normalize((hidden.float() * m).sum(1) / m.sum(1).clamp(min=1e-9), dim=1)


def fidelity(name: str, model: torch.nn.Module, batches: dict[str, list[dict]]) -> list[dict]:
    """Per precision vs FP32 on the same device: per-token cosine, pooled cosine, max abs diff, NaN, NN agreement."""
    import copy

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    reference = copy.deepcopy(model).float().to(device)
    rows = []
    for precision, kernels in (
        ("fp16", "hf"), ("fp16", "fused"), ("fp16", "fused-tanh-gelu"), ("hybrid", "fused"), ("bf16", "fused"),
    ):  # fmt: skip
        variant = build_forward(
            apply_precision(copy.deepcopy(model), precision).to(device), "feature-extraction", kernels
        )
        for source, data in batches.items():
            tok_cos, pool_ref, pool_var, max_diff, nans, count = [], [], [], 0.0, 0, 0
            with torch.inference_mode():
                for b in data:
                    ids, mask = b["input_ids"].to(device), b["attention_mask"].to(device)
                    ref = reference(input_ids=ids, attention_mask=mask).last_hidden_state.float()
                    out = variant(ids, mask)
                    valid = mask.bool()
                    nans += int(torch.isnan(out[valid]).any(dim=-1).sum())
                    count += int(valid.sum())
                    tok_cos.append(torch.nn.functional.cosine_similarity(out[valid], ref[valid], dim=-1))
                    max_diff = max(max_diff, float((out[valid] - ref[valid]).abs().nan_to_num(float("inf")).max()))
                    pool_ref.append(pooled(ref, mask))
                    pool_var.append(pooled(out, mask))
            cos = torch.cat(tok_cos)
            pr, pv = torch.cat(pool_ref), torch.cat(pool_var)
            pooled_cos = (pr * pv).sum(1)
            nn_ref = (pr @ pr.T).fill_diagonal_(-2).argmax(1)
            nn_var = (pv @ pv.T).fill_diagonal_(-2).argmax(1)
            rows.append(
                {
                    "model": name,
                    "precision": precision,
                    "kernels": kernels,
                    "inputs": source,
                    "tokens": count,
                    "token_cosine_min": float(cos.nan_to_num(-1).min()),
                    "token_cosine_mean": float(cos.mean()),
                    "pooled_cosine_min": float(pooled_cos.nan_to_num(-1).min()),
                    "max_abs_diff": max_diff,
                    "nan_rate": nans / count,
                    "nn_agreement": float((nn_ref == nn_var).float().mean()),
                }
            )
    return rows


def table(rows: list[dict], columns: list[str]) -> str:
    """A Markdown table of `rows`."""

    def fmt(v: object) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r[c]) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def environment() -> dict:
    """Device and versions for the record."""
    import transformers

    return {
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "host": platform.node(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def main() -> None:
    """Speed, then fidelity; JSON and Markdown into --out."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--minilm", type=Path, help="folder of the trained all-MiniLM-L6-v2 (fidelity on real text)")
    parser.add_argument("--smoke", action="store_true", help="tiny configs, to check the script on a CPU")
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    # A served model is one per process; this one compiles the fused kernels for many models and dtypes.
    torch._dynamo.config.recompile_limit = 64
    result: dict = {"environment": environment()}
    print(json.dumps(result["environment"]), flush=True)
    models = full_size_models(args.smoke)
    gpu = torch.cuda.is_available()
    if gpu:
        speed = [
            row
            for name, model in models.items()
            for row in bench_model(name, model, [(1, 128), (32, 128)], args.repeats)
        ]
        result["speed"] = speed
        print(table(speed, ["model", "batch", "seq", "variant", "median_ms", "seq_per_s"]), flush=True)
        result["kernels"] = {}
        import copy

        bert = apply_precision(copy.deepcopy(models["bert-base"]), "fp16").cuda()
        trunk = fuse(bert, gelu_epilogue=True)
        for batch, full in ((1, False), (32, False), (32, True)):
            ids = torch.randint(1000, 20000, (batch, 128), device="cuda")
            mask = torch.ones_like(ids)
            mask[0, -1] = 0 if not full else 1
            rows = kernel_table(lambda i, m, f=full: trunk(i, m, f), ids, mask)
            label = f"bert-base fp16 fused-tanh-gelu {batch}x128{', full rows' if full else ''}"
            result["kernels"][label] = rows
            print(label, flush=True)
            print(table(rows, ["kernel", "ms_per_call", "launches"]), flush=True)
        del bert
    result["cpu"] = cpu_anchor(models, threads=torch.get_num_threads())
    print(table(result["cpu"], ["model", "batch", "seq", "variant", "median_ms"]), flush=True)
    (args.out / "gpu_bench.json").write_text(json.dumps(result, indent=2))
    if gpu or args.smoke:
        from transformers import AutoModel, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(args.minilm or ROOT / "tests" / "models" / "distilbert")
        texts = corpus_sentences()[: 64 if args.smoke else 512]
        real = token_batches(tokenizer, texts, 32, 128)
        batches = {"real text": real, "random ids": random_batches(real, 30000, 0)}
        rows = []
        if args.minilm:
            rows += fidelity("minilm (trained)", AutoModel.from_pretrained(args.minilm).eval(), batches)
        for name, model in models.items():
            rows += fidelity(name, model, batches)
        result["fidelity"] = rows
        print(
            table(
                rows,
                [
                    "model",
                    "precision",
                    "kernels",
                    "inputs",
                    "token_cosine_min",
                    "token_cosine_mean",
                    "pooled_cosine_min",
                    "max_abs_diff",
                    "nan_rate",
                    "nn_agreement",
                ],
            ),
            flush=True,
        )
    (args.out / "gpu_bench.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
