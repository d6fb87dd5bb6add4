"""Shared by the Python-backend models that tritonbuild writes; copied next to each model.py.

Import it before numpy: the bundled server's backend stub ignores PYTHONPATH, so `tritonbuild serve`
names the site-packages to use in TRITONBUILD_SITE_PACKAGES and this module puts them first.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
import traceback
from dataclasses import dataclass

if os.environ.get("TRITONBUILD_SITE_PACKAGES"):
    sys.path[:0] = os.environ["TRITONBUILD_SITE_PACKAGES"].split(os.pathsep)

# Every stub starts with one thread per pool, before numpy, torch or tokenizers create theirs: each library
# otherwise sizes its pool to every core, in every stub process, and a host with two GPU instances, four
# tokenizers and post-processing then runs dozens of pools on the same cores. configure_threads() then
# widens the pools of models that compute on the CPU.
for _variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "RAYON_NUM_THREADS"):
    os.environ[_variable] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"  # tokenizers' own pool (Rayon) stays unstarted
os.environ["TORCHINDUCTOR_COMPILE_THREADS"] = "1"  # compile in the stub: no pool of compile workers left behind


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


@functools.cache
def _pb() -> object:
    """pb_utils, imported once: every request's tensors and responses go through it."""
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


def host_cores() -> int:
    """The cores this process may run on (its affinity mask, which containers and taskset narrow)."""
    return len(os.sched_getaffinity(0))


def instance_count(args: dict) -> int:
    """How many instances of this model the server runs (each is its own stub process)."""
    groups = json.loads(args["model_config"]).get("instance_group") or [{}]
    return sum(int(group.get("count", 1)) for group in groups)


def thread_count(args: dict, computes_on_host: bool) -> int:
    """Threads for this instance's compute pools: the rule every stub follows.

    A stub whose instances compute on the CPU (a CPU model, the tokenizer) shares the host's cores among its
    instances; every other stub (a GPU model, whose host work is copies and launches, post-processing) gets
    one thread, its parallelism coming from instances and batching. Many threads in a GPU model's stub are
    worse than useless: on the H200 host, after the CUDA graphs were captured, each intra-op parallel copy
    into fresh memory cost a flat 8 ms with 16 threads and 17 µs with one (scripts/probes/host_stall_probe.py).
    The config parameter `host_threads` (make-repo --host-threads) overrides the rule.
    """
    explicit = params(args).get("host_threads", "auto")
    if explicit != "auto":
        return max(1, int(explicit))
    return max(1, host_cores() // instance_count(args)) if computes_on_host else 1


def configure_threads(args: dict, computes_on_host: bool) -> dict[str, object]:
    """Apply the thread rule to every pool this process has loaded; returns what is set, also printed to the log."""
    threads = thread_count(args, computes_on_host)
    settings: dict[str, object] = {"threads": threads, "cores": host_cores(), "instances": instance_count(args)}
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)
    if "torch" in sys.modules:
        import torch

        torch.set_num_threads(threads)
        if torch.get_num_interop_threads() != 1:
            with contextlib.suppress(RuntimeError):  # possible only before the first inter-op task
                torch.set_num_interop_threads(1)
        settings.update(torch_threads=torch.get_num_threads(), torch_interop_threads=torch.get_num_interop_threads())
    # tokenizers reads both when its pool starts, at the first batch it encodes
    os.environ["RAYON_NUM_THREADS"] = str(threads)
    os.environ["TOKENIZERS_PARALLELISM"] = "true" if threads > 1 else "false"
    settings.update(rayon_threads=threads, tokenizers_parallelism=os.environ["TOKENIZERS_PARALLELISM"])
    name = json.loads(args["model_config"])["name"]
    described = " ".join(f"{k}={v}" for k, v in settings.items())
    print(f"tritonbuild: {name} instance {args.get('model_instance_name', '?')}: {described}", flush=True)
    return settings


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
    """A numeric output tensor from a numpy array or a torch tensor, whatever numpy the stub runs with.

    It runs for every output of every request: what it needs is imported once (the cached helpers below).
    """
    if hasattr(array, "__torch_function__"):  # a torch tensor: hand it over without a copy
        return _pb().Tensor.from_dlpack(name, _torch_to_dlpack()(array.contiguous()))
    array = sys.modules["numpy"].ascontiguousarray(array)  # numpy is loaded: `array` is one of its arrays
    if _numpy_major() >= 2:  # see use_stub_numpy: numpy 2 arrays do not survive the stub
        import torch

        return _pb().Tensor.from_dlpack(name, _torch_to_dlpack()(torch.from_numpy(array)))
    return _pb().Tensor(name, array)


