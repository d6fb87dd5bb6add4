"""Run nginx (Debian's package) as a child process with its own folder, and reload it with a new config.

nginx runs in the foreground (`daemon off`) with `-p PREFIX`: its pid file, logs and temp folders live in a
temporary folder, so it needs no root paths and two balancers never share anything. A config is written
atomically (a reload never reads half a file) and `nginx -s reload` checks it before it signals; a reload
counts as done once nginx answers the new generation and the old workers have finished their requests.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from builder import __version__
from builder.common.errors import ServerError
from builder.contract.balancer import REPLICAS_HEADER
from builder.repository.render import ENV
from builder.serving.balancer_plan import GENERATION_PATH, NginxConfig
from builder.serving.processes import stop_group, with_death_signal
from builder.serving.server import check_ports_free

_TEMPLATE = ENV.overlay(trim_blocks=True, lstrip_blocks=True).get_template("nginx.conf.j2")
INSTALL_HINT = "run scripts/setup.sh (it installs Debian's nginx), or apt-get install nginx-light"


def render_nginx(config: NginxConfig) -> str:
    """nginx.conf text for `config`."""
    return _TEMPLATE.render(
        c=config, version=__version__, generation_path=GENERATION_PATH, replicas_header=REPLICAS_HEADER
    )


def find_nginx() -> Path:
    """The nginx binary: $TRITONBUILD_NGINX, else on PATH or in /usr/sbin (not on a normal user's PATH)."""
    if os.environ.get("TRITONBUILD_NGINX"):
        binary = Path(os.environ["TRITONBUILD_NGINX"])
        if not (binary.is_file() and os.access(binary, os.X_OK)):
            raise ServerError(f"TRITONBUILD_NGINX={binary} is not an executable file", hint=INSTALL_HINT)
        return binary
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise ServerError("nginx is not installed: `serve --replicas` balances the replicas with it", hint=INSTALL_HINT)
    return Path(found)


def write_atomically(path: Path, text: str) -> None:
    """Write `text` to a sibling file, then rename it over `path`: a reader sees the old file or the new one."""
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as staged:
        staged.write(text)
        staged.flush()
        os.fsync(staged.fileno())
    os.replace(staged.name, path)


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (OSError, ValueError):
        return []


class Nginx:
    """nginx balancing by `config`, as a foreground child process; `apply` swaps its config while it runs."""

    def __init__(self, config: NginxConfig, start_timeout_s: float = 10.0) -> None:
        self.config = config
        self.start_timeout_s = start_timeout_s
        self.binary = find_nginx()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def conf_path(self) -> Path:
        """Where the config lives (inside the prefix)."""
        return self.config.prefix / "nginx.conf"

    @property
    def log_path(self) -> Path:
        """The error log of nginx."""
        return self.config.prefix / "error.log"

    @property
    def pid(self) -> int | None:
        """The master process's id while it runs."""
        return self._process.pid if self._process is not None else None

    def running(self) -> bool:
        """Whether the master process runs."""
        return self._process is not None and self._process.poll() is None

    def _args(self, *extra: str) -> list[str]:
        return [
            str(self.binary),
            "-p",
            str(self.config.prefix),
            "-c",
            str(self.conf_path),
            "-e",
            str(self.log_path),
            *extra,
        ]

    def _write(self, config: NginxConfig) -> None:
        (config.prefix / "temp").mkdir(parents=True, exist_ok=True)
        write_atomically(self.conf_path, render_nginx(config))

    def start(self) -> Nginx:
        """Write the config, start nginx, and return once it answers on its HTTP port."""
        check_ports_free({f.protocol: f.port for f in self.config.frontends})
        self._write(self.config)
        command, preexec = with_death_signal(self._args("-g", "daemon off;"))
        self._process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, preexec_fn=preexec
        )
        self._wait_for(self.config.generation, self.start_timeout_s)
        return self

    def apply(self, config: NginxConfig) -> None:
        """Reload with `config`; returns once new connections get it and the old workers are gone."""
        if self._process is None:
            raise ServerError("nginx is not running")
        self._write(config)
        result = subprocess.run(self._args("-s", "reload"), capture_output=True, text=True)
        if result.returncode != 0:
            raise ServerError(f"nginx refused its new config {self.conf_path}: {result.stderr.strip()}")
        self.config = config
        self._wait_for(config.generation, self.start_timeout_s)
        deadline = time.monotonic() + config.settings.shutdown_timeout_s + 5
        while len(_children(self._process.pid)) > config.settings.workers and time.monotonic() < deadline:
            time.sleep(0.05)

    def _generation(self) -> int | None:
        port = next(f.port for f in self.config.frontends if f.protocol == "http")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{GENERATION_PATH}", timeout=2) as response:
                return int(response.read())
        except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
            return None

    def _wait_for(self, generation: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                code, self._process = self._process.returncode, None
                raise ServerError(
                    f"nginx exited with code {code}:\n{self.log_tail()}", hint=f"its log: {self.log_path}"
                )
            if self._generation() == generation:
                return
            time.sleep(0.05)
        raise ServerError(
            f"nginx did not serve config generation {generation} within {timeout_s:.0f} s:\n{self.log_tail()}",
            hint=f"its log: {self.log_path}",
        )

    def log_tail(self, lines: int = 10) -> str:
        """The error log's last lines."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:]) or "(the log is empty)"
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """Stop at once (SIGTERM; the replicas behind it are stopped next), kill after 10 s, then any worker left."""
        process, self._process = self._process, None
        if process is not None:
            stop_group(process, signal.SIGTERM, timeout_s=10)
