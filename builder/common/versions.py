"""The versions of the packages that shape a build or a measurement, for the record."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

_PACKAGES = ("tritonbuild", "torch", "transformers", "onnx", "onnxruntime", "tokenizers", "tritonclient")


def package_versions() -> dict[str, str]:
    """Versions of the packages that shape a build, for the record."""
    found = {}
    for name in _PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found
