"""The one description of a load: every generator, the sweep's grid and the records read it."""

import pytest

from client.points import Load, LoadError, Point
from client.sweep import SweepConfig
from client.transport.text_client import ClientConfig


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "either a concurrency or a request rate"),
        ({"concurrency": 1, "request_rate": 5.0}, "either a concurrency or a request rate"),
        ({"concurrency": 0}, "at least 1"),
        ({"request_rate": -1.0}, "positive"),
        ({"request_rate": 0.0}, "positive"),
        ({"request_rate": 1.0, "arrival": "bursty"}, "unknown arrival"),
        ({"concurrency": 2, "arrival": "poisson"}, "applies to a request rate"),
    ],
)
def test_loads_no_generator_could_send_are_refused(kwargs, message):
    with pytest.raises(LoadError, match=message):
        Load(**kwargs)


def test_an_open_loop_sends_at_constant_spacing_unless_told_otherwise():
    assert Load(request_rate=20.0) == Load(request_rate=20.0, arrival="constant")
    assert (
        Load(request_rate=20.0).mode == "request_rate"
        and Load(request_rate=2.5, arrival="poisson").arrival == "poisson"
    )
    closed = Load(concurrency=4)
    assert closed.mode == "concurrency" and closed.arrival is None and closed.request_rate is None


def test_point_names_for_progress_lines():
    assert Point(8, 128, Load(concurrency=4)).name == "b8 s128 c4"
    assert Point(1, 32, Load(request_rate=12.5, arrival="poisson")).name == "b1 s32 r12.5"


def test_a_sweep_builds_its_loads_once_and_refuses_a_bad_one():
    client = ClientConfig("h:1", "m")
    rates = SweepConfig(client, (1,), (16,), request_rates=(5.0, 10.0), arrival="poisson")
    assert rates.loads == (Load(request_rate=5.0, arrival="poisson"), Load(request_rate=10.0, arrival="poisson"))
    assert SweepConfig(client, (1,), (16,), concurrency=(1, 2)).loads == (Load(concurrency=1), Load(concurrency=2))
    with pytest.raises(LoadError, match="at least 1"):
        SweepConfig(client, (1,), (16,), concurrency=(0,))
    with pytest.raises(LoadError, match="unknown arrival"):
        SweepConfig(client, (1,), (16,), request_rates=(5.0,), arrival="bursty")
