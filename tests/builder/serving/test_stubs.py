"""Finding a server's stubs reads that server's children, not every process on the host."""

from __future__ import annotations

import os
import subprocess
import sys

from builder.serving.stubs import _candidates


def test_the_candidates_are_this_processs_children_and_only_them():
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        pids = {int(p.name) for p in _candidates(os.getpid())}
        assert child.pid in pids
        assert os.getpid() not in pids and 1 not in pids  # not a scan of every process
    finally:
        child.kill()
        child.wait()
    assert child.pid not in {int(p.name) for p in _candidates(os.getpid())}
