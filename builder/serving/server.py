"""Start the tritonserver bundled in the nvidia-pytriton wheel, as a context manager, and keep it serving.

The wheel carries tritonserver 2.51 with the Python backend and one backend stub per Python
version; the stub for the running Python is placed next to the backend in a private folder,
so the installed package is never modified. The ports must be free before it starts, and the
server that answers "ready" must be this one (its `--id`, a random name, is asked back); once
ready, a Supervisor reloads any model whose backend stub died.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

from builder.common.errors import ServerError
from builder.engines import BACKENDS, names
from builder.repository.modelconfig import parse_config
from builder.serving.endpoints import GRPC, HTTP, METRICS, METRICS_PATH, READY_PATH, SERVER_FLAGS
from builder.serving.holds import acquire_all, holds_env, release_all, server_holds
from builder.serving.processes import stop_group, with_death_signal
from builder.serving.server_log import has_gpu, log_tail
from builder.serving.supervisor import Report, Supervisor


def find_bundle() -> Path:
    """The tritonserver folder: $TRITONBUILD_TRITONSERVER (an unpacked bundle), else nvidia-pytriton's."""
    if os.environ.get("TRITONBUILD_TRITONSERVER"):
        bundle = Path(os.environ["TRITONBUILD_TRITONSERVER"])
        if not (bundle / "bin" / "tritonserver").is_file():
            raise ServerError(
                f"TRITONBUILD_TRITONSERVER={bundle} has no bin/tritonserver",
                hint="point it at the pytriton/tritonserver folder of an unpacked bundle",
            )
        return bundle
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise ServerError(
            "nvidia-pytriton is not installed (it carries the tritonserver binary)",
            hint="run scripts/setup.sh, or pip install nvidia-pytriton==0.7.0",
        )
    bundle = Path(next(iter(spec.submodule_search_locations))) / "tritonserver"
    if not (bundle / "bin" / "tritonserver").is_file():
        raise ServerError(f"no tritonserver binary under {bundle}", hint="reinstall nvidia-pytriton==0.7.0")
    return bundle


def prepare_backends(bundle: Path, dest: Path) -> Path:
    """A backend folder whose python/ holds the bundled backend plus the stub for this Python."""
    python = dest / "python"
    python.mkdir(parents=True, exist_ok=True)
    for item in (bundle / "backends" / "python").iterdir():
        if item.is_file():
            (python / item.name).symlink_to(item)
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = bundle / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.is_file():
        raise ServerError(
            f"the bundled server has no Python backend stub for Python {version}", hint="use Python 3.8-3.13"
        )
    (python / stub.name).symlink_to(stub)
    return dest


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fill_ports(ports: Sequence[int], source: Callable[[], int] = free_port) -> tuple[int, ...]:
    """`ports` with every 0 replaced by a free port, all of them distinct.

    A port is free each time it is asked for, so two draws can give the same number: a server asked to listen
    for gRPC and metrics on one port refuses to start. Repeats are drawn again, a bounded number of times.
    """
    taken = {port for port in ports if port}
    filled = []
    for port in ports:
        for _ in range(30):
            if port:
                break
            drawn = source()
            port = drawn if drawn not in taken else 0
        if not port:
            raise ServerError(f"found no free port distinct from {sorted(taken)} in 30 draws")
        taken.add(port)
        filled.append(port)
    return tuple(filled)


def check_ports_free(ports: dict[str, int]) -> None:
    """Refuse to start when something listens on one of the ports (another server would answer for ours).

    SO_REUSEADDR, as servers set it: a port whose last connections linger in TIME_WAIT counts as free, a
    port with a listener (on 127.0.0.1 or on every address) does not.
    """
    for what, port in ports.items():
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError as exc:
                raise ServerError(
                    f"the {what} port {port} is in use on 127.0.0.1 ({exc.strerror}): another server would answer",
                    hint=f"stop what listens there or choose another --{what}-port",
                ) from None


def served_models(repo: Path) -> list[str]:
    """The model folders of `repo`: a config.pbtxt inside, and no leading dot.

    make-repo stages inside the repository (`.staging-*`, `.replaced-*`): a server that loaded every folder
    would fail to start on those.
    """
    return sorted(p.parent.name for p in repo.glob("*/config.pbtxt") if not p.parent.name.startswith("."))


