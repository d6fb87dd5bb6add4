"""The support matrix: one answer to "can backend E serve precision P on GPU profile G", and planning agrees."""

import pytest

from builder.common.errors import ConfigError
from builder.engines import BACKENDS
from builder.gpus import PROFILES, get_profile
from builder.precision.presets import PRESETS
from builder.repository.plan import plan_repository
from builder.sources.source import inspect_model
from builder.support import UnsupportedError, check, check_validation, profile_supports, supported


@pytest.fixture(scope="module")
def minilm():
    return inspect_model("minilm", "feature-extraction")


def test_profiles_say_which_presets_they_run():
    t4, a100, cpu = get_profile("t4"), get_profile("a100"), get_profile("cpu")
    assert not profile_supports(t4, PRESETS["bf16"])  # Turing has no BF16
    assert profile_supports(t4, PRESETS["hybrid"]) and profile_supports(a100, PRESETS["bf16"])
    # The CPU profile runs FP16 and hybrid graphs: ONNX Runtime's CPU provider computes them (FACTS.md), which is
    # what make-repo --gpu cpu --precision fp16 has always planned. Before the matrix, profile_supports said no.
    assert profile_supports(cpu, PRESETS["int8"]) and profile_supports(cpu, PRESETS["fp16"])
    assert profile_supports(cpu, PRESETS["hybrid"]) and not profile_supports(cpu, PRESETS["bf16"])
    assert all(profile_supports(p, PRESETS["fp32"]) for p in PROFILES.values())
    verdict = check("python-onnxruntime", "bf16", t4)
    assert not verdict.ok and "hybrid" in verdict.hint and "bf16" not in verdict.hint


@pytest.mark.parametrize(
    ("backend", "precision", "gpu", "reason"),
    [
        ("python-onnxruntime", "fp8", "cpu", "--engine python-onnxruntime has no precision 'fp8' (unknown precision)"),
        ("onnxruntime-trt", "int8", "a100", "--engine onnxruntime-trt has no precision 'int8'"),
        ("python-torch", "int8", "h100", "--engine python-torch has no precision 'int8'"),
        ("tensorrt", "fp32", "cpu", "--engine tensorrt needs a GPU profile, not cpu"),
        ("onnxruntime-trt", "fp16", "cpu", "--engine onnxruntime-trt needs a GPU profile, not cpu"),
        ("python-onnxruntime", "bf16", "cpu", "GPU profile cpu has no BF16"),
        ("python-torch", "bf16", "t4", "GPU profile t4 has no BF16"),
        ("tensorrt", "bf16", "t4", "GPU profile t4 has no BF16"),
        ("python-onnxruntime", "fp16", "nope", "unknown GPU profile 'nope'"),
        ("tensorflow", "fp32", "cpu", "unknown engine 'tensorflow'"),
    ],
)
def test_refusals_say_why(backend, precision, gpu, reason):
    verdict = check(backend, precision, gpu)
    assert not verdict.ok and verdict.reason == reason and verdict.hint
    with pytest.raises(UnsupportedError, match="has no|needs|unknown") as caught:
        verdict.raise_if_refused()
    assert isinstance(caught.value, ConfigError) and caught.value.hint == verdict.hint


def test_the_cpu_profile_serves_fp16_and_hybrid_variants_as_make_repo_always_planned(minilm):
    for precision in ("fp16", "hybrid", "int8"):
        assert check("python-onnxruntime", precision, "cpu").ok
        plan_repository(minilm, "m", "python-onnxruntime", get_profile("cpu"), precision)
    assert supported("python-onnxruntime", "cpu") == ("fp32", "fp16", "hybrid", "int8")
    assert supported("tensorrt", "cpu") == () and supported("python-torch", "t4") == ("fp32", "fp16", "hybrid")


@pytest.mark.parametrize("backend", BACKENDS)
def test_planning_agrees_with_the_matrix_everywhere(minilm, backend):
    for gpu in PROFILES.values():
        for precision in PRESETS:
            verdict = check(backend, precision, gpu)
            if verdict.ok:
                plan_repository(minilm, "m", backend, gpu, precision)
            else:
                with pytest.raises(UnsupportedError) as caught:
                    plan_repository(minilm, "m", backend, gpu, precision)
                assert caught.value.message == verdict.reason


def test_the_gates_needs_are_asked_only_when_make_repo_gates():
    assert check("python-onnxruntime", "bf16", "a100").ok  # --no-validate serves it ungated
    variant = check("onnxruntime", "bf16", "a100", gated=True)
    assert not variant.ok and "cannot gate the bf16 variant" in variant.reason and "--no-validate" in variant.hint
    torch_cpu = check("python-torch", "bf16", "h200", gated=True, host_gpu=False)
    assert not torch_cpu.ok and "cannot gate python-torch bf16 without a GPU" in torch_cpu.reason
    assert check("python-torch", "bf16", "h200", gated=True, host_gpu=True).ok  # gated on the GPU host
    assert check("python-torch", "fp16", "h200", gated=True).ok  # the CPU gate judges FP16
    assert check("tensorrt", "bf16", "a100", gated=True).ok  # its own build verifies it


def test_validate_measures_every_precision_but_bf16_on_the_cpu():
    assert all(check_validation(p).ok for p in PRESETS if p != "bf16")
    bf16 = check_validation("bf16")
    assert not bf16.ok and "bf16 cannot be validated here" in bf16.reason and "--skip-bf16" in bf16.hint
    assert check_validation("fp4").reason == "unknown precision 'fp4'"
