"""Write a planned repository: stage everything inside the output folder, then publish it whole or not at all.

Staging happens in `OUTPUT/.staging-*`: the same file system as the repository even when OUTPUT is a mount
point (a Docker or Kubernetes `/models`), so every move of the publish is a rename. The publish holds an
fcntl lock on `OUTPUT/.tritonbuild.lock`, re-checks for conflicts under it, and undoes every rename it made
when anything fails, Ctrl-C included: OUTPUT then holds the old repository, byte for byte.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path

from builder.common.errors import OutputError
from builder.repository.interrupts import deferred_interrupts
from builder.repository.layout import RepoPlan
from builder.repository.render import render_config

LOCK_FILE = ".tritonbuild.lock"
STAGING_PREFIX = ".staging-"
REPLACED_PREFIX = ".replaced-"
LOCK_TIMEOUT_S = 60.0


class MixedRepository(OutputError):
    """A publish failed and its undo failed too: the message says which folders are where."""


# Writes one artifact ("onnx", "tokenizer", "labels", ...) to the given path.
ArtifactWriter = Callable[[Path], None]


def check_writable(output: Path) -> None:
    """Fail early, before any export, when the place staging goes (OUTPUT, or where it will be made) is not writable.

    A real folder is created and renamed there: permission bits alone say nothing for root or read-only mounts.
    """
    probe = output
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise OutputError(f"cannot create {output}: {probe} is not a folder", hint="choose another --output")
    try:
        made = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=probe))
        renamed = made.with_name(made.name + "-probe")
        os.rename(made, renamed)
        renamed.rmdir()
    except OSError as exc:
        why = "it is on a read-only file system" if exc.errno == errno.EROFS else exc.strerror
        where = f"{output}" if probe == output else f"{output} in {probe}"
        raise OutputError(
            f"cannot write {where}: {why}", hint="choose a writable --output or fix its permissions"
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
    """A staging folder inside `output`, removed on the way out whatever happens (interrupts held back meanwhile).

    When `output` did not exist, it is removed again unless something was published into it: a failed
    build leaves no empty folder behind.
    """
    created = not output.exists()
    output.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=output))
    try:
        yield path
    finally:
        with deferred_interrupts():
            shutil.rmtree(path, ignore_errors=True)
            if created and {p.name for p in output.iterdir()} <= {LOCK_FILE}:
                shutil.rmtree(output, ignore_errors=True)


@contextmanager
def output_lock(output: Path, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold the exclusive fcntl lock of `output` (`.tritonbuild.lock`); released when the process ends, too."""
    fd = os.open(output / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise OutputError(
                        f"another make-repo has been publishing into {output} for {timeout_s:.0f} s",
                        hint="wait for it to finish, then run this again",
                    ) from None
                time.sleep(0.1)
        yield
    finally:
        os.close(fd)


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


def publish(
    plan: RepoPlan, stage: Path, output: Path, force: bool, on_published: Callable[[], None] = lambda: None
) -> None:
    """Move the staged model folders into `output` under its lock, all or none, replacing old ones only if `force`.

    The conflict check runs again under the lock: another make-repo may have published the same names since
    the first check. Old folders are renamed aside into `OUTPUT/.replaced-*` first and removed only once every
    new folder is in place; on any exception every rename is undone, last first. Ctrl-C waits until the
    publish (or its undo) is complete; `on_published` runs before a held Ctrl-C is raised, so a caller knows
    the repository is the new one even then.
    """
    with output_lock(output), deferred_interrupts():
        check_conflicts(plan, output, force)
        aside = Path(tempfile.mkdtemp(prefix=REPLACED_PREFIX, dir=output))
        done: list[tuple[Path, Path]] = []
        try:
            for model in plan.models:
                name = model.config.name
                if (output / name).exists():
                    _rename(output / name, aside / name, done)
                _rename(stage / name, output / name, done)
        except BaseException:
            _undo(done, aside)
            raise
        on_published()
        shutil.rmtree(aside, ignore_errors=True)


def _rename(source: Path, dest: Path, done: list[tuple[Path, Path]]) -> None:
    os.replace(source, dest)
    done.append((source, dest))


def _undo(done: list[tuple[Path, Path]], aside: Path) -> None:
    """Reverse the renames of a failed publish; if that fails too, say exactly what is where."""
    try:
        for source, dest in reversed(done):
            os.replace(dest, source)
        aside.rmdir()
    except OSError as exc:
        raise MixedRepository(
            f"publishing failed and could not be undone ({exc}): the repository is mixed; "
            f"the folders it replaced are in {aside}",
            hint=f"move the folders of {aside} back by hand, or run make-repo again with --force",
        ) from exc
