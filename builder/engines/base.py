"""The record every serving backend fills in, and the registry it joins by subclassing.

A serving backend (what `make-repo --engine` names) is one subclass of `ServingBackend` in its own module,
registered under its name: `class PythonTorch(ServingBackend, name="python-torch")`. Its class attributes
declare what it is (description, the precisions it serves, where it runs, whether it serves the ONNX
precision variant, the files it stages, which fidelity gate judges it); `model_folder` turns the repository's
model slot into its config and files. The CLI, the support matrix (builder/support.py), make-repo's steps,
`tritonbuild serve`'s refusal and the tests read these records instead of comparing names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from builder.common.errors import ConfigError
from builder.gpus import GpuProfile
from builder.precision.presets import PRESETS
from builder.repository.layout import FileEntry, ModelDirPlan
from builder.repository.modelconfig import DynamicBatching, InstanceGroup, ModelConfigSpec, TensorSpec

if TYPE_CHECKING:
    from builder.repository.options import ServingOptions
    from builder.sources.source import ModelInfo
    from builder.sources.tasks import GraphModule

# Every registered backend, in the order the CLI lists them (the import order of builder/engines/__init__.py).
REGISTRY: dict[str, ServingBackend] = {}


class GateKind(Enum):
    """What judges a backend's precision before its repository is published."""

    VARIANT = "the fidelity gate on the ONNX precision variant, run on ONNX Runtime's CPU provider"
    TORCH = "the fidelity gate on the backend's own PyTorch forward, on the build host's GPU when it has one"
    TENSORRT_BUILD = "the TensorRT build's own verification against ONNX Runtime FP32 on real text"
    NONE = "nothing before serving: the server applies the precision to the FP32 graph when it loads it"


@dataclass(frozen=True)
class ModelSlot:
    """The model folder a backend fills: its name, tensors, batcher and instances are the repository's."""

    info: ModelInfo
    gpu: GpuProfile
    precision: str
    serving: ServingOptions
    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    dynamic_batching: DynamicBatching
    instances: InstanceGroup

    def config(self, **fields: Any) -> ModelConfigSpec:
        """The model's config: the slot's fields with the backend's own (which win)."""
        common: dict[str, Any] = {
            "name": self.name,
            "max_batch_size": self.gpu.max_batch_size,
            "inputs": self.inputs,
            "outputs": self.outputs,
            "dynamic_batching": self.dynamic_batching,
            "instance_groups": (self.instances,),
        }
        return ModelConfigSpec(**{**common, **fields})


@dataclass(frozen=True)
class Staging:
    """What a backend's own file producers get while make-repo stages the repository."""

    info: ModelInfo
    gpu: GpuProfile
    precision: str
    work: Path  # scratch folder inside the staging folder, removed before the publish
    engine_file: Path | None  # make-repo --engine-file
    module: Callable[[], GraphModule]  # the PyTorch model the first step loaded
    echo: Callable[[str], None]


# Writes one file (or folder) of a model's version folder at the given path; what it returns is ignored.
Producer = Callable[[Path, Staging], object]


def python_files(model_file: str) -> tuple[FileEntry, ...]:
    """model.py from the named template, with the helper module every Python-backend model imports."""
    return (("model.py", f"template:{model_file}"), ("tritonbuild_backend.py", "template:tritonbuild_backend.py"))


def token_limits(info: ModelInfo) -> tuple[tuple[str, str], ...]:
    """What a token-id Python model checks each request against (tritonbuild_backend.TokenLimits)."""
    return (("vocab_size", str(info.vocab_size)), ("max_length", str(info.max_length)))


class ServingBackend:
    """One serving backend: declared by class attributes, registered by subclassing with `name=`."""

    name: ClassVar[str]
    description: ClassVar[str]  # the CLI's help
    precisions: ClassVar[tuple[str, ...]]  # the precision names it serves, a subset of PRESETS
    platform: ClassVar[str]  # what its model config names: the Python backend or a Triton platform
    bundled: ClassVar[bool]  # the bundled tritonserver runs it; otherwise it needs the NGC container
    gate: ClassVar[GateKind]
    files: ClassVar[tuple[FileEntry, ...]]  # its model folder's version-1 files and their producers
    needs_gpu: ClassVar[bool] = False
    serves_variant: ClassVar[bool] = False  # its model.onnx is the precision variant (builder/precision/variants.py)
    kernels: ClassVar[tuple[str, ...]] = ()  # the choices of make-repo --kernels, if it has any
    single_model: ClassVar[bool] = False  # it can serve tokenizer, model and post-processing as one model
    takes_engine_file: ClassVar[bool] = False  # make-repo --engine-file: a TensorRT engine built elsewhere
    batch_buckets: ClassVar[bool] = False  # it captures a CUDA graph per batch size: make-repo --batch-buckets

    def __init_subclass__(cls, *, name: str, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.name = name
        unknown = [p for p in cls.precisions if p not in PRESETS]
        if unknown or not cls.precisions:
            raise TypeError(f"serving backend {name}: precisions {unknown or '()'} are not in PRESETS")
        if cls.serves_variant and cls.gate is not GateKind.VARIANT:
            raise TypeError(f"serving backend {name} serves the ONNX variant: the variant gate judges it")
        if cls.single_model and cls.text_model is ServingBackend.text_model:
            raise TypeError(f"serving backend {name} serves a single model but does not say how (text_model)")
        if cls.model_folder is ServingBackend.model_folder:
            raise TypeError(f"serving backend {name} does not say what its model folder holds (model_folder)")
        if name in REGISTRY:
            raise TypeError(f"serving backend {name} is registered twice")
        REGISTRY[name] = cls()

    @property
    def exports(self) -> bool:
        """Whether its model folder holds the ONNX export (make-repo then exports and checks parity)."""
        return any(producer == "onnx" for _, producer in self.files)

    @property
    def templates(self) -> tuple[str, ...]:
        """The files of templates/python its model folder copies."""
        return tuple(p.removeprefix("template:") for _, p in self.files if p.startswith("template:"))

    def gated(self, precision: str) -> bool:
        """Whether make-repo's fidelity gate judges `precision` (unless --no-validate).

        The variant gate runs at every precision; the torch gate at all but FP32, its own reference.
        """
        return self.gate is GateKind.VARIANT or (self.gate is GateKind.TORCH and precision != "fp32")

    def model_folder(self, slot: ModelSlot) -> ModelDirPlan:
        """The model folder's config and files for this backend (every backend defines it: checked when registered)."""
        raise NotImplementedError

    def text_model(
        self, slot: ModelSlot, tokenizer: tuple[tuple[str, str], ...], files: tuple[FileEntry, ...]
    ) -> ModelDirPlan:
        """Tokenizer, model and post-processing as one model (make-repo --single-model), where the backend can.

        `tokenizer` holds the tokenizer's parameters, `files` the files it and post-processing read.
        """
        able = [b.name for b in REGISTRY.values() if b.single_model]
        raise ConfigError(f"--single-model goes with --engine {' or '.join(able)}")

    def producers(self) -> Mapping[str, Producer]:
        """The producers of its own files, beyond the pipeline's onnx, tokenizer and labels."""
        return {}

    def preflight(self, engine_file: Path | None) -> None:
        """Refuse, before anything is exported, what this host cannot build (nothing by default)."""

    def check_inputs(self, info: ModelInfo, gpu: GpuProfile, precision: str, engine_file: Path | None) -> None:
        """Refuse inputs that do not fit the repository, once the model is known (nothing by default)."""
