#!/usr/bin/env bash
# Set up a fresh machine: a virtual environment in .venv with everything the project needs.
# Safe to run again; it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
pip=(.venv/bin/python -m pip install -q --disable-pip-version-check)

# torch first and pinned: this machine kind keeps a CPU build of 2.13.0 on disk, while an unpinned
# torch would pull a multi-GB CUDA build. Set TORCH_SPEC to choose another build.
.venv/bin/python -c "import torch" 2>/dev/null || "${pip[@]}" "${TORCH_SPEC:-torch==2.13.0}"
"${pip[@]}" -e ".[dev]"
# Type stubs for TensorRT's Python API: tests/builder/test_tensorrt_types.py runs mypy on builder/tensorrt_engine.py
# against them. --no-deps, because they require the real tensorrt (NVIDIA's index). With them installed,
# `import tensorrt` succeeds as an empty namespace package; builder/engine_build.py looks for a real Builder.
"${pip[@]}" --no-deps tensorrt-stubs==10.13.0.35.1
# KServe's generated API models (V1beta1InferenceService, ...) for tests/k8s_validation.py, --no-deps: the package's
# own dependencies are its model server (FastAPI, uvicorn, pandas, grpcio-tools, protobuf>=6), which would replace
# the protobuf 4 that tritonclient 2.51 needs. The models themselves import only six and urllib3.
"${pip[@]}" --no-deps kserve==0.21.0

# The bundled tritonserver's Python backend stub links the system's shared libpython of the same version.
version=$(.venv/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if ! ldconfig -p | grep -q "libpython$version.so.1.0"; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && apt-get install -y -qq "libpython$version" >/dev/null
  else
    echo "setup: the Triton Python backend needs libpython$version.so.1.0: install libpython$version" >&2
    exit 1
  fi
fi

# perf_analyzer (shipped in the tritonclient 2.51.0 wheel) links libb64.so.0d, which Debian/Ubuntu package as libb64-0d.
if ! ldconfig -p | grep -q "libb64.so.0d"; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && apt-get install -y -qq libb64-0d >/dev/null
  else
    echo "setup: warning: perf_analyzer needs libb64.so.0d (install libb64-0d); everything else works" >&2
  fi
fi
# `tritonbuild serve --replicas` balances its servers with nginx (Debian's package: HTTP and gRPC proxying). It runs
# as a child process in a folder of its own; the package's own service is not used (in a container policy-rc.d keeps
# it from starting).
if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get install -y -qq -o DPkg::Lock::Timeout=300 nginx-light >/dev/null 2>&1 \
      || { apt-get update -qq && apt-get install -y -qq -o DPkg::Lock::Timeout=300 nginx-light >/dev/null; }
  else
    echo "setup: warning: tritonbuild serve --replicas needs nginx (install nginx-light); everything else works" >&2
  fi
fi
echo "setup: ready (.venv: $(.venv/bin/python --version), torch $(.venv/bin/python -c 'import torch; print(torch.__version__)'))"
