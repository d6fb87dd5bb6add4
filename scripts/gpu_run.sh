#!/usr/bin/env bash
# Everything a GPU host without a registry runs, from the carried .bundle/ only (scripts/prepare_gpu_bundle.sh
# makes it on a machine with a registry): unpack the Triton bundle, install the carried wheels, run one mode.
#   usage: scripts/gpu_run.sh OUT_DIR MODE [MINILM_DIR] [TOKENIZER_DIR]
# MODE, and what it needs carried (one call carries 64 MiB at most; see scripts/prepare_gpu_bundle.sh):
#   serve      the served path against its in-process baseline, self-checking (scripts/bench/gpu_serve_bench.py;
#              exits 1 when the served path falls behind): triton-bundle.tar.xz, wheels, np1, minilm-tokenizer
#   multi      one GPU against every GPU of the host, same deployment (scripts/bench/gpu_multi_bench.py): as serve
#   gate       make-repo's fidelity gate for python-torch precisions on the trained MiniLM, on this GPU:
#              minilm-fp16, wheels
#   inprocess  the in-process kernel benchmarks and fidelity (scripts/bench/gpu_bench.py): minilm-fp16
#   diag       where the host side stalls (scripts/probes/host_stall_probe.py): as serve (+ templates-COMMIT to
#              serve older files)
#   served-ab  diag's served half only: the carried templates-COMMIT backend files, then the current ones, in
#              one call on one machine (an A/B of the stubs' code)
#   profile    diag's served half with concurrency 64 added: py-spy profiles of one stub of each model under that load,
#              and the single model with SINGLE_INSTANCES (default 4) instances at c64 (host_stall_probe served --profile):
#              as serve
#   probe      the Python-backend stub's own round trip (scripts/probes/stub_overhead_probe.py): as serve
#   phases     each ensemble step's time inside and between its stub's execute() calls, and the model step's GPU span,
#              under perf_analyzer (scripts/probes/phase_probe.py), one server per ';'-separated run of PHASE_ARGS
#              (default: one run with the probe's defaults, idle poll and MPS on): as serve. E.g. "--points
#              bert@1,bert@64 --layouts float,main,float,main": the stubs' main threads floating, then each on a CPU of
#              its own, by turns on one server (scripts/probes/stub_affinity.py)
#   trunk      variants of the fused trunk (scripts/probes/gpu_trunk_probe.py): nothing
#   study      the first seed's whole experiment, the default `tritonbench study` (its --example config):
#              triton-bundle.tar.xz, wheels, np1, minilm-tokenizer (as serve). Writes OUT/study.jsonl (the store),
#              OUT/report/ (report.md, report.html, charts, points.csv), OUT/plan.txt (this call's plan with
#              each point's estimate), OUT/study.log, OUT/tritonserver.log. STUDY_CONFIG replaces the default.
#              One call measures what its estimate fits in STUDY_MINUTES (default 7.5) and is stopped after
#              STUDY_SECONDS (default 540) whatever happens; the store keeps every finished point. Split across
#              calls: copy the OUT of a call into the working tree (e.g. scripts/results/h200_study/) and give
#              it as STUDY_RESUME in the next call, which copies its study.jsonl into OUT and measures the rest.
#              On an H200 the default plan splits in two: the CPU baseline, fidelity and in process (348
#              points, ~6.6 min estimated), then the 32 served points (~3.5 min with the server's start).
#              Built models and the repository stay in STUDY_WORK (default .study-work, ignored by git), so a
#              machine still warm skips make-repo.
#   tune       `tritonbench tune` on a random-weight BERT-base classifier (the BERT-uncased tokenizer carried in
#              minilm-tokenizer), engine python-torch fp16 (KERNELS), the GPU profile GPU (default h200), the built-in
#              mix of 80 % one-sentence texts and 20 % passages, p99 ≤ TUNE_P99_MS (default 10): a quick search from
#              the profile's defaults for TUNE_MINUTES (default 2: no candidate starts after it), then the default
#              and the chosen configuration measured again back to back, the chosen one built, loaded and queried.
#              Needs what serve needs: triton-bundle.tar.xz, wheels, np1, minilm-tokenizer. Writes OUT/tune/
#              (tune.jsonl, points.jsonl, report/ with report.md, candidates.csv and frontier.png, the logs, repo/
#              with the chosen deployment `tuned`) and OUT/tune.log; stopped after TUNE_SECONDS (default 270)
#              whatever happens, then the report is written from the store. TUNE_RESUME: a previous call's OUT/tune,
#              whose store this call continues (measured candidates are not measured again). The fidelity gate is
#              off: random weights make speed, not accuracy, meaningful. The model is made in TUNE_WORK (default
#              .tune-work, ignored by git) and reused while the machine stays warm. TUNE_ARGS: more tune options,
#              e.g. "--dimension max_batch_size=64,128,256 --search brute".
#   all        inprocess, then serve
# The Python scripts run as modules from the repository's root (python3 -m scripts.bench.X, scripts.probes.X).
# Environment: KERNELS (make-repo --kernels of the served models, default fused-tanh-gelu), GPU (default h200),
# SERVE_ARGS (more gpu_serve_bench options for serve, e.g. "--single-instances 8 --idle-poll off,on --mps on").
set -euo pipefail
cd "$(dirname "$0")/.."
out=$1; what=${2:-all}; minilm=${3:-.bundle/minilm-fp16}; tokenizer=${4:-.bundle/minilm-tokenizer}
mkdir -p "$out"
work=$(mktemp -d)
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/device.txt"
# How idle CPUs sleep here decides what each hand-over between threads costs (builder/serving/cpu_latency.py)
{ echo "cpus: $(nproc); uid: $(id -u); cpuidle: $(cat /sys/devices/system/cpu/cpuidle/current_driver 2>/dev/null)"
  echo "guest_halt_poll_ns: $(cat /sys/module/haltpoll/parameters/guest_halt_poll_ns 2>/dev/null || echo none)"
  ls -l /dev/cpu_dma_latency 2>&1
  echo "mps control: $(command -v nvidia-cuda-mps-control || echo none); compute mode: $(nvidia-smi \
--query-gpu=compute_mode --format=csv,noheader 2>&1)"
  # which vCPUs share a core, a cache, a socket: where a stub that sleeps and wakes may land
  lscpu 2>/dev/null | grep -E "^(Model name|Socket|Core|Thread|NUMA node|L1d|L2|L3)" || true
  echo "cpu0 siblings: $(cat /sys/devices/system/cpu/cpu0/topology/thread_siblings_list 2>/dev/null || echo unknown)"
} | tee "$out/host.txt"

