"""Several GPUs in one server (issue 18): the same deployment placed on one GPU and on every GPU, same run.

Builds the random-weight BERT-base classifier behind the 3-step ensemble (python-torch, fp16,
fused-tanh-gelu, h200 profile) once per placement (`make-repo --gpus 0`, then `--gpus 0,1,...` when the
host has more GPUs), serves each with the bundled tritonserver in turn, and measures with perf_analyzer over
gRPC with 128-token texts: the model alone at batch 32 and the ensemble with one text per request, the
concurrency scaled with the GPUs. Prints and writes the scaling of every point (target: ≥ 1.8× on two GPUs).

From the repository's root:
  python -m scripts.bench.gpu_multi_bench --out DIR --tokenizer TOKENIZER_DIR [--gpu h200]
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch

from builder.precision.fidelity import FidelityOptions
from builder.repository.options import ServingOptions
from builder.repository.pipeline import make_repo
from builder.serving.server import TritonServer
from client.generators.measure import MeasurementConfig
from client.records import ResultStore
from client.report.tables import markdown_table
from client.sweep import SweepConfig, run_sweep
from client.transport.text_client import ClientConfig, ClientError
from scripts.bench.gpu_serve_bench import PA, SEQ, bert_base, environment  # the same model and record


def points(name: str, gpus: int) -> list[tuple[str, int, int]]:
    """(model, batch, concurrency): the model alone at batch 32, the ensemble at batch 1; load scaled with GPUs."""
    return [(f"{name}_model", 32, 4 * gpus), (f"{name}_model", 32, 8 * gpus), (name, 1, 64 * gpus)]


def measure(model_dir: Path, placement: tuple[int, ...], args: argparse.Namespace, store: ResultStore) -> None:
    """Build the deployment for `placement`, serve it alone, measure its points."""
    name = f"bert{len(placement)}g"
    repo = args.work / name
    make_repo(str(model_dir), "text-classification", name, "python-torch", args.gpu, repo, force=True,
              trust_remote_code=False, echo=print, precision="fp16", fidelity=FidelityOptions(enabled=False),
              serving=ServingOptions("fused-tanh-gelu", gpus=placement))  # fmt: skip
    window = MeasurementConfig(window_s=args.window_s, stability_pct=10, stable_windows=3, max_trials=6, warmup_s=1.0)
    log = args.out / f"tritonserver_{name}.log"
    with TritonServer(repo, log_path=log, startup_timeout_s=420) as server:
        for model, batch, concurrency in points(name, len(placement)):
            config = SweepConfig(ClientConfig(server.grpc_url, model), (batch,), (SEQ,), concurrency=(concurrency,),
                                 measurement=window, variant=f"{len(placement)} GPU", generator=PA,
                                 metrics_url=server.metrics_url)  # fmt: skip
            try:
                run_sweep(config, store, echo=print, repo=repo, progress=False)
            except ClientError as exc:
                print(f"{model} c{concurrency}: {exc.message}", flush=True)


def main() -> None:
    """One GPU, then every GPU; the scaling of each point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tokenizer", type=Path, required=True)
    parser.add_argument("--gpu", default="h200")
    parser.add_argument("--work", type=Path, default=Path("/tmp/gpu-multi"))
    parser.add_argument("--window-s", type=float, default=2.0)
    args = parser.parse_args()
    args.gpus, args.precision, args.kernels = "", "fp16", "fused-tanh-gelu"
    args.out.mkdir(parents=True, exist_ok=True)
    count = torch.cuda.device_count()
    model_dir = bert_base(args.work / "bert-base-cls", args.tokenizer, classifier=True, smoke=False)
    store = ResultStore(args.out / "sweep")
    placements = [(0,)] + ([tuple(range(count))] if count > 1 else [])
    for placement in placements:
        measure(model_dir, placement, args, store)
    records = store.load()
    shutil.copy(store.path, args.out / "results.jsonl")
    print(markdown_table(records), flush=True)
    found = {}  # (GPUs, point index) → seq/s
    for placement in placements:
        for index, (model, _, concurrency) in enumerate(points(f"bert{len(placement)}g", len(placement))):
            record = next((r for r in records if (r.model, r.concurrency) == (model, concurrency)), None)
            if record is not None:
                found[(len(placement), index)] = record.throughput_seq_per_s
    scaling = {}
    n = len(placements[-1])
    for index, (model, batch, concurrency) in enumerate(points("bert", 1)):
        if n > 1 and (1, index) in found and (n, index) in found:
            scaling[f"{model}, batch {batch}, concurrency {concurrency} per GPU"] = (
                found[(n, index)] / found[(1, index)]
            )
    for point, ratio in scaling.items():
        print(f"{point}: {n} GPUs / 1 GPU = {ratio:.2f} (target ≥ 1.8)", flush=True)
    summary = {"environment": environment(args), "gpus": count, "placements": placements, "scaling": scaling}
    (args.out / "multi_summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    if count < 2:
        print("one GPU on this host: the two-GPU placement and its scaling need a host with more")


if __name__ == "__main__":
    main()
