"""N bundled tritonservers behind one nginx, as a context manager that always stops everything.

nginx spreads requests over the replicas (least connections) and retries a failed one on the next replica;
its passive checks take a replica that refuses connections out for a moment. Open-source nginx has no
active health checks, so a watcher thread asks every replica's ready endpoint twice a second and rewrites
the upstream lists when the answer changes: a replica that is starting, reloading a model or dead gets no
new requests. `restart` replaces one replica's server without losing requests: drain, stop, start, re-admit.
"""

from __future__ import annotations

import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from builder.common.errors import ServerError
from builder.serving.balancer_plan import BalancerSettings, NginxConfig, ReplicaPorts, plan_nginx, plan_ports
from builder.serving.holds import acquire_all, holds_env, release_all, server_holds
from builder.serving.nginx import Nginx, find_nginx
from builder.serving.server import TritonServer, check_ports_free, check_servable, fill_ports, free_port, is_ready
from builder.serving.supervisor import Report


@dataclass
class Replica:
    """One slot of the set: its ports stay for good, its server is replaced by a restart."""

    index: int
    ports: ReplicaPorts
    server: TritonServer | None = None
    starts: int = 0  # servers started in this slot; each gets its own log
    draining: bool = False  # taken out of the balancer on purpose (a restart)

    @property
    def http_url(self) -> str:
        """host:port of the replica's own HTTP endpoint."""
        return self.ports.address("http")

    @property
    def grpc_url(self) -> str:
        """host:port of the replica's own gRPC endpoint."""
        return self.ports.address("grpc")

    def serving(self) -> bool:
        """Whether it should get requests: not draining, its server running, supervised and ready."""
        server = self.server
        return (
            not self.draining
            and server is not None
            and server.is_alive()
            and server.failure is None
            and is_ready(self.http_url, timeout_s=1.0)
        )


