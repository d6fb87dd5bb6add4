"""Start the tritonserver bundled in the nvidia-pytriton wheel, as a context manager.

The wheel carries tritonserver 2.51 with the Python backend and one backend stub per Python
version; the stub for the running Python is placed next to the backend in a private folder,
so the installed package is never modified.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from builder.errors import ServerError
from builder.modelconfig import parse_config

_NEEDS_NGC = {"onnxruntime_onnx": "onnxruntime", "tensorrt_plan": "tensorrt", "pytorch_libtorch": "pytorch"}


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


def check_servable(repo: Path) -> None:
    """Refuse repositories with models that need backends the bundled server lacks."""
    if not repo.is_dir():
        raise ServerError(f"model repository {repo} does not exist", hint="build one with tritonbuild make-repo")
    for config_path in sorted(repo.glob("*/config.pbtxt")):
        platform = parse_config(config_path.read_text(), str(config_path)).platform
        if platform in _NEEDS_NGC:
            raise ServerError(
                f"{config_path.parent.name} uses platform {platform}; the bundled server has only the Python backend",
                hint="serve it in the NGC container (scripts/serve_ngc.sh) or rebuild with --engine python-onnxruntime",
            )


def _die_with_parent() -> None:
    # PR_SET_PDEATHSIG: the server gets SIGTERM if the Python process that started it dies.
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


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
    ) -> None:
        self.repo = repo.resolve()
        self.python_backend_config = python_backend_config  # "key=value" settings of the Python backend
        self.http_port = http_port or free_port()
        self.grpc_port = grpc_port or free_port()
        self.metrics_port = metrics_port or free_port()
        self.startup_timeout_s = startup_timeout_s
        self._tmp = tempfile.TemporaryDirectory(prefix="tritonbuild-server-")
        self.log_path = log_path or Path(self._tmp.name) / "tritonserver.log"
        self._process: subprocess.Popen[bytes] | None = None

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
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def command(self, backends: Path, bundle: Path) -> list[str]:
        """The tritonserver command line."""
        return [
            str(bundle / "bin" / "tritonserver"),
            f"--model-repository={self.repo}",
            f"--backend-directory={backends}",
            f"--http-port={self.http_port}",
            f"--grpc-port={self.grpc_port}",
            f"--metrics-port={self.metrics_port}",
            "--http-address=127.0.0.1",
            "--grpc-address=127.0.0.1",
            "--metrics-address=127.0.0.1",
            "--strict-readiness=true",
            "--exit-on-error=true",
            "--disable-auto-complete-config",
            "--exit-timeout-secs=10",
            *(f"--backend-config=python,{setting}" for setting in self.python_backend_config),
        ]

    def start(self) -> TritonServer:
        """Start the server and block until it is ready; raises ServerError with the log tail otherwise."""
        check_servable(self.repo)
        bundle = find_bundle()
        backends = prepare_backends(bundle, Path(self._tmp.name) / "backends")
        env = dict(os.environ)
        site = os.pathsep.join(dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]))
        env["TRITONBUILD_SITE_PACKAGES"] = site
        try:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            log = self.log_path.open("wb")
        except OSError as exc:
            raise ServerError(f"cannot write the server log {self.log_path}: {exc.strerror}") from exc
        with log:
            self._process = subprocess.Popen(
                self.command(backends, bundle),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        self._wait_ready()
        return self

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.http_url}/v2/health/ready", timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

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
            if self._ready():
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

    def log_tail(self, lines: int = 12) -> str:
        """The server's error lines (or its last lines when there are none), each cut to 400 characters."""
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        errors = [line for line in text if line[:1] == "E" and line[1:5].isdigit()]
        return "\n".join(line[:400] for line in (errors or text)[-lines:])

    def stop(self) -> None:
        """Ask the server to exit (SIGINT), then kill it if it has not within 20 s."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

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
