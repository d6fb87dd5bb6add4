"""Where the probe lets stubs run (scripts/probes/stub_affinity.py): the plan, and a real stub pinned and freed."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from builder.serving.stubs import Stub, stubs_of
from scripts.probes.stub_affinity import apply, cpu_order, parse_cpu_list, plan


def test_parse_cpu_list_reads_the_kernels_ranges():
    assert parse_cpu_list("0-3,8,10-11\n") == {0, 1, 2, 3, 8, 10, 11}
    assert parse_cpu_list("5") == {5}


def test_one_cpu_of_each_core_comes_before_its_siblings(tmp_path):
    for cpu, siblings in {0: "0-1", 1: "0-1", 2: "2-3", 3: "2-3"}.items():
        (tmp_path / f"cpu{cpu}" / "topology").mkdir(parents=True)
        (tmp_path / f"cpu{cpu}" / "topology" / "thread_siblings_list").write_text(siblings + "\n")
    assert cpu_order({0, 1, 2, 3}, sys_cpu=tmp_path) == [0, 2, 1, 3]
    assert cpu_order({3, 1}, sys_cpu=tmp_path) == [1, 3]


def test_the_main_layout_gives_each_main_thread_its_own_cpu_and_frees_the_rest(monkeypatch):
    monkeypatch.setattr("scripts.probes.stub_affinity.threads", lambda pid: [pid, pid + 1])
    found = [Stub(10, "a", "a_0"), Stub(20, "b", "b_0")]
    assert plan("main", found, [4, 5, 6]) == {10: {4}, 11: {4, 5, 6}, 20: {5}, 21: {4, 5, 6}}
    assert plan("float", found, [4, 5, 6]) == {tid: {4, 5, 6} for tid in (10, 11, 20, 21)}
    with pytest.raises(ValueError, match="not one CPU each"):
        plan("main", found, [4])
    with pytest.raises(ValueError, match="unknown layout"):
        plan("spread", found, [4, 5])


def test_apply_pins_a_real_stubs_main_thread_and_floats_it_again(tmp_path):
    """A child of this process named like the backend stub, with the stub's arguments, stands for the server's stub."""
    repo = tmp_path / "repo"
    (repo / "m" / "1").mkdir(parents=True)
    (repo / "m" / "1" / "model.py").write_text("import sys\nsys.stdin.read()\n")  # runs until its stdin closes
    stub = tmp_path / "triton_python_backend_stub"  # the stub's name, a Python underneath
    stub.symlink_to(sys.executable)
    args = [str(repo / "m" / "1" / "model.py"), "shm", "1", "1", str(os.getpid()), "lib", "0", "m_0_0"]
    child = subprocess.Popen([str(stub), *args], stdin=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30  # until the child has exec'd, /proc shows it as a copy of this process
        while [found.pid for found in stubs_of(os.getpid(), repo)] != [child.pid]:
            assert time.monotonic() < deadline, "the stand-in stub never showed in /proc"
            time.sleep(0.01)
        every = os.sched_getaffinity(0)
        pinned = apply("main", os.getpid(), repo)
        first = cpu_order(every)[0]
        assert pinned == {f"m/{child.pid}": [first]}
        assert os.sched_getaffinity(child.pid) == {first}
        assert apply("float", os.getpid(), repo) == {}
        assert os.sched_getaffinity(child.pid) == every
    finally:
        child.stdin.close()
        child.wait(timeout=30)
