"""Where the probe lets stubs run (scripts/probes/stub_affinity.py): found by their command line, pinned for real."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from scripts.probes.stub_affinity import Stub, apply, cpu_order, parse_cpu_list, plan, stubs


def test_parse_cpu_list_reads_the_kernels_ranges():
    assert parse_cpu_list("0-3,8,10-11\n") == {0, 1, 2, 3, 8, 10, 11}
    assert parse_cpu_list("5") == {5}


def test_one_cpu_of_each_core_comes_before_its_siblings(tmp_path):
    for cpu, siblings in {0: "0-1", 1: "0-1", 2: "2-3", 3: "2-3"}.items():
        (tmp_path / f"cpu{cpu}" / "topology").mkdir(parents=True)
        (tmp_path / f"cpu{cpu}" / "topology" / "thread_siblings_list").write_text(siblings + "\n")
    assert cpu_order({0, 1, 2, 3}, sys_cpu=tmp_path) == [0, 2, 1, 3]
    assert cpu_order({3, 1}, sys_cpu=tmp_path) == [1, 3]


def _fake_process(proc, pid: int, args: list[str], tids: list[int]) -> None:
    (proc / str(pid) / "task").mkdir(parents=True)
    (proc / str(pid) / "cmdline").write_bytes(b"\0".join(a.encode() for a in args) + b"\0")
    for tid in tids:
        (proc / str(pid) / "task" / str(tid)).mkdir()


def test_stubs_are_the_backend_stubs_serving_this_repository(tmp_path):
    repo, proc = tmp_path / "repo", tmp_path / "proc"
    repo.mkdir()
    stub = "/srv/backends/python/triton_python_backend_stub"
    _fake_process(proc, 30, [stub, f"{repo}/bert_post/1/model.py", "shm"], [30])
    _fake_process(proc, 20, [stub, f"{repo}/bert_model/1/model.py", "shm"], [20, 21])
    _fake_process(proc, 10, [stub, f"{repo}/bert_model/1/model.py", "shm"], [10])
    _fake_process(proc, 40, [stub, "/elsewhere/bert_post/1/model.py"], [40])  # another server's
    _fake_process(proc, 50, ["/usr/bin/python3", f"{repo}/bert_post/1/model.py"], [50])  # not a stub
    (proc / "self").mkdir()
    assert stubs(repo, proc) == [Stub(10, "bert_model"), Stub(20, "bert_model"), Stub(30, "bert_post")]


def test_the_main_layout_gives_each_main_thread_its_own_cpu_and_frees_the_rest(monkeypatch):
    monkeypatch.setattr("scripts.probes.stub_affinity.threads", lambda pid: [pid, pid + 1])
    found = [Stub(10, "a"), Stub(20, "b")]
    assert plan("main", found, [4, 5, 6]) == {10: {4}, 11: {4, 5, 6}, 20: {5}, 21: {4, 5, 6}}
    assert plan("float", found, [4, 5, 6]) == {tid: {4, 5, 6} for tid in (10, 11, 20, 21)}
    with pytest.raises(ValueError, match="not one CPU each"):
        plan("main", found, [4])
    with pytest.raises(ValueError, match="unknown layout"):
        plan("spread", found, [4, 5])


def test_apply_pins_a_real_stubs_main_thread_and_floats_it_again(tmp_path):
    repo = tmp_path / "repo"
    (repo / "m" / "1").mkdir(parents=True)
    (repo / "m" / "1" / "model.py").write_text("import time\ntime.sleep(60)\n")
    stub = tmp_path / "triton_python_backend_stub"  # the stub's name, a Python underneath
    stub.symlink_to(sys.executable)
    child = subprocess.Popen([str(stub), str(repo / "m" / "1" / "model.py")])
    try:
        every = os.sched_getaffinity(0)
        deadline = time.monotonic() + 10
        while not stubs(repo) and time.monotonic() < deadline:
            time.sleep(0.05)
        pinned = apply("main", repo)
        first = cpu_order(every)[0]
        assert pinned == {f"m/{child.pid}": [first]}
        assert os.sched_getaffinity(child.pid) == {first}
        assert apply("float", repo) == {}
        assert os.sched_getaffinity(child.pid) == every
    finally:
        child.kill()
        child.wait()
