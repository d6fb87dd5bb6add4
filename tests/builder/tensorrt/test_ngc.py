"""What the NGC container scripts are told by builder.tensorrt.ngc, and serve_ngc.sh run against a stand-in docker CLI.

Docker and the NGC images are not available here. The repositories below are real make-repo plans rendered
to config.pbtxt files (no model artifacts but a model.onnx where a cache key needs its bytes); the `docker`
on PATH in the script test is a labelled stand-in that records its calls and plays a server that exits while
starting. It proves the script's wiring (install once, no --rm, logs kept), not the containers' behaviour.
"""

import os
import subprocess
from pathlib import Path

import pytest

from builder.common.errors import UserError
from builder.engines.onnxruntime_trt import ORT_TRT_CACHE
from builder.gpus import get_profile
from builder.repository.plan import plan_repository
from builder.repository.render import render_config
from builder.sources.source import inspect_model
from builder.tensorrt.ngc import (
    ORT_CPU,
    ORT_GPU,
    READY_ORT_TRT_S,
    READY_S,
    READY_TENSORRT_S,
    STUB_NUMPY,
    TENSORRT_MARKER,
    TORCH_PACKAGES,
    TRITON_IMAGE,
    plan_serving,
    tensorrt_version_from_output,
)
from builder.tensorrt.trt_plan import parse_version

ROOT = Path(__file__).parents[3]
IMAGE = TRITON_IMAGE

# What `docker run nvcr.io/nvidia/tensorrt:24.10-py3 python3 -c ...` prints: the entrypoint's banner first.
BANNER = """
=====================
== NVIDIA TensorRT ==
=====================

NVIDIA Release 24.10 (build 114410260)
NVIDIA TensorRT Version 10.5.0
Copyright (c) 2016-2024, NVIDIA CORPORATION & AFFILIATES. All rights reserved.

Container image Copyright (c) 2024, NVIDIA CORPORATION & AFFILIATES. All rights reserved.

https://developer.nvidia.com/tensorrt

This container image and its contents are governed by the NVIDIA Deep Learning Container License.
By pulling and using the container, you accept the terms and conditions of this license:
https://developer.nvidia.com/ngc/nvidia-deep-learning-container-license

NOTE: The SHMEM allocation limit is set to the default of 64MB.  This may be
   insufficient for TensorRT.  NVIDIA recommends the use of the following flags:
   docker run --gpus all --ipc=host --ulimit memlock=-1 --ulimit stack=67108864 ...

"""


def test_the_tensorrt_version_is_read_after_the_banner():
    output = BANNER + f"{TENSORRT_MARKER}10.5.0.18\n"
    assert tensorrt_version_from_output(output) == "10.5.0.18"
    with pytest.raises(UserError):
        parse_version(output)  # what the script did before: the whole stdout as the version


@pytest.mark.parametrize("output", [BANNER, BANNER + f"{TENSORRT_MARKER}10.5.0.18\n{TENSORRT_MARKER}10.6.0\n"])
def test_no_marker_or_two_markers_are_refused(output):
    with pytest.raises(UserError, match="lines starting with TRITONBUILD_TENSORRT_VERSION="):
        tensorrt_version_from_output(output)


def _repo(folder, engine, gpu, precision="fp32"):
    plan = plan_repository(inspect_model("minilm", "feature-extraction"), "m", engine, get_profile(gpu), precision)
    for model in plan.models:
        (folder / model.config.name / "1").mkdir(parents=True)
        (folder / model.config.name / "config.pbtxt").write_text(render_config(model.config))
        if any(producer == "onnx" for _, producer in model.files):
            (folder / model.config.name / "1" / "model.onnx").write_bytes(b"graph bytes of " + engine.encode())
    return folder


def test_python_onnxruntime_on_a_gpu_gets_the_gpu_build_of_onnx_runtime(tmp_path):
    plan = plan_serving(_repo(tmp_path / "t4", "python-onnxruntime", "t4"), IMAGE)
    assert ORT_GPU in plan.packages and ORT_CPU not in plan.packages  # not the CPU-only wheel
    assert ORT_GPU == "onnxruntime-gpu==1.19.2"  # the ONNX Runtime of Triton 24.10's backend, CUDA 12
    assert {"tokenizers", STUB_NUMPY} <= set(plan.packages)
    assert any("onnxruntime-gpu" in note for note in plan.notes)
    cpu = plan_serving(_repo(tmp_path / "cpu", "python-onnxruntime", "cpu"), IMAGE)
    assert ORT_CPU in cpu.packages and ORT_GPU not in cpu.packages


def test_the_image_is_the_release_of_the_bundled_server():
    assert TRITON_IMAGE == "nvcr.io/nvidia/tritonserver:24.10-py3"  # 24.10 is Triton 2.51, the bundled server


