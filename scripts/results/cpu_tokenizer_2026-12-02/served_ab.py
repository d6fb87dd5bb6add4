"""Scratch A/B (issue 11): the served tokenizer step at batch 1, with the plain twin ("new") and without ("old").

The tokenizer_model.py of the commit before the twin (`git show ce6d0fa:templates/python/tokenizer_model.py >
/tmp/tokab/old_tokenizer_model.py`) and of the commit that adds it (`/tmp/tokab/new_tokenizer_model.py`) in turn
as the MiniLM repository's tokenizer step, in the order old, new, new, old; per server 100 warm-up requests and
1,500 measured ones per text over gRPC, concurrency 1. Kept as it ran, from the root:
    PYTHONPATH=. .venv/bin/python scripts/results/cpu_tokenizer_2026-12-02/served_ab.py OUT.jsonl
"""

import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tritonclient.grpc as grpcclient

from builder.repository.pipeline import make_repo
from builder.serving.server import TritonServer

work = Path(tempfile.mkdtemp())
repo = work / "repo"
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
texts = {
    "plain": b"The quick brown fox jumps over the lazy dog, and then it ran away into the forest! " * 6,
    "accented": "Café crème, s'il vous plaît: the quick brown fox jumps over the lazy dog again. ".encode() * 6,
}
rows = []
for rnd, side in enumerate(["old", "new", "new", "old"]):
    shutil.copy(f"/tmp/tokab/{side}_tokenizer_model.py", repo / "minilm_tokenizer" / "1" / "model.py")
    with TritonServer(repo, models=("minilm_tokenizer",)) as server:
        client = grpcclient.InferenceServerClient(server.grpc_url)
        for kind, text in texts.items():
            x = grpcclient.InferInput("TEXT", [1, 1], "BYTES")
            x.set_data_from_numpy(np.array([[text]], dtype=object))
            for _ in range(100):
                client.infer("minilm_tokenizer", [x])
            before = client.get_inference_statistics("minilm_tokenizer").model_stats[0].inference_stats
            lat = []
            for _ in range(1500):
                s = time.perf_counter()
                client.infer("minilm_tokenizer", [x])
                lat.append(time.perf_counter() - s)
            after = client.get_inference_statistics("minilm_tokenizer").model_stats[0].inference_stats
            n = after.success.count - before.success.count
            infer = (after.compute_infer.ns - before.compute_infer.ns) / n / 1000
            row = {
                "round": rnd,
                "side": side,
                "text": kind,
                "compute_infer_us": round(infer, 1),
                "client_p50_ms": round(statistics.median(lat) * 1000, 3),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
Path(sys.argv[1]).write_text("\n".join(json.dumps(r) for r in rows) + "\n")
