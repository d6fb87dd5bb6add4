"""The serving backends that `make-repo --engine` chooses from: one module each, registered by subclassing.

base.py holds the record (`ServingBackend`) and the model slot it fills; python_onnxruntime.py,
python_torch.py, onnxruntime.py, tensorrt.py and onnxruntime_trt.py declare one backend each. `BACKENDS`
lists them in the CLI's order; tests fail when a module here is left out of `_ORDER`, or when a registered
backend has no golden config or serving test.
"""

from __future__ import annotations

from collections.abc import Callable

from builder.common.errors import ConfigError
from builder.engines import onnxruntime, onnxruntime_trt, python_onnxruntime, python_torch, tensorrt
from builder.engines.base import REGISTRY, ServingBackend

# The modules, in the order the CLI lists their backends (importing them registered the backends).
_ORDER = (python_onnxruntime, python_torch, onnxruntime, tensorrt, onnxruntime_trt)
BACKENDS: dict[str, ServingBackend] = {
    backend.name: backend
    for module in _ORDER
    for backend in REGISTRY.values()
    if type(backend).__module__ == module.__name__
}
DEFAULT = "python-onnxruntime"  # make-repo --engine's default: the bundled server runs it on any machine


def names(where: Callable[[ServingBackend], object], joined: str = " or ") -> str:
    """The names of the backends `where` holds for, in the CLI's order, for messages: 'a or b'."""
    return joined.join(name for name, backend in BACKENDS.items() if where(backend))


def get_backend(name: str) -> ServingBackend:
    """A serving backend by its `--engine` name, with an error that lists them."""
    try:
        return BACKENDS[name]
    except KeyError:
        raise ConfigError(f"unknown engine '{name}'", hint=f"choose one of: {', '.join(BACKENDS)}") from None
