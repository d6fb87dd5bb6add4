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

import numpy as np

try:
    import triton_python_backend_utils as pb_utils
except ImportError:  # imported by unit tests outside the server
    pb_utils = None

# The Python backend stub of Triton 2.51 was built against numpy 1.x: numpy 2 arrays passed to
# pb_utils.Tensor arrive as empty tensors (seen on a GPU host), while DLPack from torch works.
_DLPACK = int(np.__version__.split(".")[0]) >= 2


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

        return pb_utils.Tensor.from_dlpack(name, to_dlpack(array.contiguous()))
    array = np.ascontiguousarray(array)
    if _DLPACK:
        import torch
        from torch.utils.dlpack import to_dlpack

        return pb_utils.Tensor.from_dlpack(name, to_dlpack(torch.from_numpy(array)))
    return pb_utils.Tensor(name, array)


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


def token_inputs(requests: list) -> tuple[list, list, list]:
    """input_ids and attention_mask of each request, and a response slot per request (None, or an error)."""
    ids, masks, errors = [], [], []
    for request in requests:
        a = pb_utils.get_input_tensor_by_name(request, "input_ids").as_numpy()
        m = pb_utils.get_input_tensor_by_name(request, "attention_mask").as_numpy()
        error = None
        if a.shape != m.shape:
            error = pb_utils.InferenceResponse(
                error=pb_utils.TritonError(f"input_ids {a.shape} and attention_mask {m.shape} differ in shape")
            )
        ids.append(a)
        masks.append(m)
        errors.append(error)
    return ids, masks, errors


def run_grouped(ids: list, masks: list, errors: list, run: object, output_name: str) -> list:
    """Run each same-length group of valid requests as one batch through `run(ids, mask)`; one response each."""
    import numpy as np

    responses = list(errors)
    valid = [i for i, e in enumerate(errors) if e is None]
    for indices in group_by_length([ids[i].shape for i in valid]).values():
        members = [valid[i] for i in indices]
        out = run(np.concatenate([ids[i] for i in members]), np.concatenate([masks[i] for i in members]))
        for index, part in zip(members, split_rows(out, [ids[i].shape[0] for i in members]), strict=True):
            responses[index] = pb_utils.InferenceResponse(output_tensors=[output_tensor(output_name, part)])
    return responses
