"""Scratch probe (issue 17): nginx directives that might make its gRPC proxying cheaper, on one MiniLM replica.

Each variant edits templates/nginx.conf.j2 in place for one ReplicaSet of one replica (restored at the end) and
measures the gRPC p50 overhead with scripts.bench.bench_balancer's alternating blocks, two rounds: the shipped
config, `worker_priority -10`, `grpc_buffer_size 64k`, `http2_chunk_size 64k`. Kept as it ran, from the root:
    PYTHONPATH=. .venv/bin/python scripts/results/cpu_balancer_2026-12-02_1330/nginx_variants/variants_probe.py minilm
"""

import asyncio
import json
import sys
import tempfile
from pathlib import Path

from builder.repository.pipeline import make_repo
from builder.serving.replicas import ReplicaSet
from scripts.bench.bench_balancer import identity_repo, overhead

TEMPLATE = Path("templates/nginx.conf.j2")
original = TEMPLATE.read_text()
VARIANTS = {
    "base": lambda t: t,
    "priority-10": lambda t: t.replace("worker_processes", "worker_priority -10;\nworker_processes", 1),
    "grpcbuf64k": lambda t: t.replace("grpc_pass grpc://", "grpc_buffer_size 64k;\n            grpc_pass grpc://"),
    "chunk64k": lambda t: t.replace("    access_log off;", "    access_log off;\n    http2_chunk_size 64k;"),
}
work = Path(tempfile.mkdtemp())
model = sys.argv[1]
if model == "minilm":
    repo = work / "minilm"
    make_repo(
        "minilm",
        "feature-extraction",
        "minilm",
        "python-onnxruntime",
        "cpu",
        repo,
        force=False,
        trust_remote_code=False,
        echo=lambda _: None,
    )
    blocks, per = 10, 50
else:
    repo = identity_repo(work / "identity")
    blocks, per = 6, 300
try:
    for rnd in range(2):
        for name, edit in VARIANTS.items():
            TEMPLATE.write_text(edit(original))
            with ReplicaSet(repo, 1) as one:
                r = asyncio.run(
                    overhead(one.replicas[0].ports.address("grpc"), one.grpc_url, model, "grpc", blocks, per)
                )
                print(
                    json.dumps(
                        {
                            "round": rnd,
                            "variant": name,
                            "overhead": round(r["overhead_p50_ms"], 3),
                            "blocks": round(r["overhead_median_of_blocks_ms"], 3),
                            "direct": round(r["direct_p50_ms"], 3),
                        }
                    ),
                    flush=True,
                )
finally:
    TEMPLATE.write_text(original)
