#!/usr/bin/env bash
# Make a relocatable tritonserver bundle (server, Python backend, one backend stub, their libraries)
# from the nvidia-pytriton wheel installed in .venv, for a GPU host without a registry.
#   usage: scripts/make_triton_bundle.sh [OUT.tar.xz] [PYTHON_VERSION_OF_THE_TARGET]   (default 3.12)
# Unpack it anywhere and point TRITONBUILD_TRITONSERVER at <dir>/pytriton/tritonserver.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:-.bundle/triton-bundle.tar.xz}")
pyver=${2:-3.12}
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
[ -x "$site/pytriton/tritonserver/bin/tritonserver" ] || { echo "nvidia-pytriton is not installed in .venv" >&2; exit 1; }
[ -f "$site/pytriton/tritonserver/python_backend_stubs/$pyver/triton_python_backend_stub" ] ||
  { echo "no backend stub for Python $pyver in the wheel" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
# The RPATHs ($ORIGIN/../../../nvidia_pytriton.libs) need this layout; the wheel's own libpython is not needed.
tar -C "$site" -cf - --exclude='nvidia_pytriton.libs/libpython3*' \
  pytriton/tritonserver/bin pytriton/tritonserver/backends pytriton/tritonserver/caches \
  "pytriton/tritonserver/python_backend_stubs/$pyver" nvidia_pytriton.libs | xz -T0 -6 > "$out"
echo "$out: $(du -h "$out" | cut -f1)"