def test_python_torch_models_are_named_with_the_packages_they_still_need(tmp_path):
    plan = plan_serving(_repo(tmp_path / "torch", "python-torch", "h100"), IMAGE)
    assert plan.torch_models == ("m_model",)
    assert not any(p.startswith(("torch", "transformers")) for p in plan.packages)  # serve_ngc.sh: EXTRA_PIP
    assert any(" ".join(TORCH_PACKAGES) in note for note in plan.notes)
    assert [p.split(">=")[0] for p in TORCH_PACKAGES] == ["torch", "transformers"]
    assert "<2.11" in TORCH_PACKAGES[0]  # 2.11 on PyPI is a CUDA 13 build; 24.10 is CUDA 12
    assert plan_serving(_repo(tmp_path / "ort", "python-onnxruntime", "h100"), IMAGE).torch_models == ()


@pytest.mark.serves("tensorrt", "onnxruntime-trt")  # through the NGC container's serve plan: it cannot run here
def test_readiness_budgets_fit_what_the_server_builds_at_load(tmp_path):
    assert plan_serving(_repo(tmp_path / "a", "python-onnxruntime", "cpu"), IMAGE).ready_timeout_s == READY_S
    assert plan_serving(_repo(tmp_path / "b", "tensorrt", "t4", "hybrid"), IMAGE).ready_timeout_s == READY_TENSORRT_S
    ort_trt = plan_serving(_repo(tmp_path / "c", "onnxruntime-trt", "a100", "hybrid"), IMAGE)
    assert ort_trt.ready_timeout_s == READY_ORT_TRT_S >= 10 * READY_S and ort_trt.ort_trt_models == ("m_model",)
    assert ort_trt.packages == ("tokenizers", STUB_NUMPY)  # tokenizer and post models only


@pytest.mark.serves("onnxruntime")  # through the NGC container's serve plan: it cannot run here
def test_triton_onnx_runtime_needs_no_onnx_runtime_wheel_and_no_long_readiness_budget(tmp_path):
    plan = plan_serving(_repo(tmp_path / "ort", "onnxruntime", "t4", "hybrid"), IMAGE)
    assert plan.packages == ("tokenizers", STUB_NUMPY)  # the platform is the container's own backend
    assert plan.ready_timeout_s == READY_S and plan.ort_trt_models == () and plan.torch_models == ()


def test_the_cache_key_follows_the_graphs(tmp_path):
    repo = _repo(tmp_path / "r", "onnxruntime-trt", "a100", "hybrid")
    before = plan_serving(repo, IMAGE).cache_key
    assert plan_serving(repo, "nvcr.io/nvidia/tritonserver:24.11-py3").cache_key != before
    (repo / "m_model" / "1" / "model.onnx").write_bytes(b"another graph")  # an engine built for the old one is stale
    assert plan_serving(repo, IMAGE).cache_key != before


# --- serve_ngc.sh with a stand-in docker CLI ------------------------------------------------------------------

STAND_IN_DOCKER = """#!/usr/bin/env bash
# Stand-in for the docker CLI (not Docker): records each call, plays a server that exits while starting.
printf '%s\\n' "$*" >>"$DOCKER_CALLS"
case "$1" in
  run) [ "$2" = "-d" ] && echo 0123abcd ;;
  inspect) echo false ;;
  logs) echo "E1201 12:00:00.000 1 model_lifecycle.cc:654] failed to load 'm_model': no tokenizers module" ;;
esac
exit 0
"""


def _serve(tmp_path, repo, **env):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "docker").write_text(STAND_IN_DOCKER)
    (bin_dir / "docker").chmod(0o755)
    calls = tmp_path / "calls.txt"
    calls.write_text("")
    environment = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "DOCKER_CALLS": str(calls),
        "TRITONBUILD_CACHE": str(tmp_path / "cache"),
        **env,
    }
    command = ["bash", str(ROOT / "scripts" / "serve_ngc.sh"), str(repo), "18999", "18998", "18997"]
    result = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=120)
    return result, calls.read_text().splitlines()


def test_serve_ngc_installs_once_outside_the_readiness_window_and_keeps_the_log_of_a_failed_start(tmp_path):
    repo = _repo(tmp_path / "repo", "onnxruntime-trt", "a100", "hybrid")
    result, calls = _serve(tmp_path, repo)
    assert result.returncode == 1
    assert "the server exited while starting" in result.stderr and "no tokenizers module" in result.stderr
    install, server = calls[0], next(c for c in calls if c.startswith("run -d"))
    assert install.startswith("run --rm") and "pip install" in install and STUB_NUMPY in install
    words = server.split()
    assert "--rm" not in words and "install" not in words  # the server's container starts tritonserver only
    assert words[words.index(IMAGE) + 1] == "tritonserver"
    assert f":{ORT_TRT_CACHE}" in server  # the cache folder exists before ONNX Runtime looks for it
    assert calls.index(next(c for c in calls if c.startswith("logs"))) < calls.index(
        next(c for c in calls if c.startswith("rm -f"))
    )  # the log is read before the container is removed
    (log,) = (tmp_path / "cache" / "logs").iterdir()
    assert "failed to load 'm_model'" in log.read_text()
    again, calls = _serve(tmp_path, repo)
    assert again.returncode == 1 and not any("pip install" in c for c in calls)  # installed once
