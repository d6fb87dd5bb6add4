"""Serve python-torch repositories with Triton on a GPU and measure them end to end (issue 6).

Builds random-weight BERT-base models (a text classifier behind the three-step ensemble, and a
single-model feature extractor) and a MiniLM-sized one with engine python-torch on the h100 profile
and a BERT uncased tokenizer; starts tritonserver (TRITONBUILD_TRITONSERVER or nvidia-pytriton);
checks the served embeddings against FP32 PyTorch on real text; sweeps the bare model at batch 32
with tritonbench and the single models at batch 1 with tritonbench and perf_analyzer; times the
same models in-process for the served/in-process ratio and the batch-1 phases.

  python scripts/gpu_serve_bench.py --out DIR --tokenizer TOKENIZER_DIR [--precision fp16]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "templates" / "python")]

from gpu_bench import time_cpu  # noqa: E402

from builder.pipeline import make_repo  # noqa: E402
from builder.plan import ServingOptions  # noqa: E402
from builder.server import TritonServer  # noqa: E402
from client.measure import MeasurementConfig  # noqa: E402
from client.records import ResultStore  # noqa: E402
from client.report import markdown_table  # noqa: E402
from client.sweep import SweepConfig, run_sweep  # noqa: E402
from client.text_client import ClientConfig, ClientError, TextClient  # noqa: E402
from client.texts import corpus_sentences  # noqa: E402

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
SMOKE_CONFIG = {"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 2, "intermediate_size": 128}


# all-MiniLM-L6-v2's shape: the bundled model's speed without carrying its weights
MINILM_CONFIG = {"num_hidden_layers": 6, "hidden_size": 384, "num_attention_heads": 12, "intermediate_size": 1536}


def bert_base(folder: Path, tokenizer: Path, classifier: bool, smoke: bool, shape: dict | None = None) -> Path:
    """A random-weight BERT-base (classifier or bare encoder; or `shape`) with a 30522-entry uncased tokenizer."""
    from transformers import BertConfig, BertForSequenceClassification, BertModel

    torch.manual_seed(0)
    config = BertConfig(num_labels=2, **(SMOKE_CONFIG if smoke else shape or {}))
    model = BertForSequenceClassification(config) if classifier else BertModel(config)
    model.eval().save_pretrained(folder)
    for name in TOKENIZER_FILES:
        shutil.copy(tokenizer / name, folder / name)
    return folder


def in_process_seq_per_s(model_dir: Path, precision: str, kernels: str, batch: int, seq: int) -> float:
    """The engine's own Runner at one shape, outside Triton: the ceiling the server is compared with."""
    from torch_model import Runner, apply_precision, build_forward
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(model_dir, attn_implementation="sdpa").eval()
    model = apply_precision(model, precision).to(DEVICE)
    runner = Runner(build_forward(model, "text-classification", kernels), DEVICE, batch, [seq], batch * seq)
    ids = torch.randint(1000, 20000, (batch, seq)).numpy()
    mask = np.ones_like(ids)
    # the runner returns host tensors, so it has synchronised when it returns: wall time is its time
    return batch / time_cpu(lambda: runner(ids, mask), 200) * 1e3


def batch1_phases(model_dir: Path, precision: str, kernels: str, seq: int) -> dict:
    """What one batch-1 request of the single model costs inside its stub, phase by phase, outside Triton."""
    import random

    import tokenizer_model
    from torch_model import Runner, apply_precision, build_forward
    from torch_text_model import sentence_embedding
    from transformers import AutoModel

    from client.inputs import TextSource, load_tokenizer

    tokenizer = load_tokenizer(model_dir / "tokenizer.json")
    text = TextSource(tokenizer).text_of_length(seq, random.Random(0))
    tokenizer.no_padding()
    items = np.array([text.encode()], dtype=object)

    def tokenize() -> tuple[np.ndarray, np.ndarray]:  # what tokenizer_model.encode does
        encodings = tokenizer.encode_batch_fast(tokenizer_model.decode_texts(items, 1 << 20))
        return tokenizer_model.pad_to_bucket([e.ids for e in encodings], 0, [seq])

    model = apply_precision(AutoModel.from_pretrained(model_dir, attn_implementation="sdpa").eval(), precision)
    runner = Runner(build_forward(model.to(DEVICE), "feature-extraction", kernels, sentence_embedding), DEVICE, 1,
                    [seq], seq)  # fmt: skip
    ids, mask = tokenize()
    return {
        "tokenize_us": time_cpu(tokenize, 300) * 1e3,
        "runner_us": time_cpu(lambda: runner(ids, mask), 300) * 1e3,
        "request_us": time_cpu(lambda: runner(*tokenize()), 300) * 1e3,
    }


def endpoint_fidelity(server: TritonServer, endpoint: str, model_dir: Path, texts: list[str]) -> dict:
    """Cosine of the served embeddings against FP32 PyTorch (TF32 off) on real text."""
    from transformers import AutoModel, AutoTokenizer

    torch.backends.cuda.matmul.allow_tf32 = False
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir, dtype=torch.float32).eval().to(DEVICE)
    batch = tokenizer(texts, padding=True, truncation=True, max_length=512, return_tensors="pt").to(DEVICE)
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    reference = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=1).cpu().numpy()
    with TextClient(ClientConfig(server.grpc_url, endpoint)) as client:
        served = np.concatenate([client.embed(texts[i : i + 32]) for i in range(0, len(texts), 32)])
    cosine = (served * reference).sum(1)
    return {
        "texts": len(texts),
        "cosine_min": float(cosine.min()),
        "cosine_mean": float(cosine.mean()),
        "nan": int((served != served).sum()),
    }


