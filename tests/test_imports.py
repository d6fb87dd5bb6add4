"""The packages' import rules: the builder never imports the client, the client imports only the builder's
contract and common leaves, and those leaves import nothing else of the builder."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The places that compose both, above them: `tritonbuild demo` builds, serves, then measures with the client;
# `tritonbench study` and `tritonbench tune` build each variant or candidate through make-repo's planning.
DEMO = "builder/demo.py"
EXPERIMENTS = ("client/experiments/",)


def imports(path: Path) -> set[str]:
    """Every absolute module a file imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def modules(package: str) -> dict[str, set[str]]:
    return {str(p.relative_to(ROOT)): imports(p) for p in sorted((ROOT / package).rglob("*.py"))}


def offenders(package: str, allowed) -> list[str]:
    return [f"{path} imports {name}" for path, names in modules(package).items() for name in sorted(names)
            if not allowed(path, name)]  # fmt: skip


def test_the_builder_never_imports_the_client():
    assert offenders("builder", lambda path, name: path == DEMO or not name.startswith("client")) == []


def test_the_client_imports_only_the_builders_contract_and_common_leaves():
    def allowed(path: str, name: str) -> bool:
        leaf = name.startswith(("builder.common", "builder.contract"))
        return not name.startswith("builder") or leaf or path.startswith(EXPERIMENTS)

    assert offenders("client", allowed) == []


LEAVES = {"builder/common": ("builder.common",), "builder/contract": ("builder.common", "builder.contract")}


def test_the_leaves_import_nothing_else_of_the_builder():
    found = []
    for path, names in modules("builder").items():
        leaf = next((allowed for folder, allowed in LEAVES.items() if path.startswith(folder + "/")), None)
        if leaf is not None:
            found += [
                f"{path} imports {n}" for n in sorted(names) if n.startswith("builder") and not n.startswith(leaf)
            ]
    assert found == []


def test_the_rules_see_imports_inside_functions(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from client.sweep import run_sweep\n    import builder.plan\n")
    assert imports(sample) == {"client.sweep", "builder.plan"}
