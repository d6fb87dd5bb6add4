"""The holds of a server or replica set: made for the options given, acquired all or none."""

from __future__ import annotations

import pytest

from builder.common.errors import ServerError
from builder.serving.holds import acquire_all, holds_env, release_all, server_holds
from builder.serving.idle_poll import IdlePoll
from builder.serving.mps import Mps


def test_holds_are_made_for_the_options_given():
    assert server_holds(None, False) == []
    assert [type(h).__name__ for h in server_holds(5, True, mps=True)] == ["CpuLatencyHold", "IdlePoll", "Mps"]
    assert holds_env(server_holds(None, False, mps=True)) == {}  # an MPS daemon not started points at nothing


def test_holds_are_released_in_full_when_one_is_refused():
    good, bad = IdlePoll(), IdlePoll(cpus={4095})
    with pytest.raises(ServerError):
        acquire_all([good, bad])
    assert good.pids == []  # the pollers started first were stopped again
    release_all([good, bad, Mps()])  # releasing what is not held does nothing
