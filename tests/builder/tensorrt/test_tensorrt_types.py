"""mypy --strict on the TensorRT-facing code, against tensorrt-stubs (TensorRT 10.13's Python API).

TensorRT cannot be installed here, so this is how a wrong TensorRT call is caught before a user with a
GPU meets it. tensorrt-stubs 10.13.0.35.1 (installed by scripts/setup.sh) needs three repairs before
mypy reads it, made in a copy: its `tensorrt` folder has no py.typed marker (so it is put on MYPYPATH),
five signatures are not valid Python (a parameter named `in`, a required parameter after defaulted
ones), and it imports `tensorrt_libs`, which has no stubs. Errors inside the stubs are silenced;
errors in the checked modules are not.
"""

import ast
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[3]
CHECKED = ("builder/tensorrt/tensorrt_engine.py", "builder/tensorrt/trt_plan.py")
CONFIG = """[mypy]
strict = True
follow_imports = silent

[mypy-tensorrt,tensorrt.*,tensorrt_bindings,tensorrt_bindings.*,tensorrt_libs]
ignore_errors = True
"""


@pytest.fixture(scope="module")
def stubs(tmp_path_factory):
    spec = importlib.util.find_spec("tensorrt_stubs")
    if spec is None or spec.origin is None:
        pytest.fail("tensorrt-stubs is not installed: run scripts/setup.sh (pip install --no-deps tensorrt-stubs)")
    site = Path(spec.origin).parents[1]
    folder = tmp_path_factory.mktemp("tensorrt-stubs")
    for package in ("tensorrt", "tensorrt_bindings"):
        shutil.copytree(site / package, folder / package)
    (folder / "tensorrt_libs.pyi").write_text("")
    bindings = folder / "tensorrt_bindings" / "tensorrt.pyi"
    text, renamed = re.subn(r"\((self(?:: \w+)?), in: ", r"(\1, in_: ", bindings.read_text())
    text, defaulted = re.subn(r"channel_axis: int\) -> IScaleLayer", "channel_axis: int = ...) -> IScaleLayer", text)
    assert (renamed, defaulted) == (4, 1), "tensorrt-stubs changed: review the repairs"
    bindings.write_text(text)
    for stub in folder.rglob("*.pyi"):
        ast.parse(stub.read_text())
    (folder / "mypy.ini").write_text(CONFIG)
    return folder


def _mypy(stubs, *files):
    command = [sys.executable, "-m", "mypy", "--config-file", str(stubs / "mypy.ini")]
    command += ["--cache-dir", str(stubs / ".mypy_cache"), *map(str, files)]
    env = {**os.environ, "MYPYPATH": str(stubs)}
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def test_tensorrt_facing_modules_type_check_against_the_stubs(stubs):
    result = _mypy(stubs, *CHECKED)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success: no issues found in 2 source files" in result.stdout


def test_the_stubs_really_type_tensorrt_calls(stubs, tmp_path):
    # Without this, a stubs folder mypy silently ignored would let the check above pass on `Any`.
    wrong = tmp_path / "wrong.py"
    wrong.write_text(
        "import tensorrt as trt\n\n\n"
        "def pin(layer: trt.ILayer) -> None:\n"
        '    layer.set_output_type("0", trt.DataType.FLOAT)\n'
        "    layer.precision = trt.LayerType.SOFTMAX\n"
    )
    result = _mypy(stubs, wrong)
    assert result.returncode == 1
    assert 'Argument 1 to "set_output_type" of "ILayer" has incompatible type "str"' in result.stdout
    assert 'has type "LayerType", variable has type "DataType"' in result.stdout
