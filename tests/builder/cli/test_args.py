"""The argument groups: each owns its options, parses them into the object a command needs; old spellings warn."""

from pathlib import Path

import click
from click.testing import CliRunner

from builder.cli.args import (
    EngineBuildArgs,
    FidelityArgs,
    GpuArgs,
    ModelArgs,
    PrecisionArgs,
    ScriptOnlyArgs,
    ServingArgs,
)
from builder.gpus import get_profile
from builder.precision.fidelity import FidelityOptions
from builder.repository.options import ServingOptions
from builder.tensorrt.engine_build import EngineOptions


def _parsed(*groups, args=()):
    """What a command decorated with `groups` receives for `args`."""
    seen = {}

    def command(**values):
        seen.update(values)

    for group in reversed(groups):
        command = group(command)
    result = CliRunner().invoke(click.command()(command), list(args))
    assert result.exit_code == 0, result.output
    return seen, result


def test_each_group_hands_the_command_one_object():
    seen, _ = _parsed(ModelArgs(), GpuArgs(), PrecisionArgs(), ServingArgs(), FidelityArgs(skippable=True))
    assert set(seen) == {"source", "gpu", "precision", "serving", "fidelity"}
    assert (seen["source"].model, seen["source"].task, seen["source"].trust_remote_code) == (
        "minilm",
        "feature-extraction",
        False,
    )
    assert seen["gpu"] == get_profile("cpu") and seen["precision"] == "fp32"
    assert seen["serving"] == ServingOptions() and seen["fidelity"] == FidelityOptions()


def test_groups_parse_their_options():
    seen, _ = _parsed(
        ServingArgs(),
        FidelityArgs(skippable=True),
        args=["--kernels", "hf", "--gpus", "0,1", "--host-threads", "2", "--no-validate", "--min-cosine", "0.99"],
    )
    assert seen["serving"] == ServingOptions(kernels="hf", host_threads=2, gpus=(0, 1))
    assert not seen["fidelity"].enabled and seen["fidelity"].gate.min_cosine == 0.99


def test_a_group_used_with_fewer_options_defaults_the_rest():
    seen, _ = _parsed(ModelArgs(trust=False), FidelityArgs())
    assert seen["source"].trust_remote_code is False and seen["fidelity"].enabled


def test_old_spellings_of_the_engine_command_still_work_and_say_so(tmp_path):
    tokenizer = tmp_path / "t.json"
    args = ["--gpu", "t4", "--profile-lengths", "64,128", "--plan-only", "--tokenizer", str(tokenizer)]
    seen, result = _parsed(EngineBuildArgs(), ScriptOnlyArgs(), args=args)
    assert seen["options"] == EngineOptions(
        get_profile("t4"), "hybrid", None, shape_profile_lengths=(64, 128), tokenizer=Path(tokenizer)
    )
    assert seen["build"] is False
    for old, new in (("--profile-lengths", "--shape-profile-lengths"), ("--plan-only", "--script-only")):
        assert f"warning: {old} is deprecated and will be removed: use {new}" in result.output
    seen, result = _parsed(EngineBuildArgs(), ScriptOnlyArgs(), args=["--gpu", "t4", "--shape-profile-lengths", "64"])
    assert (
        seen["options"].shape_profile_lengths == (64,) and seen["build"] is True and "deprecated" not in result.output
    )


def test_deprecated_spellings_stay_out_of_the_help():
    from builder.cli import main

    help_text = CliRunner().invoke(main, ["engine", "--help"]).output
    assert "--shape-profile-lengths" in help_text and "--script-only" in help_text
    assert "--profile-lengths" not in help_text and "--plan-only" not in help_text
