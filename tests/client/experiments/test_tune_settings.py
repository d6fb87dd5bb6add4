"""Tune settings are checked, and the printed make-repo command rebuilds exactly the candidate's plan."""

from __future__ import annotations

import dataclasses

import pytest
from click.testing import CliRunner

from builder.cli import main as tritonbuild
from builder.gpus import get_profile
from builder.repository.options import ServingOptions
from builder.repository.plan import plan_repository
from builder.repository.render import render_config
from builder.sources.source import inspect_model
from client.experiments.tune_settings import TuneSettings, TuneSettingsError, command_line, rebuild_command
from client.experiments.tune_space import Candidate


def _settings(**changes) -> TuneSettings:
    base = TuneSettings("minilm", "feature-extraction", "cpu", "python-torch", ("a text", "another"), "test", 50.0)
    return dataclasses.replace(base, **changes)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"p99_ms": 0}, "--p99-ms must be positive"),
        ({"search": "random"}, "--search is quick or brute"),
        ({"budget_minutes": 0}, "--budget-minutes"),
        ({"client_batch": 0}, "--client-batch"),
        ({"max_error_rate": 1.0}, "--max-error-rate"),
        ({"texts": ()}, "no texts"),
        ({"name": "tune-x"}, "cannot name the chosen deployment"),
        ({"name": "a b"}, "cannot name the chosen deployment"),
    ],
)
def test_settings_are_checked(changes, message):
    with pytest.raises(TuneSettingsError, match=message):
        _settings(**changes)


def test_what_the_measurements_mean_excludes_how_the_search_runs():
    base = _settings()
    assert _settings(search="brute", budget_minutes=3, max_candidates=5, min_gain=0.1).measured() == base.measured()
    assert _settings(p99_ms=20).measured() != base.measured()
    assert _settings(texts=("other",)).measured() != base.measured()


@pytest.mark.parametrize(
    "candidate",
    [
        Candidate(False, 1, 0, 8, "none", (24, 40, 256), 1),
        Candidate(True, 3, 250, 16, "powers", (16, 232, 256), 2),
    ],
)
def test_the_rebuild_command_builds_exactly_the_candidates_plan(tmp_path, candidate):
    settings = _settings(kernels="hf")
    command = rebuild_command(settings, candidate, tmp_path / "repo")
    assert command[:2] == ["tritonbuild", "make-repo"] and "tritonbuild make-repo --model minilm" in command_line(
        command
    )
    result = CliRunner().invoke(tritonbuild, command[1:])
    assert result.exit_code == 0, result.output
    info = inspect_model("minilm", "feature-extraction")
    plan = plan_repository(info, "tuned", "python-torch", get_profile("cpu"), "fp32",
                           candidate.serving(ServingOptions("hf")))  # fmt: skip
    for model in plan.models:
        assert (tmp_path / "repo" / model.config.name / "config.pbtxt").read_text() == render_config(model.config)
