"""Hugging Face transformers → ONNX → Triton model repositories."""

__version__ = "0.1.0"
