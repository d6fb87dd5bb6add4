#!/usr/bin/env bash
# Build a TensorRT engine on this host's GPU inside NVIDIA's TensorRT container, verified against ONNX Runtime FP32.
# Engines only run on the GPU model (and TensorRT version) that built them: run this on the target GPU.
# The host plans (.venv, no TensorRT needed) for the container's TensorRT version; the container runs the
# reproduce script that planning wrote beside the engine, with the repository mounted at the same path.
#   usage: scripts/build_engine_ngc.sh ONNX GPU_PROFILE PRECISION OUTPUT.plan [more `tritonbuild engine` options]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 4 ]; then
  echo "usage: scripts/build_engine_ngc.sh ONNX GPU_PROFILE PRECISION OUTPUT.plan [tritonbuild engine options]" >&2
  exit 2
fi
root=$PWD
onnx=$(realpath "$1"); gpu=$2; precision=$3; output=$(realpath -m "$4"); shift 4
image=${TENSORRT_IMAGE:-nvcr.io/nvidia/tensorrt:24.10-py3}
mkdir -p "$(dirname "$output")" .trt-cache

run=(docker run --rm --gpus "${GPUS:-all}" -v "$root:$root" -w "$root")
for dir in "$(dirname "$onnx")" "$(dirname "$output")"; do  # folders outside the repository, same paths inside
  case "$dir" in "$root" | "$root"/*) ;; *) run+=(-v "$dir:$dir") ;; esac
done

# NGC images print their banner to stdout before the command runs: the version follows a marker line.
marker=$(.venv/bin/python -c 'from builder.tensorrt.ngc import TENSORRT_MARKER; print(TENSORRT_MARKER)')
output=$("${run[@]}" "$image" python3 -c "import tensorrt; print('$marker' + tensorrt.__version__)")
version=$(printf '%s\n' "$output" | .venv/bin/python -m builder.tensorrt.ngc tensorrt-version)
echo "$image: TensorRT $version"
.venv/bin/tritonbuild engine --onnx "$onnx" --gpu "$gpu" --precision "$precision" --output "$output" \
  --tensorrt-version "$version" --timing-cache "$root/.trt-cache/timing-$version-$gpu.cache" --plan-only "$@"

# The container runs as root: hand what it writes back to the caller.
owner="$(id -u):$(id -g)"
"${run[@]}" -e PYTHONPATH="$root" "$image" bash -c "
  python3 -m pip install -q --disable-pip-version-check 'polygraphy>=0.48.1' onnxruntime &&
  python3 '$output.build.py' > '$output.build.log' 2>&1; code=\$?
  chown -R '$owner' '$(dirname "$output")' '$root/.trt-cache'; exit \$code" || {
  echo "engine build failed; the last lines of $output.build.log:" >&2
  tail -n 30 "$output.build.log" >&2
  exit 1
}
echo "built $output on $(nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1)"
echo "record: $output.build.json; rebuild: python3 $output.build.py (in the same container)"
