"""`serve --mps` where MPS cannot run: refused before anything starts, with what to do.

The daemon itself needs the NVIDIA driver's nvidia-cuda-mps-control, which no CPU machine has; it was run on
the lent H200 (scripts/results/h200_2026-12-02/), where `gpu_serve_bench --mps` reports who joined it.
"""

from __future__ import annotations

import os
import shutil

import pytest

from builder.common.errors import ServerError
from builder.serving.mps import CONTROL, Mps
from builder.serving.server import TritonServer
from tests.double_model import write_double
from tests.pollers import pollers_on_host


@pytest.fixture
def no_mps_control(monkeypatch: pytest.MonkeyPatch) -> None:
    """PATH without any folder holding nvidia-cuda-mps-control (none on CI; a GPU host's driver folder aside)."""
    folders = [d for d in os.environ.get("PATH", "").split(os.pathsep) if not os.path.exists(os.path.join(d, CONTROL))]
    monkeypatch.setenv("PATH", os.pathsep.join(folders))
    assert shutil.which(CONTROL) is None


def test_a_host_without_the_mps_control_is_refused_with_what_to_do(no_mps_control):
    mps = Mps()
    with pytest.raises(ServerError, match="--mps needs nvidia-cuda-mps-control") as error:
        mps.acquire()
    assert "leave out --mps" in error.value.hint
    assert mps.env == {}
    mps.release()  # nothing to stop


def test_a_server_asked_for_mps_where_it_cannot_run_starts_nothing(no_mps_control, tmp_path):
    write_double(tmp_path)
    server = TritonServer(tmp_path, idle_poll=True, mps=True)
    with pytest.raises(ServerError, match="--mps needs"), server:
        pass
    assert server.pid is None and pollers_on_host() == []  # the pollers acquired before MPS were stopped again
