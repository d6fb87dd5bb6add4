"""Scratch probe (issue 17): nginx as a TCP (L4) proxy for gRPC beside the L7 gRPC proxy of `tritonbuild serve`.

One replica (the identity model or the bundled MiniLM); the balancer of `tritonbuild serve --replicas 1` (grpc_pass,
per request) and a hand-written nginx `stream {}` server (proxy_pass of the TCP stream, least connections, per
connection) in front of the same replica, each measured with scripts.bench.bench_balancer's alternating blocks,
two rounds. Needs Debian's libnginx-mod-stream (`apt-get install libnginx-mod-stream`; setup.sh does not install
it). Kept as it ran, from the repository's root:
    PYTHONPATH=. .venv/bin/python scripts/results/cpu_balancer_2026-12-02_1330/l4/l4_probe.py identity|minilm
"""

import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from builder.repository.pipeline import make_repo
from builder.serving.replicas import ReplicaSet
from builder.serving.server import free_port
from scripts.bench.bench_balancer import identity_repo, overhead

work = Path(tempfile.mkdtemp())
model = sys.argv[1]
if model == "minilm":
    repo = work / "minilm"
    make_repo("minilm", "feature-extraction", "minilm", "python-onnxruntime", "cpu", repo, force=False,
              trust_remote_code=False, echo=lambda _: None)  # fmt: skip
    blocks, per = 10, 50
else:
    repo = identity_repo(work / "identity")
    blocks, per = 6, 300
with ReplicaSet(repo, 1) as one:
    port = free_port()
    prefix = work / "l4"
    prefix.mkdir()
    (prefix / "nginx.conf").write_text(f"""
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
worker_processes 1; pid {prefix}/nginx.pid; error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
stream {{
  upstream g {{ least_conn; server {one.replicas[0].ports.address("grpc")} max_fails=1 fail_timeout=2s; }}
  server {{ listen 127.0.0.1:{port}; proxy_pass g; proxy_connect_timeout 1s; tcp_nodelay on; }}
}}
""")
    nginx = subprocess.Popen(["nginx", "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-g", "daemon off;"])
    time.sleep(1)
    try:
        for rnd in range(2):
            for name, url in (("l7", one.grpc_url), ("l4", f"127.0.0.1:{port}")):
                r = asyncio.run(overhead(one.replicas[0].ports.address("grpc"), url, model, "grpc", blocks, per))
                row = {"round": rnd, "variant": name, "overhead": round(r["overhead_p50_ms"], 3),
                       "blocks": round(r["overhead_median_of_blocks_ms"], 3),
                       "direct": round(r["direct_p50_ms"], 3)}  # fmt: skip
                print(json.dumps(row), flush=True)
    finally:
        nginx.terminate()
        nginx.wait()
