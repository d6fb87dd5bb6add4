"""CPU by role (scripts/bench/cpu_by_role.py): real processes' ticks, and the arithmetic per request."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from scripts.bench.cpu_by_role import Snapshot, clients, per_request, process_ticks, roles
from scripts.bench.timing import CLK_TCK


def wait_for(condition: object, what: str) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def test_a_busy_process_gains_ticks_and_a_gone_one_has_none():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=30)
    assert process_ticks(child.pid) == 0  # reaped: gone
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        wait_for(lambda: process_ticks(busy.pid) >= 0.3 * CLK_TCK, "a spinning process never used 0.3 s of CPU")
    finally:
        busy.kill()
        busy.wait()


def test_the_roles_are_the_server_its_stubs_by_model_and_perf_analyzer(tmp_path):
    repo = tmp_path / "repo"
    (repo / "m" / "1").mkdir(parents=True)
    (repo / "m" / "1" / "model.py").write_text("import sys\nsys.stdin.read()\n")
    stub = tmp_path / "triton_python_backend_stub"  # stand-ins named like the real programs, Python underneath
    stub.symlink_to(sys.executable)
    client = tmp_path / "perf_analyzer"
    client.symlink_to(sys.executable)
    args = [str(repo / "m" / "1" / "model.py"), "shm", "1", "1", str(os.getpid()), "lib", "0", "m_0_0"]
    started = [subprocess.Popen([str(stub), *args], stdin=subprocess.PIPE)]
    started.append(subprocess.Popen([str(client), "-c", "import sys\nsys.stdin.read()\n"], stdin=subprocess.PIPE))
    try:
        wait_for(lambda: roles(os.getpid(), repo).get("m") == [started[0].pid], "the stand-in stub never showed")
        wait_for(lambda: started[1].pid in clients(), "the stand-in perf_analyzer never showed")
        found = roles(os.getpid(), repo)
        assert found["server"] == [os.getpid()] and found["m"] == [started[0].pid]
        assert started[1].pid in found["client"] and started[0].pid not in found["client"]
        snapshot = Snapshot.take(os.getpid(), repo)
        assert set(snapshot.ticks) == {"server", "m", "client"} and len(snapshot.host) == 8
    finally:
        for process in started:
            process.stdin.close()
            process.wait(timeout=30)


def test_per_request_counts_processes_present_at_both_readings_and_the_hosts_cores(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 4)
    before = Snapshot({"server": {1: 100}, "m": {2: 50, 3: 10}}, [0] * 8)
    # pid 3 restarted as pid 4: neither counts; the host: user 200, nice 100, idle 100 ticks of 400
    after = Snapshot({"server": {1: 100 + CLK_TCK}, "m": {2: 50 + CLK_TCK // 2, 4: 999}, "client": {5: 7}},
                     [200, 100, 0, 100, 0, 0, 0, 0])  # fmt: skip
    result = per_request(before, after, requests=1000)
    assert result["server_us"] == pytest.approx(1000.0)  # one second of CPU over 1,000 requests
    assert result["m_us"] == pytest.approx(500.0, rel=0.02)
    assert "client_us" not in result  # not there before: no such role at both readings
    assert result["host_busy_cores"] == pytest.approx(2.0) and result["host_nice_cores"] == pytest.approx(1.0)
