"""Hostile requests and a `tritonbuild serve` child process: shared by the reliability tests (as `hostile`, this
folder being on their path) and scripts/bench/reliability_bench.py (as `tests.hostile`, run from the root)."""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from builder.serving.server import free_port

ROOT = Path(__file__).resolve().parents[1]


def inputs(module, arrays: dict[str, np.ndarray]) -> list:
    """tritonclient inputs (of `module`: grpc, grpc.aio or http) for named numpy arrays."""
    tensors = []
    for name, array in arrays.items():
        dtype = "BYTES" if array.dtype == object else {"int64": "INT64", "float32": "FP32"}[array.dtype.name]
        tensor = module.InferInput(name, list(array.shape), dtype)
        tensor.set_data_from_numpy(array)
        tensors.append(tensor)
    return tensors


def tokens(ids: list[list[int]], mask: list[list[int]] | None = None) -> dict[str, np.ndarray]:
    """input_ids and attention_mask (all ones unless given)."""
    array = np.array(ids, dtype=np.int64)
    return {"input_ids": array, "attention_mask": np.array(mask, np.int64) if mask else np.ones_like(array)}


def row(bad: int | None = None) -> list[int]:
    """16 tokens, a length bucket of the tokenizer: the batcher merges such a request with good ones."""
    return [101, *([7] * 7), *([] if bad is None else [bad]), *([7] * (7 if bad is None else 6)), 102]


def hidden(value: float, rows: int = 1, length: int = 16, mask_length: int = 16) -> dict[str, np.ndarray]:
    """Inputs of a feature-extraction post model: MiniLM-wide hidden states filled with `value`."""
    return {
        "last_hidden_state": np.full((rows, length, 384), value, np.float32),
        "attention_mask": np.ones((rows, mask_length), np.int64),
    }


MASK_OF_3 = np.ones((1, 3), np.int64)
# (model, inputs, what the short message says): each is refused by that model alone
HOSTILE = {
    "out-of-vocabulary id": ("minilm_model", tokens([row(40_000)]), "token id 40000"),
    "negative id": ("minilm_model", tokens([row(-5)]), "token id -5"),
    "longer than the model maximum": ("minilm_model", tokens([[101] * 300]), "300 tokens per row; the limit is 256"),
    "mask of another shape": ("minilm_model", {**tokens([row()]), "attention_mask": MASK_OF_3}, "differ in shape"),
    "mask not 0/1": ("minilm_model", tokens([row()], [[2] * 16]), "only 0 and 1"),
    "row without a real token": ("minilm_model", tokens([row()], [[0] * 16]), "without any real token"),
    "torch: out-of-vocabulary id": ("mtorch_model", tokens([row(99_999)]), "token id 99999"),
    "NaN hidden state": ("minilm_post", hidden(np.nan), "NaN or infinite"),
    "infinite hidden state": ("minilm_post", hidden(np.inf), "NaN or infinite"),
    "hidden and mask lengths differ": ("minilm_post", hidden(0.5, mask_length=3), "differ in batch or length"),
    "NaN logits": ("dbert_post", {"logits": np.array([[np.nan, 0.0, 1.0]], np.float32)}, "NaN or infinite"),
    "not UTF-8": ("minilm_tokenizer", {"TEXT": np.array([[b"\xff\xfe"]], dtype=object)}, "not valid UTF-8"),
}


class Served:
    """`tritonbuild serve` in a child process, its output read line by line in a thread (never blocking a caller)."""

    def __init__(self, repo: Path, *ports: int, options: tuple[str, ...] = ()) -> None:
        self.ports = ports or (free_port(), free_port(), free_port())
        command = [sys.executable, "-m", "builder", "serve", "--repo", str(repo), *options]  # this checkout's code
        command += [f"--{kind}-port={port}" for kind, port in zip(("http", "grpc", "metrics"), self.ports, strict=True)]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
        self.lines: queue.Queue[tuple[float, str]] = queue.Queue()
        self.seen: list[tuple[float, str]] = []  # (when it came, the line); "" ends the output
        threading.Thread(target=self._read, daemon=True).start()

    @property
    def grpc_url(self) -> str:
        """host:port of its gRPC endpoint."""
        return f"127.0.0.1:{self.ports[1]}"

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put((time.monotonic(), line))
        self.lines.put((time.monotonic(), ""))

    def wait_for(self, text: str, timeout_s: float = 120) -> float:
        """Block until a line holding `text` arrives and return when it came; fail with everything seen."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                at, line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            self.seen.append((at, line))
            if not line:
                break
            if text in line:
                return at
        raise AssertionError(f"no line with {text!r} in:\n{self.output()}")

    def output(self) -> str:
        """Everything printed so far."""
        return "".join(line for _, line in self.seen)

    def finish(self, timeout_s: float = 120) -> str:
        """Wait for the exit (killing it after `timeout_s`); everything it printed."""
        try:
            self.process.wait(timeout=timeout_s)
        finally:
            self.process.kill()
            self.process.wait()
        while not self.seen or self.seen[-1][1]:  # the reader thread ends the output with ""
            self.seen.append(self.lines.get(timeout=10))
        return self.output()

    def server_pid(self) -> int:
        """The tritonserver that `tritonbuild serve` started (its child)."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        (pid,) = [int(c) for c in children if Path(f"/proc/{c}/exe").resolve().name == "tritonserver"]
        return pid
