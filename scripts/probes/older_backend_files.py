"""Serve an older commit's backend files in a repository that make_repo wrote: an A/B of the stubs' code alone.

Every .py file make_repo puts into a model's version folder is a verbatim copy of a file in templates/python/
(model.py is a copy of one of them): each is found by its content and replaced by the older commit's file of the
same name, where that commit has one. The configs, weights and everything else stay as they are.
"""

from __future__ import annotations

import shutil
from pathlib import Path

TEMPLATES = Path(__file__).resolve().parents[2] / "templates" / "python"


def use_older_backend_files(repo: Path, older: Path) -> list[Path]:
    """Replace each backend file under `repo` by its namesake in `older` (a templates/python/ folder); returns them."""
    if not older.is_dir():
        raise FileNotFoundError(f"{older}: no such folder of backend files (git show COMMIT:templates/python/FILE)")
    current = {path.read_text(): path.name for path in TEMPLATES.glob("*.py")}
    replaced = []
    for path in sorted(repo.glob("*/[0-9]*/*.py")):
        source = current.get(path.read_text())
        if source and (older / source).is_file():
            shutil.copyfile(older / source, path)
            replaced.append(path)
    return replaced
