#!/usr/bin/env python3
"""Rebuild model.plan: TensorRT 10.5.0, weak typing, precision hybrid, GPU profile t4.

Written by tritonbuild 0.1.0, which runs this file in a child process to build the engine.
Build again on the target GPU with: python3 model.plan.build.py
It needs TensorRT, polygraphy, numpy and onnxruntime, and this project importable
(pip install -e REPO, or PYTHONPATH=REPO). Paths in SPEC are relative to this folder.
"""

import sys
from pathlib import Path

from builder.tensorrt_engine import main

SPEC = {'engine': 'model.plan',
 'extra': {'onnx': '/models/minilm/model.onnx', 'tritonbuild': '0.1.0'},
 'feeds': 'model.plan.feeds.npz',
 'flags': ['fp16'],
 'fp32_nodes': {'node_Softmax_1': 'Softmax'},
 'gpu': 't4',
 'input_names': ['input_ids', 'attention_mask'],
 'memory': None,
 'network_onnx': 'model.onnx',
 'precision': 'hybrid',
 'profiles': [{'max_batch': 64,
               'max_length': 16,
               'min_batch': 1,
               'min_length': 1,
               'opt_batch': 64,
               'opt_length': 16},
              {'max_batch': 64,
               'max_length': 32,
               'min_batch': 1,
               'min_length': 17,
               'opt_batch': 64,
               'opt_length': 32},
              {'max_batch': 64,
               'max_length': 64,
               'min_batch': 1,
               'min_length': 33,
               'opt_batch': 64,
               'opt_length': 64},
              {'max_batch': 64,
               'max_length': 128,
               'min_batch': 1,
               'min_length': 65,
               'opt_batch': 64,
               'opt_length': 128},
              {'max_batch': 64,
               'max_length': 256,
               'min_batch': 1,
               'min_length': 129,
               'opt_batch': 64,
               'opt_length': 256}],
 'reference_onnx': 'model.onnx',
 'route': 'weak',
 'settings': {'hardware_compatibility': 'none',
              'optimization_level': 3,
              'tf32': False,
              'timing_cache': 'timing.cache',
              'version_compatible': False,
              'workspace_bytes': 4294967296},
 'tensorrt_version': '10.5.0',
 'thresholds': {'max_abs_diff': 0.05, 'min_cosine': 0.9998}}

if __name__ == "__main__":
    sys.exit(main(SPEC, Path(__file__).resolve().parent))
