"""What one small numpy call costs back to back, and after the core did something else for a while.

The call is a post step's work on one request (softmax of two logits, argmax, a label lookup). Between calls:
nothing, a sleep, a plain Python loop on the same core, or a loop that writes 8 MB. Median and p90 of each, µs.
Run: .venv/bin/python scripts/results/cpu_tokenizer_2026-12-07/cold_call.py
"""

from __future__ import annotations

import time

import numpy as np

LABELS = np.array([b"NEGATIVE", b"POSITIVE"], dtype=object)
LOGITS = np.random.default_rng(0).random((1, 2), dtype=np.float32)
SCRATCH = bytearray(8 << 20)


def call() -> tuple[np.ndarray, np.ndarray]:
    """Checks, a softmax, an argmax and a label lookup on one row."""
    assert np.isfinite(LOGITS.min()) and np.isfinite(LOGITS.max())
    exp = np.exp(LOGITS - LOGITS.max(axis=-1, keepdims=True))
    probs = (exp / exp.sum(axis=-1, keepdims=True)).astype(np.float32)
    return LABELS[probs.argmax(axis=1)][:, None], np.ascontiguousarray(probs)


def between(kind: str, seconds: float) -> None:
    """What the core does between two calls."""
    end = time.perf_counter() + seconds
    if kind == "sleep":
        time.sleep(seconds)
    elif kind == "python loop":
        while time.perf_counter() < end:
            pass
    elif kind == "write 8 MB":
        while time.perf_counter() < end:
            SCRATCH[::64] = bytes(len(SCRATCH) // 64)


def measure(kind: str, seconds: float, count: int = 400) -> tuple[float, float]:
    """Median and p90 of `count` calls, each after `kind` for `seconds`."""
    times = []
    for _ in range(count):
        between(kind, seconds)
        start = time.perf_counter_ns()
        call()
        times.append(time.perf_counter_ns() - start)
    times.sort()
    return times[count // 2] / 1000, times[count * 9 // 10] / 1000


def main() -> None:
    for kind, seconds in (("none", 0), ("sleep", 0.005), ("python loop", 0.005), ("write 8 MB", 0.005), ("none", 0)):
        p50, p90 = measure(kind, seconds)
        print(f"after {kind:12s} {seconds * 1000:3.0f} ms: p50 {p50:6.1f} µs, p90 {p90:6.1f} µs")


if __name__ == "__main__":
    main()
