#!/usr/bin/env bash
# Serve a model repository with NVIDIA's Triton container (the release matching the bundled 2.51 server).
# Needed for engines the bundled server lacks (onnxruntime_onnx, tensorrt_plan). Runs on a host with
# Docker and the NVIDIA container toolkit; the repository is mounted read-only.
#   usage: scripts/serve_ngc.sh [REPO] [HTTP_PORT] [GRPC_PORT] [METRICS_PORT]
# DETACH=1 returns once the server is ready, printing the container's name last (docker stop NAME ends it).
# TRITON_ARGS adds tritonserver options, e.g. --backend-config=tensorrt,version-compatible=true for engines
# built --version-compatible. TRT_CACHE_DIR mounts a host folder for onnxruntime-trt's engine and timing caches.
set -euo pipefail
repo=$(realpath "${1:-repo}")
http=${2:-8000}; grpc=${3:-8001}; metrics=${4:-8002}
image=${TRITON_IMAGE:-nvcr.io/nvidia/tritonserver:24.10-py3}
gpus=${GPUS:-all}
name=tritonbuild-$$

cache=()
if [ -n "${TRT_CACHE_DIR:-}" ]; then mkdir -p "$TRT_CACHE_DIR"; cache=(-v "$(realpath "$TRT_CACHE_DIR"):/tmp/tritonbuild-trt-cache"); fi

docker run --rm -d --name "$name" --gpus "$gpus" --shm-size=1g --ulimit memlock=-1 --ulimit stack=67108864 \
  -p "$http:8000" -p "$grpc:8001" -p "$metrics:8002" -v "$repo:/models:ro" ${cache[@]+"${cache[@]}"} "$image" \
  bash -c "pip install -q ${EXTRA_PIP:-tokenizers onnxruntime} && exec tritonserver --model-repository=/models \
           --strict-readiness=true --exit-on-error=true ${TRITON_ARGS:-}" >/dev/null
trap 'docker stop "$name" >/dev/null' EXIT
# The Python-backend models (tokenizer, post, python-onnxruntime) import these packages in the container.

wait_s=${READY_TIMEOUT:-120}  # the container installs packages before tritonserver starts
for _ in $(seq 1 "$wait_s"); do
  if curl -sf "localhost:$http/v2/health/ready" >/dev/null; then
    if [ -n "${DETACH:-}" ]; then
      trap - EXIT
      echo "ready: HTTP localhost:$http, gRPC localhost:$grpc, metrics localhost:$metrics; docker stop $name ends it"
      echo "$name"
      exit 0
    fi
    echo "ready: HTTP localhost:$http, gRPC localhost:$grpc, metrics localhost:$metrics (Ctrl-C stops)"
    docker logs -f "$name"
    exit 0
  fi
  sleep 1
done
echo "not ready after $wait_s s; last log lines:" >&2
docker logs --tail 40 "$name" >&2
exit 1
