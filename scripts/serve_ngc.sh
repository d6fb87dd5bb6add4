#!/usr/bin/env bash
# Serve a model repository with NVIDIA's Triton container (the release matching the bundled 2.51 server).
# Needed for engines the bundled server lacks (onnxruntime_onnx, tensorrt_plan). Runs on a host with
# Docker and the NVIDIA container toolkit; the repository is mounted read-only.
#   usage: scripts/serve_ngc.sh [REPO] [HTTP_PORT] [GRPC_PORT] [METRICS_PORT]
# `python -m builder.tensorrt.ngc serve-plan` decides what the repository needs: the Python-backend packages (installed
# once per image and package list into a cached folder, before the server starts; onnxruntime-gpu for
# python-onnxruntime on a GPU), the readiness budget (longer when ONNX Runtime builds TensorRT engines at load)
# and a host folder for ONNX Runtime's TensorRT caches, keyed by the graphs, so engines survive a restart.
# DETACH=1 returns once the server is ready, printing the container's name last (docker rm -f NAME ends it).
# READY_TIMEOUT overrides the budget (seconds); EXTRA_PIP adds packages; TRT_CACHE_DIR replaces the cache folder;
# TRITON_ARGS adds tritonserver options, e.g. --backend-config=tensorrt,version-compatible=true for engines
# built --version-compatible. The server's log is kept in LOG_DIR (default ~/.cache/tritonbuild/logs).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
repo=$(realpath "${1:-repo}")
http=${2:-8000}; grpc=${3:-8001}; metrics=${4:-8002}
image=${TRITON_IMAGE:-nvcr.io/nvidia/tritonserver:24.10-py3}
name=tritonbuild-$$
cache_root=${TRITONBUILD_CACHE:-$HOME/.cache/tritonbuild}
plan=$("$root/.venv/bin/python" -m builder.tensorrt.ngc serve-plan "$repo" "$image")
eval "$plan"
packages="$PIP_PACKAGES ${EXTRA_PIP:-}"
user=(--user "$(id -u):$(id -g)")  # what the containers write in host folders stays the caller's

pip_dir=$cache_root/ngc-pip/$(printf '%s' "$image $packages" | sha256sum | cut -c1-16)
mkdir -p "$pip_dir"
if [ -n "${packages// /}" ] && [ ! -e "$pip_dir/.installed" ]; then
  echo "installing into $pip_dir (once): $packages"
  # shellcheck disable=SC2086  # the package list splits into words on purpose
  docker run --rm "${user[@]}" -v "$pip_dir:/opt/tritonbuild/pip" "$image" python3 -m pip install -q \
    --no-cache-dir --disable-pip-version-check --target /opt/tritonbuild/pip $packages
  touch "$pip_dir/.installed"
fi
mounts=(-v "$repo:/models:ro" -v "$pip_dir:/opt/tritonbuild/pip:ro")
if [ -n "$ORT_TRT_MODELS" ]; then  # the folder exists before the server starts: ONNX Runtime only creates one level
  cache=${TRT_CACHE_DIR:-$cache_root/ort-trt/$CACHE_KEY}
  mkdir -p "$cache"
  mounts+=(-v "$(realpath "$cache"):$ORT_TRT_CACHE")
  echo "ONNX Runtime TensorRT caches of $ORT_TRT_MODELS: $cache"
fi

logs=${LOG_DIR:-$cache_root/logs}/$name.log
mkdir -p "$(dirname "$logs")"
# No --rm: a container that exits while starting keeps its log until finish() has copied it.
docker run -d --name "$name" "${user[@]}" --gpus "${GPUS:-all}" --shm-size=1g --ulimit memlock=-1 \
  --ulimit stack=67108864 -p "$http:8000" -p "$grpc:8001" -p "$metrics:8002" "${mounts[@]}" \
  -e TRITONBUILD_SITE_PACKAGES=/opt/tritonbuild/pip "$image" tritonserver --model-repository=/models \
  --strict-readiness=true --exit-on-error=true ${TRITON_ARGS:-} >/dev/null
finish() { docker logs "$name" >"$logs" 2>&1 || true; docker rm -f "$name" >/dev/null 2>&1 || true; }
trap finish EXIT

wait_s=${READY_TIMEOUT:-$READY_DEFAULT_S}
for ((waited = 0; waited < wait_s; waited++)); do
  if curl -sf "localhost:$http/v2/health/ready" >/dev/null; then
    if [ -n "${DETACH:-}" ]; then
      trap - EXIT
      echo "ready: HTTP localhost:$http, gRPC localhost:$grpc, metrics localhost:$metrics; docker rm -f $name ends it"
      echo "$name"
      exit 0
    fi
    echo "ready: HTTP localhost:$http, gRPC localhost:$grpc, metrics localhost:$metrics (Ctrl-C stops; log: $logs)"
    docker logs -f "$name" || true
    exit 0
  fi
  if [ "$(docker inspect -f '{{.State.Running}}' "$name" 2>/dev/null)" != "true" ]; then
    echo "the server exited while starting" >&2
    break
  fi
  sleep 1
done
finish
trap - EXIT
echo "not ready after $waited s (budget $wait_s s); log: $logs; its last lines:" >&2
tail -n 40 "$logs" >&2
exit 1