def check_servable(repo: Path) -> None:
    """Refuse repositories with models the bundled server cannot run: it has only the Python backend.

    What it runs is what the bundled serving backends produce (builder/engines/), and ensembles.
    """
    if not repo.is_dir():
        raise ServerError(f"model repository {repo} does not exist", hint="build one with tritonbuild make-repo")
    runs = {"ensemble", *(b.platform for b in BACKENDS.values() if b.bundled)}
    for config_path in sorted(repo.glob("*/config.pbtxt")):
        config = parse_config(config_path.read_text(), str(config_path))
        platform = config.platform or config.backend
        if platform and platform not in runs:
            raise _needs_ngc(config_path.parent.name, platform)


def _needs_ngc(model: str, platform: str) -> ServerError:
    built_by = names(lambda b: b.platform == platform, " and ")
    by = f" (what --engine {built_by} build)" if built_by else ""
    return ServerError(
        f"{model} uses platform {platform}{by}; the bundled server has only the Python backend",
        hint="serve it in the NGC container (scripts/serve_ngc.sh) or rebuild with "
        f"--engine {names(lambda b: b.bundled)}",
    )


def is_ready(http_url: str, timeout_s: float = 2.0) -> bool:
    """Whether the server at `http_url` (host:port) says ready: with --strict-readiness, every model is."""
    try:
        with urllib.request.urlopen(f"http://{http_url}{READY_PATH}", timeout=timeout_s) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


