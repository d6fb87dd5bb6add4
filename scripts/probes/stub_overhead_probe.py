"""What one Python-backend stub round trip costs on this host, next to the work a text model does.

Serves two models that do nothing but time themselves: `noop_ids` (INT64 in, by DLPack) and
`noop_text` (a BYTES TEXT in, read with the stub's numpy, like the tokenizer). For each: client p50
over gRPC at concurrency 1, the server's compute_infer, and the model's own execute() time; the
difference is the stub hand-over; on servers with default settings, with a 64 MiB shared-memory pool, with
idle CPUs kept polling (serve --cpu-latency-us 0), and with every CPU kept busy (serve --idle-poll). Then
the tokenizer's own encode() in-process for a 128-token text: with its plain path, without it (the full
tokenizer only), with it again, and under that CPU latency limit.
Writes OUT/stub_overhead.json. From the repository's root:
  python -m scripts.probes.stub_overhead_probe OUT TOKENIZER_DIR
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from builder.common.backend_files import backend_module
from builder.serving.cpu_latency import CpuLatencyHold
from builder.serving.server import TritonServer

ROOT = Path(__file__).resolve().parents[2]

MODEL = """
import time
import tritonbuild_backend as tb
if "{input}" == "TEXT":
    tb.use_stub_numpy()
import numpy as np

class TritonPythonModel:
    def execute(self, requests):
        start = time.perf_counter()
        responses = []
        for request in requests:
            tensor = tb.pb_utils.get_input_tensor_by_name(request, "{input}")
            outputs = []
            if "{input}" == "TEXT":
                tensor.as_numpy()
            else:
                import torch
                torch.utils.dlpack.from_dlpack(tensor.to_dlpack())
                if HIDDEN:  # what a feature-extraction model hands to post-processing at 1 x 128 (BERT-base)
                    outputs.append(tb.output_tensor("HIDDEN", torch.zeros((1, 128, 768))))
            took = np.full((1, 1), (time.perf_counter() - start) * 1e6, dtype=np.float32)
            outputs.append(tb.output_tensor("EXEC_US", took))
            responses.append(tb.pb_utils.InferenceResponse(output_tensors=outputs))
        return responses
"""
CONFIG = """name: "{name}"
backend: "python"
max_batch_size: 8
input {{ name: "{input}" data_type: {dtype} dims: [ -1 ] }}
output {{ name: "EXEC_US" data_type: TYPE_FP32 dims: [ 1 ] }}
{hidden}
dynamic_batching {{ }}
instance_group {{ count: 1 kind: {kind} }}
"""
HIDDEN_OUTPUT = 'output { name: "HIDDEN" data_type: TYPE_FP32 dims: [ -1, 768 ] }'
MODELS = {
    "noop_ids": ("input_ids", "TYPE_INT64", False),
    "noop_text": ("TEXT", "TYPE_STRING", False),
    "noop_hidden": ("input_ids", "TYPE_INT64", True),  # also returns a 1 x 128 x 768 FP32 tensor (393 kB)
}
if shutil.which("nvidia-smi"):
    MODELS["noop_hidden_gpu"] = ("input_ids", "TYPE_INT64", True)  # the same on a GPU instance, as the engine runs
# The server's settings, one server each: the defaults; the Python backend's shared-memory pool with a 64 MiB
# start and growth step; idle CPUs kept polling (serve --cpu-latency-us 0); every CPU kept busy (--idle-poll).
SETTINGS: dict[str, tuple[tuple[str, ...], int | None, bool]] = {  # backend config, CPU latency limit, idle poll
    "default": ((), None, False),
    "shm 64 MiB": (("shm-default-byte-size=67108864", "shm-growth-byte-size=67108864"), None, False),
    "CPU latency 0 us": ((), 0, False),
    "idle poll": ((), None, True),
}


def measure(server: TritonServer, name: str, requests: int = 2000) -> dict:
    """Client p50 at concurrency 1, server compute_infer per request, and the model's own time."""
    import numpy as np
    import tritonclient.grpc as grpc

    client = grpc.InferenceServerClient(server.grpc_url)
    tensor_name, dtype, _ = MODELS[name]
    if dtype == "TYPE_STRING":
        item = grpc.InferInput(tensor_name, [1, 1], "BYTES")
        item.set_data_from_numpy(np.array([[b"a sentence of about the usual length " * 12]], dtype=object))
    else:
        item = grpc.InferInput(tensor_name, [1, 128], "INT64")
        item.set_data_from_numpy(np.ones((1, 128), dtype=np.int64))
    client_ms, model_us = [], []
    for i in range(requests + 200):
        start = time.perf_counter()
        result = client.infer(name, [item])
        if i >= 200:  # warm-up first
            client_ms.append((time.perf_counter() - start) * 1000)
            model_us.append(float(result.as_numpy("EXEC_US")[0, 0]))
    stats = client.get_inference_statistics(name).model_stats[0].inference_stats
    count = stats.success.count
    return {
        "client_p50_ms": statistics.median(client_ms),
        "server_compute_infer_us": stats.compute_infer.ns / count / 1000,
        "server_queue_us": stats.queue.ns / count / 1000,
        "model_execute_us": statistics.median(model_us),
    }


