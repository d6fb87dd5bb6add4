"""Which servers a sweep talks to: the URLs its requests go to, and the servers whose statistics it reads.

A sweep may spread its requests over several URLs (request i goes to URL i mod n), or send them all to a
balancer. A balancer's statistics would be one replica's, a different one at each call, so a balancer
started by `tritonbuild serve --replicas` names its replicas in a response header (REPLICAS_HEADER, on
HTTP and gRPC alike) and the sweep reads every replica's own statistics instead.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from builder.contract.balancer import REPLICAS_HEADER
from client.transport.text_client import ClientConfig, ClientError, grpc_unavailable, unreachable

# Triton's liveness check on either protocol: the cheapest request that passes the balancer.
_LIVE_PATH = "/v2/health/live"
_SERVER_LIVE = "/inference.GRPCInferenceService/ServerLive"


@dataclass(frozen=True)
class Endpoints:
    """Where requests go (round robin over `load`) and whose statistics count (`stats`: every server behind them)."""

    load: tuple[str, ...]
    stats: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.load or not self.stats:
            raise ClientError("a sweep needs at least one URL")

    @classmethod
    def single(cls, url: str) -> Endpoints:
        """One server: requests and statistics at `url`."""
        return cls((url,), (url,))

    @property
    def several(self) -> bool:
        """Whether more than one server is involved (several URLs, or a balancer's replicas)."""
        return len(self.load) > 1 or self.stats != self.load


def endpoints_of(urls: Sequence[str], announced: Mapping[str, tuple[str, ...]]) -> Endpoints:
    """Requests to `urls`; statistics from the replicas each URL announced, or from the URL itself."""
    stats = [replica for url in urls for replica in (announced.get(url) or (url,))]
    return Endpoints(tuple(urls), tuple(dict.fromkeys(stats)))


def parse_replicas(value: str | None) -> tuple[str, ...]:
    """The header's comma-separated host:port list; () when there is none (a plain server)."""
    return tuple(part.strip() for part in (value or "").split(",") if part.strip())


def announced_replicas(config: ClientConfig) -> tuple[str, ...]:
    """The replicas the server at `config.url` announces (a tritonbuild balancer); () for a plain tritonserver."""
    if config.protocol == "http":
        return parse_replicas(_http_header(config))
    return parse_replicas(_grpc_metadata(config))


def _http_header(config: ClientConfig) -> str | None:
    try:
        with urllib.request.urlopen(f"http://{config.url}{_LIVE_PATH}", timeout=config.timeout_s) as response:
            return response.headers.get(REPLICAS_HEADER)
    except urllib.error.HTTPError as exc:  # a balancer without a live replica still says who is behind it
        return exc.headers.get(REPLICAS_HEADER)
    except (urllib.error.URLError, OSError) as exc:
        raise unreachable(config, exc) from exc


def _grpc_metadata(config: ClientConfig) -> str | None:
    import grpc

    with grpc.insecure_channel(config.url) as channel:
        try:
            _, call = channel.unary_unary(_SERVER_LIVE).with_call(b"", timeout=config.timeout_s)
            metadata = call.initial_metadata()
        except grpc.RpcError as exc:  # a balancer's 502 carries no metadata over gRPC: it is said so instead
            details = exc.details() if isinstance(exc, grpc.Call) else str(exc)
            raise grpc_unavailable(config, details or "") from exc
    return next((str(m.value) for m in metadata if m.key == REPLICAS_HEADER), None)


def resolve_endpoints(urls: Sequence[str], config: ClientConfig) -> Endpoints:
    """Ask each of `urls` whether it is a balancer, then where requests go and whose statistics count."""
    return endpoints_of(urls, {url: announced_replicas(replace(config, url=url)) for url in urls})
