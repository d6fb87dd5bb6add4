"""Write a planned repository: stage everything in a temporary folder, then move it into place.

A failure at any point leaves the existing repository as it was.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path

from builder.common.errors import OutputError
from builder.plan import RepoPlan
from builder.render import render_config

# Writes one artifact ("onnx", "tokenizer", "labels", ...) to the given path.
ArtifactWriter = Callable[[Path], None]


def check_writable(output: Path) -> None:
    """Fail early, before any export, when `output` cannot be created or written."""
    probe = output
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise OutputError(f"cannot create {output}: {probe} is not a folder", hint="choose another --output")
    try:  # a real write: permission bits alone say nothing for root or read-only mounts
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as exc:
        raise OutputError(
            f"cannot write to {probe}: {exc.strerror}", hint="choose a writable --output or fix its permissions"
        ) from exc


def existing_models(plan: RepoPlan, output: Path) -> list[str]:
    """Names of the plan's model folders that already exist in `output`."""
    return [m.config.name for m in plan.models if (output / m.config.name).exists()]


def check_conflicts(plan: RepoPlan, output: Path, force: bool) -> None:
    """Refuse to replace existing model folders unless forced."""
    taken = existing_models(plan, output)
    if taken and not force:
        raise OutputError(f"{output} already has {', '.join(taken)}", hint="pass --force to replace them")


@contextmanager
def staging_dir(output: Path) -> Iterator[Path]:
    """A temporary folder beside `output` (same file system, so moves are renames); always removed."""
    output.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=f".{output.name}.staging-", dir=output.parent))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def stage_model_files(plan: RepoPlan, stage: Path, artifacts: Mapping[str, ArtifactWriter]) -> None:
    """Render every config and place every file of the plan under `stage`."""
    templates = files("templates") / "python"
    for model in plan.models:
        folder = stage / model.config.name
        (folder / "1").mkdir(parents=True)
        (folder / "config.pbtxt").write_text(render_config(model.config))
        for name, producer in model.files:
            dest = folder / "1" / name
            if producer.startswith("template:"):
                dest.write_text((templates / producer.removeprefix("template:")).read_text())
            else:
                artifacts[producer](dest)


def publish(plan: RepoPlan, stage: Path, output: Path) -> None:
    """Move staged model folders into `output`, replacing old ones (checked by check_conflicts)."""
    trash = stage / ".replaced"
    trash.mkdir()
    for model in plan.models:
        name = model.config.name
        if (output / name).exists():
            os.replace(output / name, trash / name)
        os.replace(stage / name, output / name)
