"""What the load balancer in front of N replicas looks like, as data: ports, upstream lists, the nginx config.

Pure functions only: `plan_ports` chooses every replica's ports (a port source is passed in), `plan_nginx`
turns the replicas and which of them are ready into the config that builder/serving/nginx.py renders and
runs. Open-source nginx has no active health checks, so readiness is decided outside it: a replica that is
not ready is listed as `down` (no traffic, and the upstream stays valid when none is ready).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

from builder.common.errors import ServerError

GENERATION_PATH = "/tritonbuild/generation"  # answered by nginx itself: which config its workers run


@dataclass(frozen=True)
class ReplicaPorts:
    """The three ports of one replica's tritonserver, on 127.0.0.1."""

    http: int
    grpc: int
    metrics: int

    def address(self, protocol: str) -> str:
        """host:port of the replica's `protocol` endpoint (http or grpc)."""
        return f"127.0.0.1:{self.http if protocol == 'http' else self.grpc}"


@dataclass(frozen=True)
class BalancerSettings:
    """How nginx balances and retries; the defaults suit replicas on this host."""

    max_fails: int = 1  # passive health check: failed attempts within fail_timeout_s that take a replica out ...
    fail_timeout_s: int = 2  # ... for this long
    connect_timeout_s: int = 1  # a local replica that does not accept within a second is gone
    read_timeout_s: int = 120  # longest silence from a replica during one request (a cold model's first batch)
    keepalive: int = 32  # idle connections per worker kept open to the replicas: no handshake per request
    workers: int = 1
    worker_connections: int = 1024
    shutdown_timeout_s: int = 30  # how long an old worker may finish its requests after a reload

    def __post_init__(self) -> None:
        numbers = (self.max_fails, self.fail_timeout_s, self.connect_timeout_s, self.read_timeout_s, self.keepalive)
        if min(*numbers, self.workers, self.worker_connections, self.shutdown_timeout_s) < 1:
            raise ServerError(f"balancer settings must be positive: {self}")


@dataclass(frozen=True)
class UpstreamServer:
    """One replica in an upstream list: `down` while it is not ready (or is being restarted)."""

    address: str
    down: bool


@dataclass(frozen=True)
class Frontend:
    """One listening port of the balancer and the upstream it spreads over (least connections)."""

    protocol: str  # http (proxy_pass, HTTP/1.1 to the replicas) or grpc (grpc_pass, HTTP/2)
    port: int
    upstream: str  # the upstream block's name
    servers: tuple[UpstreamServer, ...]
    retry_on: tuple[str, ...]  # proxy_next_upstream / grpc_next_upstream conditions

    @property
    def replicas(self) -> str:
        """Every replica's address (ready or not), the value of builder.contract.balancer.REPLICAS_HEADER."""
        return ",".join(s.address for s in self.servers)


# Inference is idempotent, so a request that failed on one replica may be sent to the next (`non_idempotent`:
# nginx retries POSTs only when told). HTTP also retries a replica's 502/503 (a server shutting down);
# a gRPC error arrives as HTTP 200 with a grpc-status trailer, so only connection errors and timeouts apply.
RETRY_ON = {
    "http": ("error", "timeout", "http_502", "http_503", "non_idempotent"),
    "grpc": ("error", "timeout", "non_idempotent"),
}


@dataclass(frozen=True)
class NginxConfig:
    """Everything nginx.conf.j2 writes: nginx's own folder, the frontends and the settings."""

    prefix: Path  # pid, logs, temp files and the config itself live here (no root paths)
    frontends: tuple[Frontend, ...]
    settings: BalancerSettings
    generation: int  # increases with every change; GENERATION_PATH answers it once a reload took effect


def plan_ports(count: int, reserved: Collection[int], free_port: Callable[[], int]) -> tuple[ReplicaPorts, ...]:
    """Ports for `count` replicas: drawn from `free_port`, all distinct, none of them in `reserved`.

    A port source may hand out the same number twice (it was free each time it was asked), so duplicates
    are drawn again; a source that keeps repeating itself is an error, not a loop.
    """
    if count < 1:
        raise ServerError(f"--replicas must be at least 1, not {count}")
    taken = set(reserved)
    ports: list[int] = []
    for _ in range(3 * count * 10):
        if len(ports) == 3 * count:
            break
        port = free_port()
        if port not in taken:
            taken.add(port)
            ports.append(port)
    if len(ports) < 3 * count:
        raise ServerError(f"found only {len(ports)} free ports for {count} replicas (3 each)")
    return tuple(ReplicaPorts(*ports[i : i + 3]) for i in range(0, len(ports), 3))


def plan_nginx(
    prefix: Path,
    http_port: int,
    grpc_port: int,
    replicas: Sequence[ReplicaPorts],
    ready: Collection[int],
    generation: int,
    settings: BalancerSettings | None = None,
) -> NginxConfig:
    """The balancer's config: every replica listed, those not in `ready` (indices into `replicas`) down."""
    if not replicas:
        raise ServerError("a balancer needs at least one replica")
    if not set(ready) <= set(range(len(replicas))):
        raise ServerError(f"ready replicas {sorted(ready)} are not all among the {len(replicas)} replicas")
    frontends = tuple(
        Frontend(
            protocol,
            port,
            f"triton_{protocol}",
            tuple(UpstreamServer(r.address(protocol), i not in ready) for i, r in enumerate(replicas)),
            RETRY_ON[protocol],
        )
        for protocol, port in (("http", http_port), ("grpc", grpc_port))
    )
    return NginxConfig(prefix, frontends, settings or BalancerSettings(), generation)
