"""The in-process half of this folder's README: TritonPythonModel.encode_requests with and without the plain twin.

The snippet as it ran (from the repository's root, 2-core box, tokenizers 0.23.3), saved here afterwards:
    .venv/bin/python scripts/results/cpu_tokenizer_2026-12-02/inprocess_timing.py
"""

import statistics
import sys
import time

sys.path[:0] = ["templates/python"]
import numpy as np  # noqa: E402
import tokenizer_model as tm  # noqa: E402

from builder.sources.source import resolve_path  # noqa: E402

m = tm.TritonPythonModel()
m.buckets, m.pad_id, m.max_text_bytes, m.max_text_chars = [16, 32, 64, 128], 0, 1_000_000, 100_000
m.load(str(resolve_path("minilm") / "tokenizer.json"), 128)
sentence = b"The quick brown fox jumps over the lazy dog, and then it ran away into the forest! " * 6
text = np.array([[sentence]], dtype=object)
short = b"A short sentence of the usual kind, asking what the weather is like today?"
eight = [np.array([[short]], dtype=object)] * 8


def bench(f, n=3000):
    for _ in range(200):
        f()
    xs = []
    for _ in range(n):
        s = time.perf_counter()
        f()
        xs.append(time.perf_counter() - s)
    return statistics.median(xs) * 1e6


for label in ("twin", "full"):
    if label == "full":
        m.encode_plain = None
    one, many = bench(lambda: m.encode_requests([text])), bench(lambda: m.encode_requests(eight), 1000)
    print(label, f"1 x 116 tokens: {one:.1f} us", f"8 requests: {many:.1f} us")
