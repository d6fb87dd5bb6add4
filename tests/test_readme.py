"""README.md says what works: its commands and options exist, its links resolve, its Python example runs."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from builder.cli import main as tritonbuild
from client.cli import main as tritonbench

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
CLIS: dict[str, click.Group] = {"tritonbuild": tritonbuild, "tritonbench": tritonbench}


def blocks(language: str) -> list[str]:
    """The README's fenced code blocks of one language."""
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def command_lines() -> list[list[str]]:
    """Every tritonbuild/tritonbench command of the bash blocks, continuation lines joined, comments cut."""
    lines = []
    for block in blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            for part in re.split(r"&&|\|", line.split("#")[0]):
                words = shlex.split(part.replace("...", ""))
                if words and Path(words[0]).name in CLIS:
                    lines.append([Path(words[0]).name, *words[1:]])
    return lines


def test_the_readme_names_only_commands_and_options_that_exist():
    found = command_lines()
    assert len(found) >= 15
    for program, name, *args in found:
        command = CLIS[program].commands.get(name)
        assert command is not None, f"{program} {name}: no such command"
        options = {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
        for arg in args:
            flag = arg.split("=")[0]
            if flag.startswith("--"):
                assert flag in options, f"{program} {name}: no option {flag}"


def test_every_link_and_named_file_exists():
    links = re.findall(r"\]\(([^)#]+)\)", README)
    named = re.findall(r"`((?:builder|client|templates|scripts|tests)/[\w./-]+)`", README)
    assert links and named
    missing = [p for p in {*links, *named} if not (ROOT / p).exists()]
    assert not missing, f"README.md names files that do not exist: {missing}"


@pytest.mark.slow
def test_the_python_example_runs(tmp_path, monkeypatch):
    (example,) = blocks("python")
    monkeypatch.chdir(tmp_path)
    scope: dict[str, object] = {}
    exec(compile(example, "README.md", "exec"), scope)  # the README's own example, as a user runs it
    vectors = scope["vectors"]
    assert vectors.shape == (2, 384)  # type: ignore[attr-defined]
    assert (tmp_path / "repo" / "minilm" / "tritonbuild.json").is_file()
