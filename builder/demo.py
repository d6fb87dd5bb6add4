"""The README's first command: MiniLM → repository → local server → queries → short sweep → report."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from builder.repository.pipeline import make_repo
from builder.serving.server import TritonServer

QUERIES = (
    "Triton serves many models behind one HTTP and gRPC endpoint.",
    "An inference server can host several neural networks at once.",
    "The cat slept on the warm windowsill all afternoon.",
)


def run_demo(output: Path, results: Path, window_s: float, echo: Callable[[str], None]) -> None:
    """Build, serve, query, sweep and report; everything lands in `output` and `results`."""
    from client.generators.measure import MeasurementConfig
    from client.records import ResultStore
    from client.report.report import write_report
    from client.report.tables import markdown_table
    from client.sweep import SweepConfig, run_sweep
    from client.transport.text_client import ClientConfig, TextClient

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
    store = ResultStore(results)
    store.ensure_writable()
    store.path.unlink()  # the demo reports this run only
    echo("starting the bundled tritonserver ...")
    with TritonServer(output, log_path=results / "tritonserver.log") as server:
        echo(f"ready: gRPC {server.grpc_url}, HTTP {server.http_url}")
        with TextClient(ClientConfig(server.grpc_url, "minilm")) as client:
            embeddings = client.embed(list(QUERIES))
        echo(f"embeddings {embeddings.shape}; cosine similarity of the queries:")
        sims = embeddings @ embeddings.T
        for i, text in enumerate(QUERIES):
            echo(f"  {' '.join(f'{s:5.2f}' for s in sims[i])}  {text}")
        config = SweepConfig(
            ClientConfig(server.grpc_url, "minilm"),
            batch_sizes=(1, 8),
            seq_lens=(32,),
            concurrency=(1, 4),
            measurement=MeasurementConfig(window_s=window_s, max_trials=6),
            variant="fp32",
        )
        echo("short sweep over gRPC with real English text of exactly 32 tokens ...")
        records = run_sweep(config, store, echo=echo, repo=output)
    files = write_report(records, results / "report")
    echo(markdown_table(records))
    echo(
        f"repository: {output}\nrecords:    {store.path}\nreport:     {files.markdown} "
        f"({len(files.charts)} charts)\nserver log: {results / 'tritonserver.log'}"
    )
