"""builder.common.backend_files: the backend files imported as the server imports them, in a fresh process each
(the first import of the backend helper is the one that sets a stub's thread settings)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
POOLS = ("OMP_NUM_THREADS", "TOKENIZERS_PARALLELISM", "TORCHINDUCTOR_COMPILE_THREADS")


def after_import(stub_environment: bool) -> dict:
    code = f"""
import json, os, sys
for name in {POOLS!r}:
    os.environ.pop(name, None)
from builder.common.backend_files import backend_module
helper = backend_module("tritonbuild_backend", stub_environment={stub_environment})
print(json.dumps({{"env": {{n: os.environ.get(n) for n in {POOLS!r}}}, "torch": "torch" in sys.modules,
                  "file": helper.__file__}}))
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


@pytest.mark.parametrize("stub_environment", [False, True])
def test_the_helper_is_the_templates_file_and_loads_without_torch(stub_environment):
    found = after_import(stub_environment)
    assert found["file"] == str(ROOT / "templates" / "python" / "tritonbuild_backend.py")
    assert not found["torch"]  # a caller can set the stub's pools before torch loads OpenMP


def test_a_stubs_thread_settings_are_undone_unless_asked_for():
    assert after_import(False)["env"] == dict.fromkeys(POOLS)
    assert after_import(True)["env"] == {"OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
                                         "TORCHINDUCTOR_COMPILE_THREADS": "1"}  # fmt: skip
