"""A real nginx balancer over replicas that are not running: it answers 502 for them, itself, in milliseconds."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from builder.serving.balancer_plan import ReplicaPorts, plan_nginx, plan_ports
from builder.serving.nginx import Nginx
from builder.serving.server import free_port


@contextmanager
def idle_balancer(prefix: Path, replicas: int = 2) -> Iterator[tuple[int, int, tuple[ReplicaPorts, ...]]]:
    """nginx on (HTTP port, gRPC port) over `replicas` that nothing serves; stopped at the end."""
    http_port, grpc_port = free_port(), free_port()
    ports = plan_ports(replicas, {http_port, grpc_port}, free_port)
    nginx = Nginx(plan_nginx(prefix, http_port, grpc_port, ports, set(range(replicas)), generation=1)).start()
    try:
        yield http_port, grpc_port, ports
    finally:
        nginx.stop()