@functools.cache
def _torch_to_dlpack() -> object:
    from torch.utils.dlpack import to_dlpack

    return to_dlpack


@functools.cache
def _numpy_major() -> int:
    return int(sys.modules["numpy"].__version__.split(".")[0])


class OutputArena:
    """One host buffer for a model's outputs, handed out in slices during one execute() and reused by the next.

    The stub copies every output tensor into shared memory when execute() returns, so the buffer is free
    again for the next call; slices taken within one call never overlap. It grows (a new buffer) only when a
    call needs more than any before: at steady state no request allocates an output buffer.
    """

    def __init__(self, dtype: object) -> None:
        import numpy as np

        self.buffer = np.empty(0, dtype)
        self.used = 0

    def reset(self) -> None:
        """Start a new execute(): every slice handed out before may be overwritten."""
        self.used = 0

    def take(self, shape: tuple[int, ...]) -> object:
        """A C-contiguous array of `shape` that no other slice of this execute() overlaps."""
        import numpy as np

        size = int(np.prod(shape))
        if self.used + size > self.buffer.size:  # earlier slices keep the old buffer alive
            self.buffer = np.empty(max(2 * self.buffer.size, self.used + size), self.buffer.dtype)
            self.used = 0
        view = self.buffer[self.used : self.used + size].reshape(shape)
        self.used += size
        return view


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


class InputError(ValueError):
    """A request the client must fix: answered INVALID_ARGUMENT (HTTP 400) with a short message, alone."""


def error_response(model: str, exc: BaseException) -> object:
    """The error response for one request that raised `exc`.

    An InputError is the client's: INVALID_ARG with its message. Anything else is ours: INTERNAL with a
    short message; its traceback goes to the server log (the stub's stderr), never to the client.
    """
    if isinstance(exc, InputError):
        return invalid_argument(str(exc))
    print(f"tritonbuild: {model}: a request failed:", file=sys.stderr)
    traceback.print_exception(exc, file=sys.stderr)
    sys.stderr.flush()
    message = f"{model} failed on this request ({type(exc).__name__}); the server log has the details"
    return _pb().InferenceResponse(error=_pb().TritonError(message, _pb().TritonError.INTERNAL))


def invalid_argument(message: str) -> object:
    """An INVALID_ARG error response (gRPC INVALID_ARGUMENT, HTTP 400): the client's request is wrong."""
    return _pb().InferenceResponse(error=_pb().TritonError(message, _pb().TritonError.INVALID_ARG))


@dataclass(frozen=True)
class TokenLimits:
    """What a token-id model accepts: ids below its vocabulary size, at most max_length tokens per row."""

    vocab_size: int
    max_length: int

    @classmethod
    def of(cls, args: dict) -> TokenLimits:
        """The limits the planner wrote into the model's config parameters."""
        parameters = params(args)
        return cls(int(parameters["vocab_size"]), int(parameters["max_length"]))

    def check(self, ids: object, mask: object) -> None:
        """Raise InputError unless (ids, mask) is a batch this model can run."""
        self.check_shape(ids, mask)
        self.check_values(ids, mask)

    def check_shape(self, ids: object, mask: object) -> None:
        """Raise InputError unless ids and mask have one runnable shape: no reduction, nothing read."""
        if ids.shape != mask.shape:
            raise InputError(f"input_ids {list(ids.shape)} and attention_mask {list(mask.shape)} differ in shape")
        rows, length = ids.shape
        if rows == 0 or length == 0:
            raise InputError(f"input_ids {list(ids.shape)} is empty")
        if length > self.max_length:
            raise InputError(f"input_ids has {length} tokens per row; the limit is {self.max_length}")

    def check_values(self, ids: object, mask: object) -> None:
        """Raise InputError unless every id is in the vocabulary and every mask row is 0/1 with a real token.

        Four reductions whatever the batch (read as unsigned, a negative value is a huge one): run on a merged
        batch, they cost per execute() what they cost per request (each numpy call's fixed overhead dominates
        rows of a few hundred tokens).
        """
        import numpy as np

        if int(ids.astype(np.int64, copy=False).view(np.uint64).max()) >= self.vocab_size:
            low = int(ids.min())
            bad = low if low < 0 else int(ids.max())
            raise InputError(f"input_ids has token id {bad}; ids must be in [0, {self.vocab_size})")
        if int(mask.astype(np.int64, copy=False).view(np.uint64).max()) > 1:
            raise InputError("attention_mask must hold only 0 and 1")
        if int(mask.max(axis=1).min()) == 0:
            raise InputError("attention_mask has a row without any real token")


