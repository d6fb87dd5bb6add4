"""The registry of serving backends: every module registered, every record consistent, every backend tested.

Adding a backend is one module in builder/engines/ plus its tests; these fail until the tests exist.
"""

import ast
from importlib.resources import files
from pathlib import Path

import pytest
from click.testing import CliRunner

import builder.engines as engines
from builder.cli import main
from builder.common.backend_files import backend_module
from builder.engines import BACKENDS, get_backend
from builder.engines.base import REGISTRY, GateKind, ServingBackend
from builder.precision.presets import PRESETS
from builder.tensorrt.trt_plan import DEFAULT_THRESHOLDS

TESTS = Path(__file__).parents[2]
PIPELINE_PRODUCERS = {"onnx", "tokenizer", "labels"}  # builder/repository/pipeline.py's own


def test_every_module_of_the_package_is_registered_in_the_clis_order():
    modules = {p.stem for p in Path(engines.__file__).parent.glob("*.py")} - {"__init__", "base"}
    assert {m.__name__.rsplit(".", 1)[1] for m in engines._ORDER} == modules
    assert set(BACKENDS) == set(REGISTRY) and engines.DEFAULT in BACKENDS


def _served_by_tests() -> set[str]:
    """Backends named by a `@pytest.mark.serves(...)` decorator anywhere under tests/."""
    found: set[str] = set()
    for path in TESTS.rglob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "pytest.mark.serves":
                found |= {arg.value for arg in node.args if isinstance(arg, ast.Constant)}
    return found


def test_every_backend_has_a_serving_test():
    missing = set(BACKENDS) - _served_by_tests()
    assert not missing, f"no test marked @pytest.mark.serves for {sorted(missing)}"


@pytest.mark.parametrize("backend", BACKENDS.values(), ids=list(BACKENDS))
def test_records_are_consistent(backend):
    assert backend.description and backend.precisions and set(backend.precisions) <= set(PRESETS)
    assert backend.bundled == (backend.platform == "python")  # the bundled server has the Python backend only
    templates = files("templates") / "python"
    assert all((templates / name).is_file() for name in backend.templates)
    produced = {p for _, p in backend.files if not p.startswith("template:")}
    assert produced <= PIPELINE_PRODUCERS | set(backend.producers()), "a file whose producer nobody writes"
    assert backend.needs_gpu or backend.bundled or backend.platform == "onnxruntime_onnx"
    assert not backend.serves_variant or backend.exports


def test_declared_precisions_match_what_the_backends_own_code_knows():
    torch_model = backend_module("torch_model")
    assert set(get_backend("python-torch").precisions) == set(torch_model.PRECISIONS)  # type: ignore[attr-defined]
    assert set(get_backend("tensorrt").precisions) == set(DEFAULT_THRESHOLDS)  # every engine build has a bar


def test_gates_follow_the_records():
    assert {b.name for b in BACKENDS.values() if b.serves_variant} == {"python-onnxruntime", "onnxruntime"}
    assert get_backend("python-torch").gated("fp16") and not get_backend("python-torch").gated("fp32")
    assert get_backend("onnxruntime").gated("fp32")  # the variant gate also checks the FP32 export on real text
    assert not get_backend("tensorrt").gated("hybrid") and get_backend("tensorrt").gate is GateKind.TENSORRT_BUILD


def test_a_record_that_breaks_the_rules_is_refused_when_registered():
    with pytest.raises(TypeError, match="not in PRESETS"):

        class _Fp8(ServingBackend, name="test-fp8"):
            description, precisions, platform, bundled = "x", ("fp8",), "python", True
            gate, files = GateKind.NONE, ()

    with pytest.raises(TypeError, match="model_folder"):

        class _Empty(ServingBackend, name="test-empty"):
            description, precisions, platform, bundled = "x", ("fp32",), "python", True
            gate, files = GateKind.NONE, ()

    assert "test-fp8" not in REGISTRY and "test-empty" not in REGISTRY


def test_the_clis_engine_choices_and_help_come_from_the_registry():
    result = CliRunner().invoke(main, ["make-repo", "--help"], terminal_width=400)
    help_text = " ".join(result.output.split())
    assert f"[{'|'.join(BACKENDS)}]" in help_text.replace(" | ", "|") or all(b in help_text for b in BACKENDS)
    for backend in BACKENDS.values():
        assert " ".join(backend.description.split()) in help_text
    assert CliRunner().invoke(main, ["make-repo", "--engine", "tensorflow"]).exit_code == 2
