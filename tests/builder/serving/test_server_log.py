from builder.serving.server_log import log_tail

LOG = """I1201 22:16:49.93 1 server.cc:1] "starting"
W1201 22:16:49.93 1 pinned_memory_manager.cc:273] "Unable to allocate pinned system memory: CUDA driver version …"
E1201 22:16:49.93 1 server.cc:241] "CudaDriverHelper has not been initialized."
E1201 22:16:50.10 1 model_lifecycle.cc:642] "failed to load 'broken': RuntimeError: weights are missing"
+------+--------+
| Model | Status |
+------+--------+

Error: Failed to initialize NVML
W1201 22:16:50.63 1 metrics.cc:798] "DCGM unable to start: DCGM initialization error"
I1201 22:16:50.70 1 server.cc:305] "Waiting for in-flight requests to complete."
I1201 22:16:50.71 1 server.cc:336] "All models are stopped, unloading models"
error: creating server: Internal - failed to load all models"""


def test_the_tail_shows_the_last_lines_and_the_errors_above_them_without_cpu_noise():
    tail = log_tail(LOG, gpu=False, last=2).splitlines()
    assert tail == [
        """E1201 22:16:50.10 1 model_lifecycle.cc:642] "failed to load 'broken': RuntimeError: weights are missing\"""",
        "...",
        'I1201 22:16:50.71 1 server.cc:336] "All models are stopped, unloading models"',
        "error: creating server: Internal - failed to load all models",
    ]


def test_a_gpu_host_keeps_its_cuda_lines():
    tail = log_tail(LOG, gpu=True, last=20)
    assert "CudaDriverHelper" in tail and "NVML" in tail and "| Model" not in tail


def test_an_empty_log_says_so():
    assert log_tail("", gpu=False) == "(the log is empty)"
