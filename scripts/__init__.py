"""What a user runs, at the top: setup.sh (the .venv), the GPU host's bundle and runs (prepare_gpu_bundle.sh,
make_triton_bundle.sh, gpu_run.sh), NVIDIA's containers (build_engine_ngc.sh, serve_ngc.sh, tensorrt_ngc.sh) and
tune_cpu_demo.sh. bench/ holds the benchmarks, probes/ the one-off probes, results/ what they measured (its README
is the index). The Python scripts are modules: run them from the repository's root, `python -m scripts.bench.X`.
"""
