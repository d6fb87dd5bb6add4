"""Timing for scripts/probes/phase_probe.py: a step's own model, timed by phase inside its stub.

The probe copies this file into each step's version folder (as phase_timer.py, next to the step's real model.py,
renamed probed_model.py) and serves a model.py whose model is `PhaseTimed` mixed into the real one. Every
execute() is timed, and so is the gap since the previous one returned (the stub's hand-over of the responses, the
server's of the next batch, and any wait for requests); in a python-torch model also its Runner's wall time and
each graph's span on the GPU (CUDA events around each replay). Totals, cumulative since load, go to
phases_INSTANCE.json in the version folder about once a second; the probe subtracts two readings.
"""

from __future__ import annotations

import json
import os
import time

WRITE_EVERY_S = 1.0
# The model.py served in each step's version folder: the backend helper first (it fixes sys.path), then the step.
SHIM = """import tritonbuild_backend  # noqa: F401
import phase_timer
import probed_model


class TritonPythonModel(phase_timer.PhaseTimed, probed_model.TritonPythonModel):
    pass
"""


class TimedGraph:
    """A CUDA graph whose replays are bracketed by CUDA events: its span on the GPU, contention included."""

    def __init__(self, graph: object, torch: object) -> None:
        self.graph = graph
        self.start, self.end = (torch.cuda.Event(enable_timing=True) for _ in range(2))
        self.pending = False

    def replay(self) -> None:
        """Replay it between two events."""
        self.start.record()
        self.graph.replay()
        self.end.record()
        self.pending = True

    def take_ms(self) -> float:
        """The last replay's span on the GPU, once (the Runner has synchronised when it returns)."""
        if not self.pending:
            return 0.0
        self.pending = False
        return self.start.elapsed_time(self.end)


class TimedRunner:
    """The step's Runner: its wall time, and its graphs' span on the GPU."""

    def __init__(self, runner: object, totals: dict) -> None:
        import torch

        self.runner, self.totals = runner, totals
        self.timed = []
        for key, entry in runner.graphs.items():
            timed = TimedGraph(entry[0], torch)
            runner.graphs[key] = (timed, *entry[1:])
            self.timed.append(timed)

    def __call__(self, ids: object, mask: object) -> object:
        start = time.perf_counter()
        out = self.runner(ids, mask)
        self.totals["runner_s"] += time.perf_counter() - start
        self.totals["runner_calls"] += 1
        self.totals["gpu_span_s"] += sum(t.take_ms() for t in self.timed) / 1000
        return out


class PhaseTimed:
    """Mixed in before a step's TritonPythonModel: its initialize() and execute(), timed."""

    def initialize(self, args: dict) -> None:
        """Load the real model, then wrap its Runner (if it has one)."""
        super().initialize(args)
        self.totals = dict.fromkeys(("executes", "requests", "execute_s", "gap_s", "runner_s", "gpu_span_s"), 0.0)
        self.totals["runner_calls"] = 0
        name = args.get("model_instance_name", "instance").replace("/", "_")
        self.path = os.path.join(args["model_repository"], args["model_version"], f"phases_{name}.json")
        self.last_end: float | None = None
        self.written = 0.0
        runner = getattr(self, "runner", None)
        if runner is not None and hasattr(runner, "graphs"):  # on the CPU too: execute() less the Runner is ours
            self.runner = TimedRunner(runner, self.totals)

    def execute(self, requests: list) -> list:
        """The real execute(), timed; the totals written about once a second."""
        start = time.perf_counter()
        if self.last_end is not None:
            self.totals["gap_s"] += start - self.last_end
        responses = super().execute(requests)
        end = time.perf_counter()
        self.totals["execute_s"] += end - start
        self.totals["executes"] += 1
        self.totals["requests"] += len(requests)
        self.last_end = end
        if end - self.written > WRITE_EVERY_S:
            self.written = end
            with open(self.path + ".tmp", "w") as f:
                json.dump(self.totals, f)
            os.replace(self.path + ".tmp", self.path)
        return responses
