"""TensorRT engines (`tritonbuild engine`, `make-repo --engine tensorrt`) and the NGC containers.

trt_plan.py decides a build as data (route, shape profiles, FP32 layers, settings, thresholds) without
TensorRT; engine_build.py prepares its files and runs it in a child process, the reproduce script that
imports tensorrt_engine.py, the only module that calls TensorRT; trt_memory.py estimates what the served
engine holds on the GPU; ngc.py decides what the NGC container scripts need (`python -m builder.tensorrt.ngc`).
Nothing is imported here: trt_plan and tensorrt_engine also run inside the TensorRT container.
"""
