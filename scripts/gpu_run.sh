#!/usr/bin/env bash
# Everything the GPU host needs, in one call, from carried files only (no registry there):
# unpack the Triton bundle (scripts/make_triton_bundle.sh), install the carried client wheels,
# then the in-process benchmark (gpu_bench.py) and/or the served benchmark (gpu_serve_bench.py).
#   usage: [KERNELS=fused-tanh-gelu] scripts/gpu_run.sh OUT_DIR [inprocess|serve|probe|diag|trunk|all] [MINILM_DIR] [TOKENIZER_DIR]
#   probe: the Python-backend stub's own round trip; trunk: variants of the fused trunk (gpu_trunk_probe.py)
#   diag: where the host side stalls (host_stall_probe.py: in-process with default and fixed thread settings, served)
#   KERNELS: the served models' make-repo --kernels (default fused)
set -euo pipefail
cd "$(dirname "$0")/.."
out=$1; what=${2:-all}; minilm=${3:-.bundle/minilm-fp16}; tokenizer=${4:-.bundle/minilm-tokenizer}
mkdir -p "$out"
work=$(mktemp -d)
export PYTHONUNBUFFERED=1

if [ "$what" = trunk ]; then  # needs nothing carried; cuBLASLt's workspace is read once, at start-up
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/device.txt"
  python3 scripts/gpu_trunk_probe.py "$out/trunk_probe.json" 2>&1 | tee "$out/trunk_probe.log"
  CUBLASLT_WORKSPACE_SIZE=262144 python3 scripts/gpu_trunk_probe.py "$out/trunk_probe_lt256mib.json" --no-autotune \
    2>&1 | tee "$out/trunk_probe_lt256mib.log"
  exit 0
fi
if [ "$what" != inprocess ]; then
  tar -xJf .bundle/triton-bundle.tar.xz -C "$work"
  export TRITONBUILD_TRITONSERVER=$work/pytriton/tritonserver
  # perf_analyzer (client/perf_analyzer.py finds it on PATH) and its libcudart.so.12 and libb64
  export PATH=$work/perf_analyzer/bin:$PATH LD_LIBRARY_PATH=$work/perf_analyzer/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  python3 -m pip install -q --no-index --no-deps --no-compile --target "$work/site" .bundle/wheels/*.whl
  export PATH=$work/site/bin:$PATH  # py-spy
  # The 2.51 backend stub's pybind11 predates numpy 2: BYTES inputs and numpy outputs come out corrupt
  # under the host's numpy 2. Tokenizer and post-processing import this numpy 1.26 first (use_stub_numpy).
  python3 -m pip install -q --no-index --no-deps --no-compile --target "$work/np1" .bundle/np1/*.whl
  export TRITONBUILD_STUB_NUMPY=$work/np1
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}:$work/site
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/device.txt"

if [ "$what" = inprocess ] || [ "$what" = all ]; then
  python3 scripts/gpu_bench.py --out "$out" --minilm "$minilm" 2>&1 | grep -v "Loading weights" | tee "$out/gpu_bench.log"
fi
if [ "$what" = diag ]; then
  for settings in default fixed; do
    python3 scripts/host_stall_probe.py inprocess --out "$out" --tokenizer "$tokenizer" --settings $settings 2>&1 |
      grep -v "Loading weights" | tee "$out/stall_inprocess_$settings.log"
  done
  # served: the backend files of an older commit first when carried (.bundle/templates-COMMIT), then these
  for old in .bundle/templates-*; do
    [ -d "$old" ] || continue
    timeout "${DIAG_SERVED_S:-240}" python3 scripts/host_stall_probe.py served --out "$out" --tokenizer "$tokenizer" \
      --work "$work/probe" --templates "$old" 2>&1 | grep -v "Loading weights" | tee "$out/stall_served_$(basename "$old").log" || true
  done
  timeout "${DIAG_SERVED_S:-240}" python3 scripts/host_stall_probe.py served --out "$out" --tokenizer "$tokenizer" \
    --work "$work/probe" 2>&1 | grep -v "Loading weights" | tee "$out/stall_served_current.log" || true
elif [ "$what" = probe ]; then  # the Python-backend stub's own round trip (scripts/stub_overhead_probe.py)
  python3 scripts/stub_overhead_probe.py "$out" "$tokenizer" 2>&1 | tail -30
elif [ "$what" != inprocess ]; then
  python3 scripts/gpu_serve_bench.py --out "$out" --tokenizer "$tokenizer" --work "$work/serve" --kernels "${KERNELS:-fused}" 2>&1 | tee "$out/serve.log"
fi
