"""The endpoint facts that `serve` and the cluster manifests share."""

from pathlib import Path

from builder.serving.endpoints import ENDPOINTS, GRPC, HTTP, METRICS, SERVER_FLAGS
from builder.serving.server import TritonServer


def test_ports_and_names_are_distinct():
    assert len({e.port for e in ENDPOINTS}) == len({e.name for e in ENDPOINTS}) == len({e.flag for e in ENDPOINTS}) == 3


def test_the_bundled_server_is_started_with_the_shared_flags(tmp_path):
    server = TritonServer(tmp_path, http_port=18000, grpc_port=18001, metrics_port=18002)
    try:
        command = server.command(Path("/backends"), Path("/bundle"))
    finally:
        server.close()
    assert {"--http-port=18000", "--grpc-port=18001", "--metrics-port=18002"} <= set(command)
    assert set(SERVER_FLAGS) <= set(command)
    assert HTTP.arg() == "--http-port=8000" and GRPC.arg(9) == "--grpc-port=9" and METRICS.arg().endswith("8002")
