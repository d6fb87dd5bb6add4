#!/usr/bin/env bash
# A fuller `tritonbench tune` search on this CPU: the bundled MiniLM (python-onnxruntime, make-repo's default
# engine, the cpu profile), a file of 600 real texts (80 % one sentence, 20 % passages of several), p99 ≤ P99_MS
# (default 250), a quick search from the cpu profile's defaults for MINUTES (default 15: no candidate starts after
# it). Writes OUT (default results/tune_cpu): texts.txt, tune.jsonl and points.jsonl (the store: the same command
# resumes), repo/ with the chosen deployment `minilm`, report/ (report.md, candidates.csv, frontier.png) and logs.
#   usage: scripts/tune_cpu_demo.sh [OUT] [more tritonbench tune options]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-results/tune_cpu}
shift || true
mkdir -p "$out"
.venv/bin/python -c "from client.targets.texts import builtin_mix; print('\n'.join(builtin_mix(0.8, 600, seed=0)))" \
  > "$out/texts.txt"
.venv/bin/python -m client tune --model minilm --task feature-extraction --gpu cpu --engine python-onnxruntime \
  --texts "$out/texts.txt" --p99-ms "${P99_MS:-250}" --search quick --budget-minutes "${MINUTES:-15}" \
  --name minilm --out "$out" "$@"
