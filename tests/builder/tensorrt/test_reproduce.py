"""Reproduce scripts written beside engines before builder/tensorrt/ existed still import and read.

data/model.plan.build.py is such a script, exactly as tritonbuild 0.1.0 (main at 2e1d3ae) wrote it: it runs
`from builder.tensorrt_engine import main`, the path builder/tensorrt_engine.py keeps.
"""

import os
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import builder.tensorrt.tensorrt_engine as tensorrt_engine
from builder.tensorrt.trt_plan import EngineSpec, Route, reproduce_script

OLD_SCRIPT = Path(__file__).parent / "data" / "model.plan.build.py"
ROOT = Path(__file__).parents[3]


def test_an_old_reproduce_script_imports_main_from_its_old_path_and_its_spec_still_reads():
    assert "from builder.tensorrt_engine import main" in OLD_SCRIPT.read_text()
    names = runpy.run_path(str(OLD_SCRIPT), run_name="reproduce")  # not __main__: import only
    assert names["main"] is tensorrt_engine.main
    spec = EngineSpec.from_dict(names["SPEC"])
    assert (spec.gpu, spec.precision, spec.route, len(spec.shape_profiles)) == ("t4", "hybrid", Route.WEAK, 5)
    assert EngineSpec.from_dict(spec.to_dict()).to_dict() == names["SPEC"]  # the record format is unchanged


def test_an_old_reproduce_script_runs_as_a_child_up_to_the_tensorrt_check(tmp_path):
    # Here `tensorrt` is the empty namespace tensorrt-stubs leave: the script gets past every import and the
    # spec, and stops at the first call into TensorRT (its version), as it would on a machine without it.
    shutil.copy(OLD_SCRIPT, tmp_path / OLD_SCRIPT.name)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [sys.executable, OLD_SCRIPT.name], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 1
    assert "ImportError" not in run.stderr and "ModuleNotFoundError" not in run.stderr
    assert "trt.__version__" in run.stderr


def test_new_reproduce_scripts_import_the_module_where_it_lives():
    spec = EngineSpec.from_dict(runpy.run_path(str(OLD_SCRIPT), run_name="reproduce")["SPEC"])
    assert "from builder.tensorrt.tensorrt_engine import main" in reproduce_script(spec, "0.2.0")
