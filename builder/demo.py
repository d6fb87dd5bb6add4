"""The README's first command: MiniLM → repository → local server → queries → short sweep → report."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from builder.pipeline import make_repo
from builder.server import TritonServer

QUERIES = (
    "Triton serves many models behind one HTTP and gRPC endpoint.",
    "An inference server can host several neural networks at once.",
    "The cat slept on the warm windowsill all afternoon.",
)


def run_demo(output: Path, results: Path, duration_s: float, echo: Callable[[str], None]) -> None:
    """Build, serve, query, sweep; results in `results`."""
    from client.sweep import SweepConfig, markdown_table, run_sweep
    from client.text_client import ClientConfig, TextClient

    make_repo(
        "minilm",
        "feature-extraction",
        "minilm",
        "python-onnxruntime",
        "cpu",
        output,
        force=True,
        trust_remote_code=False,
        echo=echo,
    )
    results.mkdir(parents=True, exist_ok=True)
    (results / "results.jsonl").unlink(missing_ok=True)  # the demo reports this run only
    echo("starting the bundled tritonserver ...")
    with TritonServer(output, log_path=results / "tritonserver.log") as server:
        echo(f"ready: gRPC {server.grpc_url}, HTTP {server.http_url}")
        with TextClient(ClientConfig(server.grpc_url, "minilm")) as client:
            embeddings = client.embed(list(QUERIES))
        echo(f"embeddings: {embeddings.shape}; cosine similarity of the queries:")
        sims = embeddings @ embeddings.T
        for i, text in enumerate(QUERIES):
            echo(f"  {' '.join(f'{s:5.2f}' for s in sims[i])}  {text}")
        config = SweepConfig(
            ClientConfig(server.grpc_url, "minilm"),
            batch_sizes=(1, 8),
            concurrency=(1, 4),
            duration_s=duration_s,
            warmup_s=1.0,
        )
        echo("short sweep (gRPC, real English text) ...")
        points = run_sweep(config, results, echo=echo)
    table = markdown_table(points)
    (results / "report.md").write_text(
        "# tritonbuild demo\n\nall-MiniLM-L6-v2 (bundled), engine python-onnxruntime on the CPU, "
        "bundled tritonserver.\n\n" + table
    )
    echo(table)
    best = max(points, key=lambda p: p.throughput_seq_per_s)
    echo(
        f"best: {best.throughput_seq_per_s:.0f} seq/s at batch {best.batch_size}, "
        f"concurrency {best.concurrency}; closest pair of queries cosine {np.sort(sims[0])[-2]:.2f}"
    )
    echo(
        f"repository: {output}\nresults:    {results / 'results.jsonl'}\nreport:     {results / 'report.md'}\n"
        f"server log: {results / 'tritonserver.log'}"
    )
