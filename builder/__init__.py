"""Hugging Face transformers → ONNX → Triton model repositories (`tritonbuild`).

The stages, one subpackage each: sources/ (the model and its export), precision/ (the precision names,
the ONNX variants, the fidelity gate), engines/ (the serving backends make-repo --engine chooses),
tensorrt/ (TensorRT engines and the NGC containers), repository/ (planning and writing a repository),
serving/ (the bundled tritonserver), deploy/ (cluster manifests), cli/ (the command line). support.py
answers which backend serves which precision on which GPU profile (gpus.py); common/ and contract/ are
the leaves the client may import too.
"""

__version__ = "0.1.0"
