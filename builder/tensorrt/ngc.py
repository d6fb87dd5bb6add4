"""What the NGC containers need, decided here so the scripts stay thin and the decisions are tested without Docker.

`scripts/serve_ngc.sh` asks `python -m builder.tensorrt.ngc serve-plan REPO IMAGE` which packages the repository's
Python-backend models need, how long the server may take to become ready, and where ONNX Runtime's
TensorRT caches live; `scripts/build_engine_ngc.sh` pipes the TensorRT container's output through
`python -m builder.tensorrt.ngc tensorrt-version`.
"""

from __future__ import annotations

import hashlib
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import click

from builder.common.cli import UserErrorGroup
from builder.common.errors import ServerError
from builder.engines.onnxruntime_trt import ORT_TRT_CACHE
from builder.repository.modelconfig import parse_config
from builder.tensorrt.trt_plan import EngineError, parse_version

# The Triton release matching the bundled 2.51 server. Its -py3 image carries every backend tritonbuild's engines
# use (Python, ONNX Runtime, TensorRT, PyTorch/LibTorch) and the S3/GCS repository support the bundled server lacks.
NGC_RELEASE = "24.10"
TRITON_IMAGE = f"nvcr.io/nvidia/tritonserver:{NGC_RELEASE}-py3"
# The TensorRT container prints its banner to stdout before running a command: the version follows this marker.
TENSORRT_MARKER = "TRITONBUILD_TENSORRT_VERSION="
# Triton 24.10 (Python 3.10, CUDA 12.6, cuDNN 9) builds its own ONNX Runtime backend from ONNX Runtime 1.19.2;
# the PyPI onnxruntime-gpu wheels are CUDA 12 builds from 1.19 on. The plain onnxruntime wheel is CPU only.
ORT_GPU = "onnxruntime-gpu==1.19.2"
ORT_CPU = "onnxruntime==1.19.2"
# The 2.51 backend stub's pybind11 predates numpy 2 (see templates/python/tritonbuild_backend.py); a pip
# --target folder would otherwise get the newest numpy with onnxruntime.
STUB_NUMPY = "numpy<2"
# python-torch models import torch and transformers in the Python backend's own interpreter, which no 24.10 image
# provides: -pyt-python-py3 has the LibTorch backend (TorchScript) and a packed environment for its `pytorch`
# Python platform, not a torch for model.py files. PyPI's torch wheels are CUDA 12 builds up to 2.10 (CUDA 12.8),
# CUDA 13 from 2.11 on; 24.10 is a CUDA 12.6 release.
TORCH_PACKAGES = ("torch>=2.5,<2.11", "transformers>=4.45,<6")
READY_S = 120  # Python-backend models only: the packages are installed before the server starts
READY_TENSORRT_S = 300  # tensorrt_plan: engines are deserialized, not built
READY_ORT_TRT_S = 1200  # onnxruntime-trt: ONNX Runtime builds a TensorRT engine per instance at load


@dataclass(frozen=True)
class ServePlan:
    """How scripts/serve_ngc.sh starts the NGC Triton container for one repository."""

    packages: tuple[str, ...]  # installed once into a cached --target folder, before the server starts
    ready_timeout_s: int
    ort_trt_models: tuple[str, ...]  # models whose ONNX Runtime TensorRT caches are mounted at ORT_TRT_CACHE
    torch_models: tuple[str, ...]  # python-torch models: they also need TORCH_PACKAGES, which `packages` leaves out
    cache_key: str  # names the host folder of those caches: engines are only valid for the graphs they came from
    notes: tuple[str, ...]


def tensorrt_version_from_output(output: str) -> str:
    """The TensorRT version a container printed after TENSORRT_MARKER, whatever banner came before it."""
    found = [line.strip()[len(TENSORRT_MARKER) :] for line in output.splitlines() if line.startswith(TENSORRT_MARKER)]
    if len(found) != 1:
        raise EngineError(
            f"the container printed {len(found)} lines starting with {TENSORRT_MARKER}, not one:\n{output[-800:]}",
            hint="check that the image has TensorRT's Python package (python3 -c 'import tensorrt')",
        )
    parse_version(found[0])
    return found[0]


def _digest(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def plan_serving(repo: Path, image: str) -> ServePlan:
    """Read every config.pbtxt of `repo` and decide packages, readiness budget and caches."""
    configs = {p.parent.name: parse_config(p.read_text(), str(p)) for p in sorted(repo.glob("*/config.pbtxt"))}
    if not configs:
        raise ServerError(f"no model configs in {repo}", hint="build a repository with tritonbuild make-repo")
    python = {name: c for name, c in configs.items() if c.backend == "python"}
    onnxruntime = [name for name, c in python.items() if "providers" in c.parameters]  # python-onnxruntime
    gpu = any(g.kind == g.KIND_GPU for name in onnxruntime for g in configs[name].instance_group)
    packages: tuple[str, ...] = ("tokenizers", STUB_NUMPY) if python else ()
    if onnxruntime:
        packages += (ORT_GPU if gpu else ORT_CPU,)
    ort_trt = tuple(
        name
        for name, c in configs.items()
        if c.platform == "onnxruntime_onnx"
        and any(a.name == "tensorrt" for a in c.optimization.execution_accelerators.gpu_execution_accelerator)
    )
    budget = READY_S
    if any(c.platform == "tensorrt_plan" for c in configs.values()):
        budget = READY_TENSORRT_S
    if ort_trt:
        budget = READY_ORT_TRT_S
    key = hashlib.sha256(image.encode())
    for name in ort_trt:
        key.update(f"{name}:{_digest(repo / name / '1' / 'model.onnx')}".encode())
    torch = tuple(name for name, c in python.items() if "kernels" in c.parameters)
    extra = " ".join(TORCH_PACKAGES)
    notes = tuple(
        f"{name} is a python-torch model: the container has no torch, add it with EXTRA_PIP='{extra}'" for name in torch
    )
    if gpu:
        notes += (f"python-onnxruntime on the GPU: installing {ORT_GPU} (CUDA 12), not the CPU-only onnxruntime",)
    return ServePlan(packages, budget, ort_trt, torch, key.hexdigest()[:16], notes)


@click.group(cls=UserErrorGroup)
def main() -> None:
    """Decisions for the NGC container scripts."""


@main.command("serve-plan")
@click.argument("repo", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.argument("image")
def serve_plan(repo: Path, image: str) -> None:
    """Print the plan as shell assignments (for eval in serve_ngc.sh); notes go to stderr."""
    plan = plan_serving(repo, image)
    values = {
        "PIP_PACKAGES": " ".join(plan.packages),
        "READY_DEFAULT_S": str(plan.ready_timeout_s),
        "ORT_TRT_MODELS": " ".join(plan.ort_trt_models),
        "CACHE_KEY": plan.cache_key,
        "ORT_TRT_CACHE": ORT_TRT_CACHE,
    }
    for name, value in values.items():
        click.echo(f"{name}={shlex.quote(value)}")
    for note in plan.notes:
        click.echo(f"note: {note}", err=True)


@main.command("tensorrt-version")
def tensorrt_version() -> None:
    """Read a container's output on stdin; print the TensorRT version it reported after the marker."""
    click.echo(tensorrt_version_from_output(sys.stdin.read()))


if __name__ == "__main__":
    main()
