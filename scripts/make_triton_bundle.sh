#!/usr/bin/env bash
# Make a relocatable tritonserver bundle (server, Python backend, one backend stub, their libraries)
# from the nvidia-pytriton wheel installed in .venv, for a GPU host without a registry, with
# perf_analyzer (from the tritonclient 2.51.0 wheel) and the two libraries it needs beside it.
#   usage: scripts/make_triton_bundle.sh [OUT.tar.xz] [PYTHON_VERSION_OF_THE_TARGET]   (default 3.12)
# Unpack it anywhere and point TRITONBUILD_TRITONSERVER at <dir>/pytriton/tritonserver; put
# <dir>/perf_analyzer/bin on PATH and <dir>/perf_analyzer/lib on LD_LIBRARY_PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:-.bundle/triton-bundle.tar.xz}")
pyver=${2:-3.12}
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
[ -x "$site/pytriton/tritonserver/bin/tritonserver" ] || { echo "nvidia-pytriton is not installed in .venv" >&2; exit 1; }
[ -f "$site/pytriton/tritonserver/python_backend_stubs/$pyver/triton_python_backend_stub" ] ||
  { echo "no backend stub for Python $pyver in the wheel" >&2; exit 1; }
cudart=$(.venv/bin/python -c 'from client.generators.perf_analyzer import cuda_runtime_lib; print(cuda_runtime_lib() or "")')
b64=$(ldconfig -p | awk '/libb64\.so\.0d/ {print $NF; exit}')
[ -x .venv/bin/perf_analyzer ] && [ -n "$cudart" ] && [ -n "$b64" ] ||
  { echo "perf_analyzer, libcudart.so.12 or libb64.so.0d is missing: run scripts/setup.sh" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
pa=$(mktemp -d)
trap 'rm -rf "$pa"' EXIT
mkdir -p "$pa/perf_analyzer/bin" "$pa/perf_analyzer/lib"
cp .venv/bin/perf_analyzer "$pa/perf_analyzer/bin/"
cp -L "$cudart/libcudart.so.12" "$b64" "$pa/perf_analyzer/lib/"
# The RPATHs ($ORIGIN/../../../nvidia_pytriton.libs) need this layout; the wheel's own libpython is not needed.
tar -C "$site" -cf - --exclude='nvidia_pytriton.libs/libpython3*' \
  pytriton/tritonserver/bin pytriton/tritonserver/backends pytriton/tritonserver/caches \
  "pytriton/tritonserver/python_backend_stubs/$pyver" nvidia_pytriton.libs -C "$pa" perf_analyzer |
  xz -T0 -6 > "$out"
echo "$out: $(du -h "$out" | cut -f1)"
