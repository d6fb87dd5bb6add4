"""The PM QoS CPU latency hold, against the kernel's real /dev/cpu_dma_latency where this user may write it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from builder.common.errors import ServerError
from builder.serving.cpu_latency import MAX_LIMIT_US, PM_QOS_DEVICE, CpuLatencyHold, current_limit_us

writable = pytest.mark.skipif(
    not os.access(PM_QOS_DEVICE, os.W_OK), reason=f"{PM_QOS_DEVICE} is missing or not writable by this user"
)


@writable
def test_the_limit_holds_while_acquired_and_is_dropped_on_release():
    before = current_limit_us()
    with CpuLatencyHold(0) as hold:
        assert current_limit_us() == 0
        hold.acquire()  # a second acquire holds the same request, no second one
    assert current_limit_us() == before


@writable
def test_a_process_that_dies_holding_the_limit_drops_it():
    before = current_limit_us()
    holder = subprocess.Popen(
        [sys.executable, "-c", "from builder.serving.cpu_latency import CpuLatencyHold\nimport sys\n"
         "CpuLatencyHold(0).acquire(); print('held', flush=True); sys.stdin.read()"],  # blocks until killed
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        assert current_limit_us() == 0
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert current_limit_us() == before


def test_a_host_without_the_device_is_told_what_to_do(tmp_path):
    with pytest.raises(ServerError, match="no .*cpu_dma_latency, through which Linux") as caught:
        CpuLatencyHold(0, device=tmp_path / "cpu_dma_latency").acquire()
    assert "leave out --cpu-latency-us" in caught.value.hint


@pytest.mark.skipif(os.geteuid() != 0 or not PM_QOS_DEVICE.exists(), reason="needs root to drop to another user")
def test_a_user_who_may_not_write_the_device_is_told_what_to_do():
    script = textwrap.dedent("""
        import os
        from builder.common.errors import ServerError
        from builder.serving.cpu_latency import CpuLatencyHold
        os.setgid(65534); os.setuid(65534)  # nobody
        try:
            CpuLatencyHold(0).acquire()
        except ServerError as exc:
            print(exc)
    """)
    found = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert "is not writable by this user" in found and "serve as root" in found


@pytest.mark.parametrize("limit", [-1, MAX_LIMIT_US + 1])
def test_limits_the_kernel_cannot_take_are_refused(limit):
    with pytest.raises(ServerError, match="outside 0"):
        CpuLatencyHold(limit)
