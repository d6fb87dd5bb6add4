"""Scratch probe (as it ran, since reformatted): nginx and HAProxy 2.6 before one replica, their c1 p50 overhead.

python scripts/results/cpu_balancer_2026-12-02_0658/haproxy/haproxy_probe.py MODEL BLOCKS PER_BLOCK   (needs haproxy)
"""

import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[4]))  # the repository root
from builder.repository.pipeline import make_repo
from builder.serving.replicas import ReplicaSet
from builder.serving.server import free_port
from scripts.bench.bench_balancer import identity_repo, overhead
from scripts.probes.balancer_probe import cpu_seconds, nginx_pids

CONFIG = """global
    maxconn 1024
    nbthread 1
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend grpc_in
    bind 127.0.0.1:{gport} proto h2
    default_backend grpc_out
frontend http_in
    bind 127.0.0.1:{hport}
    default_backend http_out
backend grpc_out
    balance leastconn
    server r0 {grpc} proto h2
backend http_out
    balance leastconn
    http-reuse always
    server r0 {http}
"""
model = sys.argv[1]
blocks, per = int(sys.argv[2]), int(sys.argv[3])
work = Path(tempfile.mkdtemp())
if model == "identity":
    repo = identity_repo(work / "identity")
else:
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
with ReplicaSet(repo, 1) as one:
    r = one.replicas[0]
    gport, hport = free_port(), free_port()
    cfg = work / "haproxy.cfg"
    cfg.write_text(CONFIG.format(gport=gport, hport=hport, grpc=r.ports.address("grpc"), http=r.ports.address("http")))
    ha = subprocess.Popen(["haproxy", "-f", str(cfg)])
    time.sleep(1)
    try:
        for protocol in ("grpc", "http"):
            direct = r.ports.address(protocol)
            for name, url in (
                ("nginx", one.grpc_url if protocol == "grpc" else one.http_url),
                ("haproxy", f"127.0.0.1:{gport if protocol == 'grpc' else hport}"),
            ):
                pids = [ha.pid] if name == "haproxy" else list(nginx_pids(one.prefix)[1])
                c0 = cpu_seconds(pids)
                row = asyncio.run(overhead(direct, url, model, protocol, blocks, per))
                row["balancer"] = name
                row["cpu_us_per_request"] = (cpu_seconds(pids) - c0) / (blocks * per + 50) * 1e6
                print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
    finally:
        ha.terminate()
        ha.wait()
