"""The benchmarks: each measures on this machine, prints tables and writes JSON (or Markdown) to --out.

gpu_bench (in-process kernels and fidelity), gpu_serve_bench (the served path against its in-process baseline,
self-checking), gpu_multi_bench (one GPU against all of them), bench_vs_perf_analyzer (tritonbench against
perf_analyzer), precision_bench (the ONNX precision variants on the CPU), reliability_bench (failures and
recovery). timing.py is what they and the probes share: how they time and observe.
"""