def tokenizer_us(tokenizer_dir: Path, plain: bool = True) -> float:
    """tokenizer_model's encode() for one 128-token text, in process: with or without its plain path."""
    import numpy as np

    # imported as the server imports it; the backend helper's stub settings stay, as they always did here
    tokenizer_model = backend_module("tokenizer_model", stub_environment=True)
    model = tokenizer_model.TritonPythonModel()
    model.buckets, model.pad_id, model.max_text_bytes, model.max_text_chars = [16, 32, 64, 128], 0, 1_000_000, 100_000
    model.load(str(tokenizer_dir / "tokenizer.json"), 128)
    if not plain:  # every text through the full tokenizer, as before the plain path
        model.plain = None
    text = np.array([[b"a sentence of about the usual length " * 12]], dtype=object)
    times = []
    for _ in range(2000):
        start = time.perf_counter()
        model.encode(text)
        times.append((time.perf_counter() - start) * 1e6)
    return statistics.median(times)


def main() -> None:
    """Serve the no-op models, measure, write JSON."""
    out, tokenizer_dir = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    result: dict = {
        "tokenizer_encode_us": tokenizer_us(tokenizer_dir),
        "tokenizer_encode_us full tokenizer only": tokenizer_us(tokenizer_dir, plain=False),
        "tokenizer_encode_us again": tokenizer_us(tokenizer_dir),
    }
    with CpuLatencyHold(0):
        result["tokenizer_encode_us CPU latency 0 us"] = tokenizer_us(tokenizer_dir)
    backend_helper = (ROOT / "templates/python/tritonbuild_backend.py").read_text()
    with tempfile.TemporaryDirectory() as tmp:
        for name, (tensor, dtype, hidden) in MODELS.items():
            version = Path(tmp) / name / "1"
            version.mkdir(parents=True)
            kind = "KIND_GPU" if name.endswith("_gpu") else "KIND_CPU"
            hidden_output = HIDDEN_OUTPUT if hidden else ""
            config = CONFIG.format(name=name, input=tensor, dtype=dtype, hidden=hidden_output, kind=kind)
            (version.parent / "config.pbtxt").write_text(config)
            (version / "model.py").write_text(MODEL.replace("{input}", tensor).replace("HIDDEN:", f"{hidden}:"))
            (version / "tritonbuild_backend.py").write_text(backend_helper)
        for label, (backend, cpu_latency_us, idle_poll) in SETTINGS.items():
            log = out / f"stub_overhead_{label.replace(' ', '_')}.log"
            triton = TritonServer(
                Path(tmp),
                log_path=log,
                python_backend_config=backend,
                cpu_latency_us=cpu_latency_us,
                idle_poll=idle_poll,
            )
            with triton as server:
                result[label] = {name: measure(server, name) for name in MODELS}
    (out / "stub_overhead.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
