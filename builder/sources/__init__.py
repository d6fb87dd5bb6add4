"""Where a deployment starts: the source model and its export.

source.py resolves a model folder or hub id into `ModelInfo`; archs.py holds one declarative export spec
per architecture, tasks.py one record per task; export.py writes the ONNX graph and parity.py checks it
against PyTorch; random_models.py makes the built-in full-size models with random weights.
"""
