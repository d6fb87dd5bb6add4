#!/usr/bin/env bash
# The TensorRT path end to end, on a GPU host with Docker and the NVIDIA container toolkit:
# export (host, CPU) → engine (nvcr.io/nvidia/tensorrt, this GPU) → repository with that engine →
# nvcr.io/nvidia/tritonserver:24.10-py3 → readiness → tritonbench sweep → stop.
#   usage: scripts/tensorrt_ngc.sh GPU_PROFILE [PRECISION] [MODEL] [NAME]
# Both containers must carry the same TensorRT version (24.10 and 24.10), or the server refuses the engine.
set -euo pipefail
cd "$(dirname "$0")/.."
gpu=${1:?usage: scripts/tensorrt_ngc.sh GPU_PROFILE [PRECISION] [MODEL] [NAME]}
precision=${2:-hybrid}; model=${3:-minilm}; name=${4:-minilm}; task=${TASK:-feature-extraction}
work=build/tensorrt/$name-$gpu-$precision
repo=${REPO:-build/tensorrt/repo}
results=${RESULTS:-results/tensorrt-$name-$gpu-$precision}

.venv/bin/tritonbuild export --model "$model" --task "$task" --output "$work/onnx"
# The engine's profiles end at the model's maximum length (export.json), as the repository's tokenizer pads up to it.
scripts/build_engine_ngc.sh "$work/onnx/model.onnx" "$gpu" "$precision" "$work/engine/model.plan"
.venv/bin/tritonbuild make-repo --model "$model" --task "$task" --name "$name" --gpu "$gpu" --engine tensorrt \
  --precision "$precision" --engine-file "$work/engine/model.plan" --output "$repo" --force

container=$(DETACH=1 scripts/serve_ngc.sh "$repo" | tee /dev/stderr | tail -n 1)
mkdir -p "$results"
trap 'docker logs "$container" >"$results/server.log" 2>&1; docker rm -f "$container" >/dev/null' EXIT
.venv/bin/tritonbench sweep --url 127.0.0.1:8001 --protocol grpc --model "$name" --repo "$repo" \
  --batch-sizes "${BATCH_SIZES:-1,8,32}" --seq-lens "${SEQ_LENS:-16,128}" --concurrency "${CONCURRENCY:-1,4,16}" \
  --metrics-url http://127.0.0.1:8002/metrics --variant "tensorrt-$precision" --out "$results"
.venv/bin/tritonbench report "$results" --out "$results/report"
