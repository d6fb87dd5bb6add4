"""Share the GPU between a server's processes through CUDA MPS: one MPS control daemon per server, its own.

Every GPU instance of a Python-backend model is a stub process with its own CUDA context. Without MPS the
GPU time-slices between contexts: one process's kernels never run beside another's, and each switch costs
time. With MPS the processes' work goes through one MPS server process and one context, so kernels of
several instances run at once. On an H200, at concurrency 64, the ensemble's two model instances were each
busy throughout while the GPU was busy 72 % of the time (scripts/results/h200_2026-12-02/idle_poll_1740/).

The daemon is this server's: its pipe and log folders are private (CUDA_MPS_PIPE_DIRECTORY and
CUDA_MPS_LOG_DIRECTORY, passed to the server through `env`), so no other CUDA program on the host joins it,
and it runs in the foreground (`-f`) as a child that gets SIGTERM when its starter ends. A CUDA program whose
daemon is missing silently runs without MPS, so `clients()` asks the daemon who joined. The GPU's compute
mode is left as it is (NVIDIA recommends EXCLUSIVE_PROCESS under MPS; the default mode works too).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from builder.common.errors import ServerError
from builder.serving.processes import stop_group, with_death_signal

CONTROL = "nvidia-cuda-mps-control"  # installed with the NVIDIA driver's utilities
START_TIMEOUT_S = 10.0


class Mps:
    """A private MPS control daemon from `acquire` to `release`; `env` points CUDA programs at it."""

    def __init__(self) -> None:
        self._folder: tempfile.TemporaryDirectory[str] | None = None
        self._daemon: subprocess.Popen[bytes] | None = None
        self.binary: str | None = None

    @property
    def env(self) -> dict[str, str]:
        """What a CUDA program's environment needs to join this daemon (nothing while none runs)."""
        if self._folder is None:
            return {}
        root = Path(self._folder.name)
        return {"CUDA_MPS_PIPE_DIRECTORY": str(root / "pipe"), "CUDA_MPS_LOG_DIRECTORY": str(root / "log")}

    def acquire(self) -> Mps:
        """Start the daemon and wait until it listens; refuses clearly where MPS cannot run."""
        if self._daemon is not None:
            return self
        self.binary = shutil.which(CONTROL)
        if self.binary is None:
            raise ServerError(
                f"--mps needs {CONTROL}, which this host lacks on PATH",
                hint="install the NVIDIA driver's utilities (it comes with them), or leave out --mps",
            )
        self._folder = tempfile.TemporaryDirectory(prefix="tritonbuild-mps-")
        env = self.env
        for folder in env.values():
            os.makedirs(folder)
        command, preexec = with_death_signal([self.binary, "-f"])
        log = open(Path(env["CUDA_MPS_LOG_DIRECTORY"]) / "daemon.out", "wb")  # noqa: SIM115 (the child holds it)
        with log:
            self._daemon = subprocess.Popen(
                command, env=os.environ | env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=preexec,
            )  # fmt: skip
        control = Path(env["CUDA_MPS_PIPE_DIRECTORY"]) / "control"
        deadline = time.monotonic() + START_TIMEOUT_S
        while not control.exists():
            if self._daemon.poll() is not None or time.monotonic() > deadline:
                why = self.log_tail() or "no message"
                self.release()
                raise ServerError(f"the MPS control daemon did not start: {why}", hint="leave out --mps")
            time.sleep(0.05)
        return self

    def ask(self, command: str) -> str:
        """The daemon's answer to one control command (`get_server_list`, ...)."""
        if self._daemon is None or self.binary is None:
            raise ServerError("the MPS daemon is not running")
        try:
            done = subprocess.run(
                [self.binary], input=command + "\n", env=os.environ | self.env, capture_output=True, text=True,
                timeout=10, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired as exc:
            raise ServerError(f"the MPS control daemon did not answer {command!r} within 10 s") from exc
        return done.stdout.strip()

    def clients(self) -> dict[int, list[int]]:
        """Each MPS server's process id with the ids of the CUDA processes it serves: empty if none joined."""
        servers = [int(pid) for pid in self.ask("get_server_list").split() if pid.isdigit()]
        return {pid: [int(c) for c in self.ask(f"get_client_list {pid}").split() if c.isdigit()] for pid in servers}

    def log_tail(self, lines: int = 5) -> str:
        """The last lines the daemon wrote (its own output and control.log)."""
        if self._folder is None:
            return ""
        text = []
        for name in ("daemon.out", "control.log"):
            path = Path(self._folder.name) / "log" / name
            if path.exists():
                text += path.read_text(errors="replace").strip().splitlines()
        return " | ".join(text[-lines:])

    def release(self) -> None:
        """Ask the daemon to quit (it stops its MPS server), stop it if it does not, remove its folders."""
        daemon, self._daemon = self._daemon, None
        if daemon is not None:
            if daemon.poll() is None and self.binary is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):  # then SIGTERM, and SIGKILL, below
                    subprocess.run(
                        [self.binary], input=b"quit\n", env=os.environ | self.env, capture_output=True, timeout=10,
                        check=False,
                    )  # fmt: skip
                    daemon.wait(timeout=10)
            stop_group(daemon, signal.SIGTERM, timeout_s=10)
        folder, self._folder = self._folder, None
        if folder is not None:
            folder.cleanup()

    def __enter__(self) -> Mps:
        return self.acquire()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