class ReplicaSet:
    """`replicas` tritonservers for `repo` on free ports, and nginx on `http_port`/`grpc_port` (0: free ones)."""

    def __init__(
        self,
        repo: Path,
        replicas: int = 2,
        http_port: int = 0,
        grpc_port: int = 0,
        log_dir: Path | None = None,
        settings: BalancerSettings | None = None,
        report: Report | None = None,
        startup_timeout_s: float = 180.0,
        poll_interval_s: float = 0.5,
        cpu_latency_us: int | None = None,
        idle_poll: bool = False,
        mps: bool = False,
    ) -> None:
        self.repo = repo.resolve()
        self.count = replicas
        self.http_port, self.grpc_port = fill_ports((http_port, grpc_port))
        self.settings = settings or BalancerSettings()
        self.report: Report = report or (lambda _: None)
        self.startup_timeout_s = startup_timeout_s
        self.poll_interval_s = poll_interval_s
        self.events: list[str] = []
        # held once for every replica and nginx (holds.py); none: as the host is
        self.holds = server_holds(cpu_latency_us, idle_poll, mps)
        self._tmp = tempfile.TemporaryDirectory(prefix="tritonbuild-replicas-")
        self.log_dir = log_dir or Path(self._tmp.name)
        # nginx's own folder: readable by everyone, as a root nginx runs its workers as nobody (their temp files)
        self._prefix = tempfile.TemporaryDirectory(prefix="tritonbuild-nginx-")
        self.prefix = Path(self._prefix.name)
        self.prefix.chmod(0o755)
        self.replicas: list[Replica] = []
        self._nginx: Nginx | None = None
        self._generation = 0
        self._lock = threading.RLock()  # one change of the balancer at a time: the watcher's or a restart's
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        # Every server and nginx is started from these threads, which live as long as the set: a child's
        # PR_SET_PDEATHSIG (die_with_parent) fires when the *thread* that started it ends, not the process.
        self._launcher = ThreadPoolExecutor(replicas + 1, thread_name_prefix="tritonbuild-launcher")

    @property
    def http_url(self) -> str:
        """host:port of the balancer's HTTP endpoint: the one URL for HTTP clients."""
        return f"127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        """host:port of the balancer's gRPC endpoint: the one URL for gRPC clients."""
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def nginx(self) -> Nginx:
        """The running balancer."""
        if self._nginx is None:
            raise ServerError("the replica set is not running")
        return self._nginx

    def _event(self, message: str) -> None:
        self.events.append(message)
        self.report(message)

    def start(self) -> ReplicaSet:
        """Start every replica (in parallel), then nginx over all of them, then the watcher."""
        find_nginx()  # what can be refused is refused before the servers start
        check_servable(self.repo)
        check_ports_free({"http": self.http_port, "grpc": self.grpc_port})
        acquire_all(self.holds)
        ports = plan_ports(self.count, {self.http_port, self.grpc_port}, free_port)
        self.replicas = [Replica(i, p) for i, p in enumerate(ports)]
        try:
            self.log_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ServerError(f"cannot make the replicas' log folder {self.log_dir}: {exc.strerror}") from exc
        failures = [f for f in self._launcher.map(self._start_replica, self.replicas) if f is not None]
        if failures:
            raise ServerError(
                f"{len(failures)} of {self.count} replicas failed to start:\n" + "\n".join(failures),
                hint=f"their logs are in {self.log_dir}",
            )
        self._nginx = self._launcher.submit(Nginx(self._config(set(range(self.count)))).start).result()
        self._watcher = threading.Thread(target=self._watch, name="tritonbuild-balancer", daemon=True)
        self._watcher.start()
        return self

    def _start_replica(self, replica: Replica) -> str | None:
        """Start a server in `replica`'s slot; what went wrong, or None."""
        replica.starts += 1
        suffix = f".{replica.starts}" if replica.starts > 1 else ""
        server = TritonServer(
            self.repo,
            replica.ports.http,
            replica.ports.grpc,
            replica.ports.metrics,
            log_path=self.log_dir / f"replica-{replica.index}{suffix}.log",
            startup_timeout_s=self.startup_timeout_s,
            report=lambda message: self._event(f"replica {replica.index}: {message}"),
            env=holds_env(self.holds),
        )
        try:
            server.start()
        except ServerError as exc:
            server.close()
            return f"replica {replica.index} (HTTP {replica.http_url}): {exc}"
        replica.server = server
        return None

    def _config(self, ready: set[int]) -> NginxConfig:
        self._generation += 1
        ports = [r.ports for r in self.replicas]
        return plan_nginx(self.prefix, self.http_port, self.grpc_port, ports, ready, self._generation, self.settings)

    def ready(self) -> set[int]:
        """The replicas the balancer sends requests to now."""
        servers = next(f.servers for f in self.nginx.config.frontends)
        return {i for i, s in enumerate(servers) if not s.down}

    def refresh(self) -> set[int]:
        """Ask every replica whether it serves and rewrite the balancer when that changed; the serving ones."""
        with self._lock:
            serving = {r.index for r in self.replicas if r.serving()}
            before = self.ready()
            if serving != before:
                self.nginx.apply(self._config(serving))
                for index in sorted(before - serving):
                    self._event(f"replica {index} ({self._state(index)}): out of the balancer")
                for index in sorted(serving - before):
                    self._event(f"replica {index} is ready: in the balancer")
            return serving

    def _state(self, index: int) -> str:
        replica = self.replicas[index]
        server = replica.server
        if replica.draining:
            return "restarting"
        if server is None or not server.is_alive():
            code = server.returncode if server is not None else None
            return f"its tritonserver exited, code {code}"
        return server.failure or "not ready"

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_interval_s):
            try:
                self.refresh()
            except ServerError as exc:  # nginx refused a config or died: say so, and keep trying
                self._event(f"balancer: {exc}")

    def restart(self, index: int) -> None:
        """Replace replica `index`'s server: out of the balancer, stopped (it finishes its requests), started, back in.

        The other replicas serve meanwhile; a replica that fails to start stays out and the error is raised.
        """
        replica = self.replicas[index]
        with self._lock:
            replica.draining = True
            self.refresh()
        if replica.server is not None:
            replica.server.close()
            replica.server = None
        failure = self._launcher.submit(self._start_replica, replica).result()
        with self._lock:
            replica.draining = False
            self.refresh()
        if failure is not None:
            raise ServerError(f"restart failed: {failure}", hint=f"its log is in {self.log_dir}")

    def alive(self) -> list[int]:
        """The replicas whose server process runs."""
        return [r.index for r in self.replicas if r.server is not None and r.server.is_alive()]

    def close(self) -> None:
        """Stop the watcher, nginx, then every replica, and remove the temporary folders."""
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join()
        if self._nginx is not None:
            self._nginx.stop()
        list(self._launcher.map(lambda r: r.server.close() if r.server is not None else None, self.replicas))
        self._launcher.shutdown()
        release_all(self.holds)
        self._tmp.cleanup()
        self._prefix.cleanup()

    def __enter__(self) -> ReplicaSet:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
