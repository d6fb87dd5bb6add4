"""Load generators.

tritonbench's own (asyncio closed and open loops, perf_analyzer's windows and stability rule) and NVIDIA's
perf_analyzer binary.
"""