@dataclass
class Group:
    """Valid requests of one sequence length, run as one batch: their indices and each one's ids and mask."""

    members: list[int]
    ids: list
    masks: list
    merged: tuple | None = None  # (ids, mask) of all members, once concatenated

    def batch(self) -> tuple:
        """The members' rows as one (ids, mask) batch: a lone request's own arrays, else concatenated once."""
        if self.merged is None:
            if len(self.members) == 1:
                self.merged = (self.ids[0], self.masks[0])
            else:
                import numpy as np

                self.merged = (np.concatenate(self.ids), np.concatenate(self.masks))
        return self.merged

    def alone(self, position: int) -> Group:
        """The group of one member (by its position here)."""
        return Group([self.members[position]], [self.ids[position]], [self.masks[position]])


def groups_of(ids: list, masks: list, errors: list) -> list[Group]:
    """Requests without an error, grouped by sequence length, in arrival order within each group."""
    valid = [i for i, e in enumerate(errors) if e is None]
    groups = []
    for indices in group_by_length([ids[i].shape for i in valid]).values():
        members = [valid[i] for i in indices]
        groups.append(Group(members, [ids[i] for i in members], [masks[i] for i in members]))
    return groups


def token_inputs(requests: list, limits: TokenLimits, read: object = None) -> tuple[list[Group], list]:
    """The valid requests' input_ids and attention_mask in same-length groups, and a response slot per request.

    A slot holds None, or the error response of a request that fails `limits`, so a bad request fails alone and
    never reaches a batch it would fail for everyone: shapes one by one, values once per group on its merged batch
    (kept for run_grouped), and one by one only in a group that fails, to find the requests at fault. `read` turns
    an input tensor into a numpy array (default: as_numpy, which needs the stub's numpy).
    """
    read = read or (lambda tensor: tensor.as_numpy())
    ids, masks, errors = [], [], []
    for request in requests:
        # one pass over the request's inputs (get_input_tensor_by_name walks them for every name asked)
        tensors = {tensor.name(): tensor for tensor in request.inputs()}
        a, m = read(tensors["input_ids"]), read(tensors["attention_mask"])
        try:
            limits.check_shape(a, m)
        except InputError as exc:
            a = m = None
            errors.append(invalid_argument(str(exc)))
        else:
            errors.append(None)
        ids.append(a)
        masks.append(m)
    checked = []
    for group in groups_of(ids, masks, errors):
        try:
            limits.check_values(*group.batch())
            checked.append(group)
            continue
        except InputError as exc:
            if len(group.members) == 1:
                errors[group.members[0]] = invalid_argument(str(exc))
                continue
        for position in range(len(group.members)):  # some member is bad: each is checked on its own
            alone = group.alone(position)
            try:
                limits.check_values(*alone.batch())
                checked.append(alone)
            except InputError as exc:
                errors[alone.members[0]] = invalid_argument(str(exc))
    return checked, errors


def run_grouped(model: str, groups: list[Group], errors: list, run: object, outputs: object) -> list:
    """Run each group as one batch through `run(ids, mask)`; one response per request, `errors` filling the rest.

    `outputs(part)` turns a request's rows of the result into its output tensors. When a merged batch
    fails, its requests are run again one by one: only the request that fails on its own gets an error.
    `run` may return a view of a buffer it reuses (the Runner's per-length output buffer), which holds until
    its next call at that length: the stub copies outputs out only when execute() returns, so the one-by-one
    retries, which call it at the same length within one execute(), keep a copy of each result.
    """
    responses = list(errors)
    response = _pb().InferenceResponse
    for group in groups:
        try:
            out = run(*group.batch())
            parts = split_rows(out, [a.shape[0] for a in group.ids]) if len(group.members) > 1 else [out]
            for index, part in zip(group.members, parts, strict=True):
                responses[index] = response(output_tensors=outputs(part))
        except Exception:
            for position, index in enumerate(group.members):
                try:
                    part = _copy(run(*group.alone(position).batch()))
                    responses[index] = response(output_tensors=outputs(part))
                except Exception as exc:
                    responses[index] = error_response(model, exc)
    return responses


def _copy(result: object) -> object:
    """A copy of a numpy array or torch tensor that no later call can overwrite."""
    return result.clone() if hasattr(result, "__torch_function__") else result.copy()
