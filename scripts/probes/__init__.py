"""One-off probes: each answered one question once (what each found is under scripts/results/).

host_stall_probe (where the served path's host side stalls), stub_probe and stub_overhead_probe (what the Python
backend stub imports and costs), gpu_trunk_probe, gpu_tunableop_probe, gpu_fp8_probe and gpu_compile_probe
(what else could speed the fused trunk). They time with scripts/bench/timing.py, as the benchmarks do.
"""
