"""The Python-backend model files (templates/python), imported in this process the way the server imports them.

The server runs each model folder's `model.py` with that folder on its path, so the files import each other by
bare name (`import tritonbuild_backend`, `import fused_transformer`): they are imported here the same way, from
the `templates` package's own folder. This module imports neither torch nor numpy, so a caller may import the
backend helper before either loads (scripts/probes/host_stall_probe.py measures what its settings change).
"""

from __future__ import annotations

import importlib
import os
import sys
from importlib.resources import files


def backend_module(name: str, *, stub_environment: bool = False) -> object:
    """templates/python/`name`.py, imported the way the server imports it.

    Importing the backend helper (tritonbuild_backend, which every model file imports first) gives a process a
    stub's settings: one thread per pool (OMP, MKL, OpenBLAS, Rayon), tokenizers' pool off, one compile thread.
    They are for a stub process, not this one, so they are undone, unless `stub_environment`: a process that
    should run as a stub runs (the benchmark scripts, which always kept them). Only the import that first loads
    the helper sets them; later calls find it loaded.
    """
    folder = str(files("templates") / "python")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    saved = dict(os.environ)
    try:
        return importlib.import_module(name)
    finally:
        if not stub_environment:
            os.environ.clear()
            os.environ.update(saved)
