"""Precision: the one list of precision names and what each does to a graph, and the fidelity gate.

presets.py holds `PRESETS` (every precision name the project knows, as typed recipes); variants.py
writes the ONNX variant of an exported graph under a recipe; fidelity.py measures a variant (or the
python-torch forward) against PyTorch FP32 on real text and random ids and gates it.
"""
