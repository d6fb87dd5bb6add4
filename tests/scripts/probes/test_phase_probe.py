"""The phase probe's accounting (scripts/probes/phase_probe.py, phase_timer_model.py), without a server.

The probe itself runs against a served ensemble (`gpu_run.sh phases`, or `--smoke` on the CPU); here: the timer
mixed into a step counts executions, requests and the gaps between them and writes its totals where the probe
reads them, and the probe turns two readings into per-execution times.
"""

from __future__ import annotations

import json
import time

import pytest

from client.records import ModelTimes
from scripts.probes.phase_probe import STEPS, batch_table, difference, held, padding, points, reading, table
from scripts.probes.phase_timer_model import PhaseTimed


class Step:
    """A step's model as the timer sees it: initialize(args), then execute(requests) → one response each."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def initialize(self, args: dict) -> None:
        self.args = args

    def execute(self, requests: list) -> list:
        self.calls.append(len(requests))
        time.sleep(0.01)
        return [f"response to {r}" for r in requests]


class TimedStep(PhaseTimed, Step):
    pass


def test_the_timer_counts_what_the_step_did_and_writes_it_beside_the_model(tmp_path, monkeypatch):
    monkeypatch.setattr("scripts.probes.phase_timer_model.WRITE_EVERY_S", 0.0)
    (tmp_path / "bert_model" / "1").mkdir(parents=True)
    step = TimedStep()
    step.initialize({"model_repository": str(tmp_path / "bert_model"), "model_version": "1",
                     "model_instance_name": "bert_model_0_0"})  # fmt: skip
    assert step.execute(["a", "b", "c"]) == ["response to a", "response to b", "response to c"]
    time.sleep(0.02)
    step.execute(["d"])
    assert step.calls == [3, 1]  # the real execute() ran, with every request
    totals = json.loads((tmp_path / "bert_model" / "1" / "phases_bert_model_0_0.json").read_text())
    assert totals["executes"] == 2 and totals["requests"] == 4
    assert totals["execute_s"] >= 0.02  # two executions of at least 10 ms each
    assert 0.02 <= totals["gap_s"] < 1.0  # one gap: the 20 ms between the two calls
    assert totals["runner_calls"] == 0  # no Runner in this step: nothing wrapped


def test_two_readings_become_times_per_execution(tmp_path):
    def write(step: str, instance: int, **values: float) -> None:
        folder = tmp_path / f"bert_{step}" / "1"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"phases_{instance}.json").write_text(json.dumps(values))

    zero = dict.fromkeys(("executes", "requests", "execute_s", "gap_s", "runner_s", "gpu_span_s"), 0.0)
    for step in STEPS:
        for instance in (0, 1):
            write(step, instance, **zero)
    before = reading(tmp_path)
    # two instances of the model step: 30 executions of 210 rows in all, 60 ms inside execute(), 36 ms on the GPU
    write("model", 0, **{**zero, "executes": 10, "requests": 70, "execute_s": 0.02, "gpu_span_s": 0.012})
    write("model", 1, **{**zero, "executes": 20, "requests": 140, "execute_s": 0.04, "gpu_span_s": 0.024})
    rows = difference(before, reading(tmp_path), seconds=2.0)
    assert set(rows) == {"model"}  # steps without executions in the span are left out
    model = rows["model"]
    assert model["executes_per_s"] == pytest.approx(15.0)
    assert model["requests_per_execute"] == pytest.approx(7.0)
    assert model["execute_us"] == pytest.approx(2000.0) and model["gpu_span_us"] == pytest.approx(1200.0)
    server = {"compute_infer_us": 2500.0, "queue_us": 600.0, "compute_output_us": 300.0, "held": 31.5}
    result = {"model": "bert", "concurrency": 64, "throughput": 105.0, "stubs": rows, "server": {"model": server}}
    assert "| bert c64: 105/s | model | 7.0 | 2,500 | 2,000 | 0 | 0 | 1,200 | 600 | 300 | 31.5 |" in table([result])


def test_the_requests_a_step_holds_are_its_rate_times_its_time_in_the_step():
    # 8,000 requests/s, each 4 ms in the step (queue 0.5, input 0.2, infer 2.5, output 0.8): 32 held at any moment
    times = ModelTimes(inference_count=7000, execution_count=1000, queue_us=500.0, compute_input_us=200.0,
                       compute_infer_us=2500.0, compute_output_us=800.0)  # fmt: skip
    assert held(8000.0, times) == pytest.approx(32.0)


def test_a_point_named_twice_is_refused_not_read_idle():
    import argparse

    assert points("bert@1,bert@64,bert_model@64") == [("bert", 1), ("bert", 64), ("bert_model", 64)]
    with pytest.raises(argparse.ArgumentTypeError, match="named twice"):
        points("bert@64,bert_model@64,bert@64")  # the sweep would skip the second as measured


def test_padding_counts_the_rows_each_batch_runs_padded_to_its_bucket():
    batches = {7: (2, 900.0), 8: (1, 950.0), 9: (1, 1000.0), 40: (1, 2000.0)}  # size: executions, compute µs
    # 7 → 8 pads 1 row twice, 8 fits, 9 → 12 pads 3, 40 is above every bucket and runs as it is
    assert padding(batches, [1, 2, 4, 8, 12, 16, 32]) == (2 * 1 + 3) / 5
    assert padding({}, [1, 2]) == 0.0
    result = {"model": "bert", "concurrency": 64, "throughput": 8000.0, "padded_rows": 1.0,
              "model_batches": {"7": [2, 900.0], "9": [1, 1000.0], "40": [1, 2000.0]}}  # fmt: skip
    assert "| bert c64: 8,000/s | 7: 50 % 900; 9: 25 % 1,000; 40: 25 % 2,000 | 1.00 |" in batch_table([result])