def main() -> None:
    """Build, serve, check, sweep, report."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tokenizer", type=Path, required=True, help="folder with a BERT uncased tokenizer")
    parser.add_argument("--precision", default="fp16")
    parser.add_argument("--kernels", default="fused", help="python-torch kernels (make-repo --kernels)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/gpu-serve"))
    parser.add_argument("--smoke", action="store_true", help="tiny models, cpu profile, short sweeps (CPU check)")
    args = parser.parse_args()
    # A served model is one per process; this one compiles the fused kernels for many models and dtypes.
    torch._dynamo.config.recompile_limit = 64
    gpu = "cpu" if args.smoke else "h100"
    repo, results = args.work / "repo", args.out / "sweep"
    bert = bert_base(args.work / "bert-base-cls", args.tokenizer, classifier=True, smoke=args.smoke)
    bertfe = bert_base(args.work / "bert-base", args.tokenizer, classifier=False, smoke=args.smoke)
    minilm = bert_base(args.work / "minilm", args.tokenizer, classifier=False, smoke=args.smoke, shape=MINILM_CONFIG)
    single = ServingOptions(args.kernels, single_model=True, max_queue_delay_us=0)
    deployments = (
        # the three-step ensemble; its bert_model alone is the batch-32 throughput point
        (bert, "text-classification", "bert", ServingOptions(args.kernels)),
        # the latency deployment: one Python stub, no batching delay; and the same at MiniLM's size
        (bertfe, "feature-extraction", "bertfe1", single),
        (minilm, "feature-extraction", "minilm1", single),
    )
    for model, task, name, serving in deployments:
        make_repo(
            str(model),
            task,
            name,
            "python-torch",
            gpu,
            repo,
            force=True,
            trust_remote_code=False,
            echo=print,
            precision=args.precision,
            serving=serving,
        )
    summary: dict = {
        "precision": args.precision,
        "kernels": args.kernels,
        "in_process_seq_per_s_32x128": in_process_seq_per_s(bert, args.precision, args.kernels, 32, 128),
    }
    for name, folder in (("bertfe1", bertfe), ("minilm1", minilm)):
        summary[f"{name}_in_process_b1"] = batch1_phases(folder, args.precision, args.kernels, 128)
    print(json.dumps(summary), flush=True)
    seconds = 0.5 if args.smoke else 2.0
    window = MeasurementConfig(window_s=seconds, stability_pct=10, stable_windows=3, max_trials=6, warmup_s=seconds)
    with TritonServer(repo, log_path=args.out / "tritonserver.log", startup_timeout_s=360) as server:
        store = ResultStore(results)
        tb, pa = "tritonbench", "perf_analyzer"  # batch 1 also through NVIDIA's C++ client: less client overhead
        plan = (
            ("bert_model", 32, (1, 2, 4, 8), tb),
            ("bertfe1", 1, (1, 2, 4, 8), tb),
            ("bertfe1", 1, (1,), pa),
            ("bertfe1_model", 1, (1,), pa),  # the same model without the ensemble in front
            ("minilm1", 1, (1,), tb),
            ("minilm1", 1, (1,), pa),
            ("bert", 1, (1,), tb),
        )
        for model, batch, levels, engine in plan:  # the bare model first: it needs no BYTES tensors
            config = SweepConfig(
                ClientConfig(server.grpc_url, model),
                (batch,),
                (128,),
                concurrency=levels,
                measurement=window,
                variant=args.precision,
                engine=engine,
                metrics_url=server.metrics_url,
            )
            try:
                run_sweep(config, store, echo=print, repo=repo, progress=False)
            except ClientError as exc:
                summary.setdefault("errors", {})[model] = exc.message
                print(f"{model}: {exc.message}", flush=True)
        for endpoint in ("bertfe1",):
            try:
                summary[f"endpoint_fidelity_{endpoint}"] = endpoint_fidelity(
                    server, endpoint, bertfe, corpus_sentences()[:256]
                )
            except ClientError as exc:
                summary.setdefault("errors", {})[f"endpoint_fidelity_{endpoint}"] = exc.message
    records = store.load()
    shutil.copy(store.path, args.out / "results.jsonl")  # the report is drawn from it afterwards
    print(markdown_table(records), flush=True)
    best = max((r for r in records if r.model == "bert_model"), key=lambda r: r.throughput_seq_per_s)
    summary["served_model_only_best_seq_per_s"] = best.throughput_seq_per_s
    summary["served_over_in_process"] = best.throughput_seq_per_s / summary["in_process_seq_per_s_32x128"]
    for model, _, _, engine in plan:
        b1 = [r for r in records if (r.model, r.engine, r.batch_size, r.concurrency) == (model, engine, 1, 1)]
        if b1:
            summary[f"{model}_b1_c1_p50_ms_{engine}"] = b1[0].latency_p50_ms
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