if [ "$what" = trunk ]; then  # cuBLASLt's workspace is read once, at start-up
  python3 -m scripts.probes.gpu_trunk_probe "$out/trunk_probe.json" 2>&1 | tee "$out/trunk_probe.log"
  CUBLASLT_WORKSPACE_SIZE=262144 python3 -m scripts.probes.gpu_trunk_probe "$out/trunk_probe_lt256mib.json" --no-autotune \
    2>&1 | tee "$out/trunk_probe_lt256mib.log"
  exit 0
fi
if [ -d .bundle/wheels ]; then  # tritonclient (the builder parses configs with its protobufs) and py-spy
  python3 -m pip install -q --no-index --no-deps --no-compile --target "$work/site" .bundle/wheels/*.whl
  export PATH=$work/site/bin:$PATH
fi
if [ -f .bundle/triton-bundle.tar.xz ] && [ "$what" != inprocess ] && [ "$what" != gate ]; then  # a server runs
  tar -xJf .bundle/triton-bundle.tar.xz -C "$work"
  export TRITONBUILD_TRITONSERVER=$work/pytriton/tritonserver
  # perf_analyzer (client/perf_analyzer.py finds it on PATH) and its libcudart.so.12 and libb64
  export PATH=$work/perf_analyzer/bin:$PATH LD_LIBRARY_PATH=$work/perf_analyzer/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  # The 2.51 backend stub's pybind11 predates numpy 2: BYTES inputs and numpy outputs come out corrupt
  # under the host's numpy 2. Tokenizer and post-processing import this numpy 1.26 first (use_stub_numpy).
  python3 -m pip install -q --no-index --no-deps --no-compile --target "$work/np1" .bundle/np1/*.whl
  export TRITONBUILD_STUB_NUMPY=$work/np1
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}:$work/site

case $what in
  inprocess|all)
    python3 -m scripts.bench.gpu_bench --out "$out" --minilm "$minilm" 2>&1 | grep -v "Loading weights" | tee "$out/gpu_bench.log" ;;
esac
case $what in
  serve|all)
    python3 -m scripts.bench.gpu_serve_bench --out "$out" --tokenizer "$tokenizer" --work "$work/serve" --gpu "${GPU:-h200}" \
      --kernels "${KERNELS:-fused-tanh-gelu}" ${SERVE_ARGS:-} 2>&1 | grep -v "Loading weights" | tee "$out/serve.log" ;;
  multi)
    python3 -m scripts.bench.gpu_multi_bench --out "$out" --tokenizer "$tokenizer" --work "$work/multi" --gpu "${GPU:-h200}" \
      2>&1 | grep -v "Loading weights" | tee "$out/multi.log" ;;
  gate)  # three consecutive bf16 runs on growing samples of real text, the Hugging Face kernels, and fp16
    status=0
    for spec in "bf16 fused 128" "bf16 fused 256" "bf16 fused 512" "bf16 hf 512" "fp16 fused-tanh-gelu 512"; do
      set -- $spec
      python3 -m builder make-repo --model "$minilm" --task feature-extraction --name gate --engine python-torch \
        --gpu "${GPU:-h200}" --precision "$1" --kernels "$2" --texts "$3" --output "$work/gate-$1-$2-$3" 2>&1 |
        grep -v "Loading weights" | tee "$out/gate_$1_$2_$3.log" || status=1
    done
    echo "gate: make-repo refused at least one precision: $([ $status = 1 ] && echo yes || echo no)" ;;
  diag|served-ab)
    for settings in default fixed; do
      [ "$what" = diag ] || break
      python3 -m scripts.probes.host_stall_probe inprocess --out "$out" --tokenizer "$tokenizer" --settings $settings 2>&1 |
        grep -v "Loading weights" | tee "$out/stall_inprocess_$settings.log"
    done
    # served: the backend files of an older commit first when carried (.bundle/templates-COMMIT), then these
    for old in .bundle/templates-*; do
      [ -d "$old" ] || continue
      timeout "${DIAG_SERVED_S:-240}" python3 -m scripts.probes.host_stall_probe served --out "$out" --tokenizer "$tokenizer" \
        --work "$work/probe" --templates "$old" 2>&1 | grep -v "Loading weights" | tee "$out/stall_served_$(basename "$old").log" || true
    done
    timeout "${DIAG_SERVED_S:-240}" python3 -m scripts.probes.host_stall_probe served --out "$out" --tokenizer "$tokenizer" \
      --work "$work/probe" 2>&1 | grep -v "Loading weights" | tee "$out/stall_served_current.log" || true ;;
  profile)
    timeout "${DIAG_SERVED_S:-420}" python3 -m scripts.probes.host_stall_probe served --out "$out" --tokenizer "$tokenizer" \
      --work "$work/probe" --profile --single-instances "${SINGLE_INSTANCES:-4}" 2>&1 | grep -v "Loading weights" |
      tee "$out/stall_profile.log" || true ;;
  probe)
    python3 -m scripts.probes.stub_overhead_probe "$out" "$tokenizer" 2>&1 | tail -30 ;;
  phases)  # one server per PHASE_ARGS run, separated by ';', e.g. "--mps on;--mps on --model-instances 1"
    IFS=";" read -ra runs <<< "${PHASE_ARGS:- }"
    for i in "${!runs[@]}"; do
      python3 -m scripts.probes.phase_probe --out "$out/phases$((i + 1))" --tokenizer "$tokenizer" \
        --work "$work/phases$((i + 1))" --gpu "${GPU:-h200}" ${runs[$i]} 2>&1 | grep -v "Loading weights" |
        tee "$out/phases$((i + 1)).log"
    done ;;
  study)  # STUDY_CONFIG replaces the default (the --example config)
    config=${STUDY_CONFIG:-$work/study.toml}
    [ -n "${STUDY_CONFIG:-}" ] || python3 -m client study --example > "$config"
    if [ -n "${STUDY_RESUME:-}" ] && [ -f "$STUDY_RESUME/study.jsonl" ]; then
      cp "$STUDY_RESUME/study.jsonl" "$out/study.jsonl"
      echo "study: resuming from $STUDY_RESUME/study.jsonl ($(wc -l < "$out/study.jsonl") points)"
    fi
    args=("$config" --out "$out" --work "${STUDY_WORK:-.study-work}" --vocab "$tokenizer")
    python3 -m client study "${args[@]}" --dry-run --max-minutes "${STUDY_MINUTES:-7.5}" > "$out/plan.txt"
    head -4 "$out/plan.txt" | tee "$out/study.log"
    if ! timeout -k 15 "${STUDY_SECONDS:-540}" python3 -m client study "${args[@]}" --max-minutes "${STUDY_MINUTES:-7.5}" \
      --no-progress 2>&1 | grep -v "Loading weights" | tee -a "$out/study.log"; then
      echo "study: stopped early (time limit or error, above); every finished point is in $out/study.jsonl" |
        tee -a "$out/study.log"
      python3 -m client study "${args[@]}" --report-only 2>&1 | tee -a "$out/study.log"
    fi ;;
  tune)  # the model's path is part of the search's identity: the same path in every call, so TUNE_RESUME works
    model=${TUNE_WORK:-.tune-work}/bert-base
    python3 -c "import sys; from pathlib import Path; from builder.sources.random_models import make_random_model; \
make_random_model('bert-base', 'text-classification', Path(sys.argv[1]), Path(sys.argv[2]))" "$model" "$tokenizer"
    mkdir -p "$out/tune"
    if [ -n "${TUNE_RESUME:-}" ] && [ -f "$TUNE_RESUME/tune.jsonl" ]; then
      cp "$TUNE_RESUME/tune.jsonl" "$TUNE_RESUME/points.jsonl" "$out/tune/" 2>/dev/null || true
      echo "tune: resuming from $TUNE_RESUME ($(grep -c '"kind": "candidate"' "$out/tune/tune.jsonl") candidates)"
    fi
    args=(--model "$model" --task text-classification --gpu "${GPU:-h200}" --engine python-torch
      --precision fp16 --kernels "${KERNELS:-fused-tanh-gelu}" --mix 0.8 --p99-ms "${TUNE_P99_MS:-10}" --out "$out/tune")
    if ! timeout -k 15 "${TUNE_SECONDS:-270}" python3 -m client tune "${args[@]}" --budget-minutes "${TUNE_MINUTES:-2}" \
      --window-s 0.5 --warmup-s 0.3 --no-validate ${TUNE_ARGS:-} 2>&1 | grep -v "Loading weights" | tee "$out/tune.log"; then
      echo "tune: stopped early (time limit or error, above); every finished candidate is in $out/tune/tune.jsonl" |
        tee -a "$out/tune.log"
      python3 -m client tune --out "$out/tune" --report-only 2>&1 | tee -a "$out/tune.log"
    fi
    rm -rf "$out/tune/repo/tuned_model/1/hf" ;;  # 440 MB of random weights: the configs and the manifest come back
  inprocess) ;;
  *) echo "gpu_run.sh: unknown mode '$what'" >&2; exit 2 ;;
esac
