"""Shared by the Python-backend models that tritonbuild writes; copied next to each model.py.

Import it before numpy: the bundled server's backend stub ignores PYTHONPATH, so `tritonbuild serve`
names the site-packages to use in TRITONBUILD_SITE_PACKAGES and this module puts them first.
"""

from __future__ import annotations

import json
import os
import sys

if os.environ.get("TRITONBUILD_SITE_PACKAGES"):
    sys.path[:0] = os.environ["TRITONBUILD_SITE_PACKAGES"].split(os.pathsep)


def __getattr__(name: str) -> object:
    """`tb.pb_utils`, imported on first use; None outside the server (unit tests).

    triton_python_backend_utils imports numpy, and each model chooses its numpy first (use_stub_numpy).
    """
    if name != "pb_utils":
        raise AttributeError(name)
    try:
        import triton_python_backend_utils
    except ImportError:
        return None
    return triton_python_backend_utils


def _pb() -> object:
    return __getattr__("pb_utils")


def use_stub_numpy() -> bool:
    """Put TRITONBUILD_STUB_NUMPY (a numpy 1.x folder) first, for models that exchange numpy arrays.

    The 2.51 backend stub's pybind11 predates numpy 2: under numpy 2, BYTES inputs decode as garbage
    and numpy outputs arrive empty (seen on a GPU host). The stub loads numpy lazily, so a model that
    imports a numpy 1.x first is safe. The token-id PyTorch model skips this and passes tensors by
    DLPack; the single text model needs it for TEXT and hides what breaks under it (hide_modules).
    Returns whether it put the numpy 1.x first.
    """
    if os.environ.get("TRITONBUILD_STUB_NUMPY") and "numpy" not in sys.modules:
        sys.path.insert(0, os.environ["TRITONBUILD_STUB_NUMPY"])
        return True
    return False


def hide_modules(*names: str) -> None:
    """Make installed packages look absent (sys.modules[name] = None): optional imports then skip them.

    Under the stub's numpy 1.x (use_stub_numpy) the host's SciPy and scikit-learn, built for numpy 2,
    import half-way and break transformers, which imports them whenever they are installed (seen on the
    H100 host); marked absent, they are skipped. Inference needs neither.
    """
    for name in names:
        sys.modules[name] = None  # type: ignore[assignment]


def params(args: dict) -> dict[str, str]:
    """The string parameters of the model's config.pbtxt."""
    return {k: v["string_value"] for k, v in json.loads(args["model_config"])["parameters"].items()}


def output_names(args: dict) -> list[str]:
    """Names of the model's outputs, in config order."""
    return [o["name"] for o in json.loads(args["model_config"])["output"]]


def read_json(args: dict, name: str, default: object) -> object:
    """A JSON file from the version folder, or `default` when there is none."""
    path = version_file(args, name)
    if not os.path.exists(path):
        return default
    with open(path) as f:
        return json.load(f)


def version_file(args: dict, name: str) -> str:
    """Path of a file in the model's version folder."""
    return os.path.join(args["model_repository"], args["model_version"], name)


def output_tensor(name: str, array: object) -> object:
    """A numeric output tensor from a numpy array or a torch tensor, whatever numpy the stub runs with."""
    if hasattr(array, "__torch_function__"):  # a torch tensor: hand it over without a copy
        from torch.utils.dlpack import to_dlpack

        return _pb().Tensor.from_dlpack(name, to_dlpack(array.contiguous()))
    import numpy as np

    array = np.ascontiguousarray(array)
    if int(np.__version__.split(".")[0]) >= 2:  # see use_stub_numpy: numpy 2 arrays do not survive the stub
        import torch
        from torch.utils.dlpack import to_dlpack

        return _pb().Tensor.from_dlpack(name, to_dlpack(torch.from_numpy(array)))
    return _pb().Tensor(name, array)


def group_by_length(shapes: list[tuple[int, ...]]) -> dict[int, list[int]]:
    """Request indices grouped by sequence length (axis 1), in arrival order within each group."""
    groups: dict[int, list[int]] = {}
    for index, shape in enumerate(shapes):
        groups.setdefault(shape[1], []).append(index)
    return groups


def split_rows(batch: object, sizes: list[int]) -> list:
    """Split a concatenated batch (numpy array or torch tensor) back into per-request parts."""
    parts, start = [], 0
    for size in sizes:
        parts.append(batch[start : start + size])
        start += size
    return parts


def token_inputs(requests: list, read: object = None) -> tuple[list, list, list]:
    """input_ids and attention_mask of each request, and a response slot per request (None, or an error).

    `read` turns an input tensor into a numpy array (default: as_numpy, which needs the stub's numpy).
    """
    read = read or (lambda tensor: tensor.as_numpy())
    ids, masks, errors = [], [], []
    for request in requests:
        a = read(_pb().get_input_tensor_by_name(request, "input_ids"))
        m = read(_pb().get_input_tensor_by_name(request, "attention_mask"))
        error = None
        if a.shape != m.shape:
            error = _pb().InferenceResponse(
                error=_pb().TritonError(f"input_ids {a.shape} and attention_mask {m.shape} differ in shape")
            )
        ids.append(a)
        masks.append(m)
        errors.append(error)
    return ids, masks, errors


def run_grouped(ids: list, masks: list, errors: list, run: object, outputs: object) -> list:
    """Run each same-length group of valid requests as one batch through `run(ids, mask)`; one response each.

    `outputs(part)` turns a request's rows of the result into its output tensors.
    """
    import numpy as np

    responses = list(errors)
    valid = [i for i, e in enumerate(errors) if e is None]
    for indices in group_by_length([ids[i].shape for i in valid]).values():
        members = [valid[i] for i in indices]
        out = run(np.concatenate([ids[i] for i in members]), np.concatenate([masks[i] for i in members]))
        for index, part in zip(members, split_rows(out, [ids[i].shape[0] for i in members]), strict=True):
            responses[index] = _pb().InferenceResponse(output_tensors=outputs(part))
    return responses