class TritonServer:
    """A tritonserver on 127.0.0.1 for one model repository; ports default to free ones."""

    def __init__(
        self,
        repo: Path,
        http_port: int = 0,
        grpc_port: int = 0,
        metrics_port: int = 0,
        log_path: Path | None = None,
        startup_timeout_s: float = 180.0,
        python_backend_config: tuple[str, ...] = (),
        report: Report | None = None,
        models: tuple[str, ...] | None = None,
        cpu_latency_us: int | None = None,
        idle_poll: bool = False,
        mps: bool = False,
        env: dict[str, str] | None = None,
    ) -> None:
        self.repo = repo.resolve()
        # what is loaded at start (None: every model folder); the rest waits for the repository API's load
        self.models = models
        self.server_id = f"tritonbuild-{secrets.token_hex(6)}"  # asked back: the ready server must be ours
        self.report = report  # where the supervisor's findings go, besides the log and `events`
        self.events: list[str] = []
        self.python_backend_config = python_backend_config  # "key=value" settings of the Python backend
        # idle CPUs kept awake, the GPU shared through MPS, while the server runs (holds.py); none: as the host is
        self.holds = server_holds(cpu_latency_us, idle_poll, mps)
        self.env = env or {}  # more of the server's environment (a replica set's holds')
        self.http_port, self.grpc_port, self.metrics_port = fill_ports((http_port, grpc_port, metrics_port))
        self.startup_timeout_s = startup_timeout_s
        self._tmp = tempfile.TemporaryDirectory(prefix="tritonbuild-server-")
        self.log_path = log_path or Path(self._tmp.name) / "tritonserver.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._supervisor: Supervisor | None = None

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._process.pid if self._process is not None else None

    @property
    def http_url(self) -> str:
        """host:port of the HTTP endpoint."""
        return f"127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        """host:port of the gRPC endpoint."""
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        """URL of the Prometheus metrics endpoint."""
        return f"http://127.0.0.1:{self.metrics_port}{METRICS_PATH}"

    def command(self, backends: Path, bundle: Path) -> list[str]:
        """The tritonserver command line."""
        return [
            str(bundle / "bin" / "tritonserver"),
            f"--model-repository={self.repo}",
            f"--backend-directory={backends}",
            HTTP.arg(self.http_port),
            GRPC.arg(self.grpc_port),
            METRICS.arg(self.metrics_port),
            f"--id={self.server_id}",
            "--model-control-mode=explicit",  # the supervisor reloads models through the repository API
            *(f"--load-model={name}" for name in self.startup_models()),
            "--http-address=127.0.0.1",
            "--grpc-address=127.0.0.1",
            "--metrics-address=127.0.0.1",
            *SERVER_FLAGS,
            *(f"--backend-config=python,{setting}" for setting in self.python_backend_config),
        ]

    def startup_models(self) -> tuple[str, ...]:
        """The models loaded when the server starts (and supervised from then on)."""
        return tuple(served_models(self.repo)) if self.models is None else self.models

    def start(self) -> TritonServer:
        """Start the server, block until it is ready, then supervise it; raises ServerError with the log tail."""
        check_servable(self.repo)
        check_ports_free({"http": self.http_port, "grpc": self.grpc_port, "metrics": self.metrics_port})
        bundle = find_bundle()
        acquire_all(self.holds)
        backends = prepare_backends(bundle, Path(self._tmp.name) / "backends")
        env = os.environ | self.env | holds_env(self.holds)
        site = os.pathsep.join(dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]))
        env["TRITONBUILD_SITE_PACKAGES"] = site
        try:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self.log_path.write_bytes(b"")
            log = self.log_path.open("ab")  # appending, so the supervisor's lines and the server's never overlap
        except OSError as exc:
            raise ServerError(f"cannot write the server log {self.log_path}: {exc.strerror}") from exc
        command, preexec = with_death_signal(self.command(backends, bundle))
        with log:
            self._process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True, preexec_fn=preexec
            )
        self._wait_ready()
        self._check_identity()
        assert self._process is not None
        self._supervisor = Supervisor(self._process.pid, self.repo, self.startup_models(), self.http_url, self._event)
        self._supervisor.start()
        return self

    def _event(self, message: str) -> None:
        """A supervisor finding: into the server log, `events` and the report callback."""
        self.events.append(message)
        with self.log_path.open("a") as log:
            log.write(f"tritonbuild supervisor: {message}\n")
        if self.report is not None:
            self.report(message)

    @property
    def failure(self) -> str | None:
        """Why the server stopped serving although its process runs (a model that could not be reloaded)."""
        return self._supervisor.failure if self._supervisor is not None else None

    def _check_identity(self) -> None:
        """Both endpoints must be our process's: a server that was there first would answer too."""
        import tritonclient.grpc as grpcclient
        from tritonclient.utils import InferenceServerException

        try:
            with urllib.request.urlopen(f"http://{self.http_url}/v2", timeout=5) as response:
                http_name = json.loads(response.read()).get("name")
            grpc_name = grpcclient.InferenceServerClient(self.grpc_url).get_server_metadata(client_timeout=5).name
        except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError, InferenceServerException) as exc:
            http_name = grpc_name = f"unknown ({exc})"
        if http_name != self.server_id or grpc_name != self.server_id:
            self.stop()
            raise ServerError(
                f"the server on HTTP {self.http_url} / gRPC {self.grpc_url} is not the one just started "
                f"(it says {http_name} / {grpc_name}, ours is {self.server_id})",
                hint="another server took a port while this one started: choose other ports",
            )

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                code = self._process.returncode
                self._process = None
                raise ServerError(
                    f"tritonserver exited with code {code} while starting:\n{self.log_tail()}",
                    hint=f"full log: {self.log_path}",
                )
            if is_ready(self.http_url):
                return
            time.sleep(0.2)
        self.stop()
        raise ServerError(
            f"tritonserver was not ready after {self.startup_timeout_s:.0f} s:\n{self.log_tail()}",
            hint=f"full log: {self.log_path}",
        )

    def is_alive(self) -> bool:
        """True while the server process runs."""
        return self._process is not None and self._process.poll() is None

    @property
    def returncode(self) -> int | None:
        """The server's exit status once it has exited (negative: the signal that ended it)."""
        return self._process.poll() if self._process is not None else None

    def log_tail(self, lines: int = 12) -> str:
        """The log's last meaningful lines, after the error lines above them (server_log.py)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return log_tail(text, has_gpu(), last=lines)

    def stop(self) -> None:
        """Stop supervising, ask the server to exit (SIGINT), kill it after 20 s, then any stub it left behind."""
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None:
            supervisor.stop()
        process, self._process = self._process, None
        if process is not None:
            stop_group(process, signal.SIGINT, timeout_s=20)
        release_all(self.holds)

    def close(self) -> None:
        """Stop the server and remove its temporary folder."""
        self.stop()
        self._tmp.cleanup()

    def __enter__(self) -> TritonServer:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
