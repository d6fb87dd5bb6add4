"""Triton's endpoints as tritonbuild runs them: ports, health paths and the server flags every start shares.

`tritonbuild serve` (builder/serving/server.py) and the cluster manifests of `tritonbuild deploy` both read these, so a
probe, a Service port or a load balancer's health check cannot drift from the flags the server was started with.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Endpoint:
    """One listening port of tritonserver: its name in manifests, default number and the flag that sets it."""

    name: str
    port: int
    flag: str

    def arg(self, port: int | None = None) -> str:
        """The tritonserver option that listens on `port` (this endpoint's default when None)."""
        return f"{self.flag}={self.port if port is None else port}"


HTTP = Endpoint("http", 8000, "--http-port")
GRPC = Endpoint("grpc", 8001, "--grpc-port")
METRICS = Endpoint("metrics", 8002, "--metrics-port")
ENDPOINTS = (HTTP, GRPC, METRICS)

# KServe's v2 protocol health endpoints, served on the HTTP port. With --strict-readiness=true "ready" means
# every model is ready, not only the server.
LIVE_PATH = "/v2/health/live"
READY_PATH = "/v2/health/ready"
METRICS_PATH = "/metrics"

EXIT_TIMEOUT_S = 10  # how long tritonserver waits for in-flight requests after SIGTERM/SIGINT before it exits
SERVER_FLAGS = (
    "--strict-readiness=true",
    "--exit-on-error=true",  # a model that fails to load stops the server instead of serving the rest
    "--disable-auto-complete-config",  # tritonbuild writes complete configs; the server must not amend them
    f"--exit-timeout-secs={EXIT_TIMEOUT_S}",
)
