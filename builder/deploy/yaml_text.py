"""Objects to YAML text that yamllint's default rules accept, and the files `tritonbuild deploy` writes.

PyYAML's defaults fail them: sequences under a key are not indented and long strings run past 80 columns.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from builder.common.errors import OutputError

WIDTH = 72  # folding column for long strings: under yamllint's 80 at the nesting depths these objects have


class _Dumper(yaml.SafeDumper):
    """Indents block sequences under their key and never writes anchors."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None  # embedded files (a ConfigMap's config.yaml) stay readable
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump(obj: Any, start: bool = False) -> str:
    """Block-style YAML of plain data, keys in insertion order; `start` writes the `---` document marker."""
    text: str = yaml.dump(obj, Dumper=_Dumper, sort_keys=False, width=WIDTH, explicit_start=start)
    return text


def write_objects(objects: dict[str, dict[str, Any]], output: Path, header: str, force: bool) -> list[Path]:
    """One YAML document per file under `output`; refuses to replace files unless `force`."""
    paths = [output / name for name in objects]
    existing = [p for p in paths if p.exists()]
    if existing and not force:
        raise OutputError(
            f"{existing[0]} exists" + (f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""),
            hint="pass --force to replace the rendered files, or choose another --output",
        )
    try:
        for path, obj in zip(paths, objects.values(), strict=True):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"# {header}\n" + dump(obj, start=True))
    except OSError as exc:
        raise OutputError(f"cannot write {exc.filename}: {exc.strerror}") from exc
    return paths
