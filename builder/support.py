"""The support matrix: can serving backend E serve precision P on GPU profile G, and if not, why not.

One answer for every command (make-repo, validate, engine; the client's study and tune), read
off the backend records (builder/engines/), the GPU profiles' capabilities (builder/gpus.py) and what
the fidelity gates need. The rules, in the order they are asked:

1. the backend serves the precision (its declared subset of PRESETS);
2. a backend that needs a GPU gets a GPU profile;
3. the profile computes the precision (`profile_supports`): a GPU needs the arithmetic natively (the T4
   has no BF16); the CPU profile runs FP32, INT8 and FP16 graphs (hybrid too): ONNX Runtime's CPU provider
   and PyTorch compute FP16 there, maybe in FP32 inside, which is why CPU figures understate FP16 error;
   neither runs BF16 there as served (ONNX Runtime's CPU provider has no BF16 kernels);
4. when make-repo gates the build, the gate can judge it here: the variant gate runs on ONNX Runtime's CPU
   provider, which has no BF16 kernels; the python-torch gate judges BF16 only on a GPU, since the CPU's
   BF16 arithmetic is not the GPU's.
"""

from __future__ import annotations

from dataclasses import dataclass

from builder.common.errors import ConfigError
from builder.engines import get_backend
from builder.engines.base import GateKind, ServingBackend
from builder.gpus import PROFILES, GpuProfile, get_profile
from builder.precision.presets import PRESETS, Compute, PrecisionRecipe, Quantization

NO_BF16_KERNELS = "ONNX Runtime's CPU provider, which runs the fidelity gate, has no BF16 kernels"


class UnsupportedError(ConfigError):
    """The support matrix refuses a serving backend, precision and GPU profile together."""


@dataclass(frozen=True)
class Verdict:
    """The matrix's answer: ok, or the reason and the way out that users see."""

    ok: bool
    reason: str = ""
    hint: str = ""

    def raise_if_refused(self) -> None:
        """Raise UnsupportedError with the reason and hint when the answer is no."""
        if not self.ok:
            raise UnsupportedError(self.reason, hint=self.hint)


SUPPORTED = Verdict(True)


def profile_supports(profile: GpuProfile, recipe: PrecisionRecipe) -> bool:
    """True when the target computes the recipe's arithmetic (rule 3 of this module's docstring)."""
    if recipe.quantization is Quantization.DYNAMIC_INT8:
        return profile.int8
    if not profile.is_gpu:
        return recipe.compute is not Compute.BF16
    return {Compute.FP32: True, Compute.FP16: profile.fp16, Compute.BF16: profile.bf16}[recipe.compute]


def _arithmetic(recipe: PrecisionRecipe) -> str:
    return "INT8" if recipe.quantization is Quantization.DYNAMIC_INT8 else recipe.compute.value.upper()


def _serves(backend: ServingBackend, precision: str) -> Verdict:
    if precision in backend.precisions:
        return SUPPORTED
    unknown = "" if precision in PRESETS else " (unknown precision)"
    return Verdict(
        False,
        f"--engine {backend.name} has no precision '{precision}'{unknown}",
        f"--engine {backend.name} serves {', '.join(backend.precisions)}",
    )


def _placed(backend: ServingBackend, gpu: GpuProfile) -> Verdict:
    if not backend.needs_gpu or gpu.is_gpu:
        return SUPPORTED
    gpus = ", ".join(name for name, p in PROFILES.items() if p.is_gpu)
    return Verdict(False, f"--engine {backend.name} needs a GPU profile, not {gpu.name}", f"choose --gpu {gpus}")


def _computed(backend: ServingBackend, precision: str, gpu: GpuProfile) -> Verdict:
    recipe = PRESETS[precision]
    if profile_supports(gpu, recipe):
        return SUPPORTED
    ok = ", ".join(supported(backend, gpu))
    return Verdict(
        False, f"GPU profile {gpu.name} has no {_arithmetic(recipe)}", f"--engine {backend.name} on {gpu.name}: {ok}"
    )


def _judged(backend: ServingBackend, precision: str, host_gpu: bool) -> Verdict:
    if not backend.gated(precision) or PRESETS[precision].compute is not Compute.BF16:
        return SUPPORTED
    if backend.gate is GateKind.VARIANT:
        return Verdict(
            False,
            f"cannot gate the {precision} variant: {NO_BF16_KERNELS}",
            "--no-validate builds it ungated (check it on the GPU), or choose hybrid",
        )
    if backend.gate is GateKind.TORCH and not host_gpu:
        # A CPU's BF16 rounding is not the GPU's: it passed where an H200 missed.
        return Verdict(
            False,
            f"cannot gate {backend.name} {precision} without a GPU: the CPU's BF16 arithmetic is not the GPU's (on "
            "the bundled MiniLM the CPU gave a worst-token cosine of 0.99982, the H200 0.99967-0.99977; bar 0.9998)",
            "build on the GPU host, which gates it there, or choose fp16 or hybrid (--no-validate skips the gate)",
        )
    return SUPPORTED


def check(
    backend: str | ServingBackend,
    precision: str,
    gpu: str | GpuProfile,
    *,
    gated: bool = False,
    host_gpu: bool = False,
) -> Verdict:
    """Can `backend` serve `precision` on GPU profile `gpu`, and can make-repo's gate (when `gated`) judge it here.

    `host_gpu` says whether the build host has a GPU, where the python-torch gate runs.
    """
    try:
        serving = get_backend(backend) if isinstance(backend, str) else backend
        profile = get_profile(gpu) if isinstance(gpu, str) else gpu
    except ConfigError as exc:
        return Verdict(False, exc.message, exc.hint)
    for rule in (
        lambda: _serves(serving, precision),
        lambda: _placed(serving, profile),
        lambda: _computed(serving, precision, profile),
        lambda: _judged(serving, precision, host_gpu) if gated else SUPPORTED,
    ):
        verdict = rule()
        if not verdict.ok:
            return verdict
    return SUPPORTED


def supported(backend: str | ServingBackend, gpu: str | GpuProfile) -> tuple[str, ...]:
    """The precisions `backend` serves on `gpu`, gate aside, in the backend's order."""
    serving = get_backend(backend) if isinstance(backend, str) else backend
    profile = get_profile(gpu) if isinstance(gpu, str) else gpu
    if not _placed(serving, profile).ok:
        return ()
    return tuple(p for p in serving.precisions if profile_supports(profile, PRESETS[p]))


def check_validation(precision: str) -> Verdict:
    """Can `tritonbuild validate` measure `precision`? It runs each variant on ONNX Runtime's CPU provider."""
    if precision not in PRESETS:
        return Verdict(False, f"unknown precision '{precision}'", f"choose one of: {', '.join(PRESETS)}")
    if PRESETS[precision].compute is Compute.BF16:
        return Verdict(
            False,
            f"{precision} cannot be validated here: {NO_BF16_KERNELS}",
            "--skip-bf16 writes it and reports its size only; measure BF16 on a GPU (scripts/bench/gpu_bench.py)",
        )
    return SUPPORTED
