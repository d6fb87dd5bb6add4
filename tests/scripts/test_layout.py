"""scripts/: packages run as modules from the root. Every import of the project's own code resolves against the
repository's files, no script changes sys.path, and the shell scripts name modules and files that exist."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"
PROJECT = ("builder", "client", "templates", "scripts", "tests")  # the top-level names the root's folders give
# Modules that only a sys.path entry makes importable by bare name: sibling scripts, backend files, test helpers.
BARE = {p.stem for folder in (SCRIPTS, ROOT / "templates" / "python", ROOT / "tests") for p in folder.rglob("*.py")}
PATH_CHANGES = {"insert", "append", "extend", "remove", "pop", "clear"}


def python_files() -> list[Path]:
    return sorted(p for p in SCRIPTS.rglob("*.py") if "results" not in p.relative_to(SCRIPTS).parts)


def module_file(name: str) -> Path | None:
    """The file (or namespace folder) that the dotted module `name` imports from the root; None if none."""
    base = ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return base if base.is_dir() else None


def top_level_names(path: Path) -> set[str] | None:
    """The names a module binds at its top level; None when it answers any name (a module __getattr__)."""
    if path.is_dir():
        return set()
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if node.name == "__getattr__":
                return None
            names.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
        elif isinstance(node, ast.If | ast.Try):  # `if TYPE_CHECKING:` and the like: their imports count
            for inner in ast.walk(node):
                if isinstance(inner, ast.Import | ast.ImportFrom):
                    names.update((a.asname or a.name).split(".")[0] for a in inner.names)
    return names


def absolute(node: ast.ImportFrom, path: Path) -> str:
    """The absolute module of a `from ... import`, relative ones resolved against the file's package."""
    if not node.level:
        return node.module or ""
    package = list(path.relative_to(ROOT).parent.parts)
    package = package[: len(package) - node.level + 1]
    return ".".join([*package, *([node.module] if node.module else [])])


def runnable(module: str) -> bool:
    """Whether `python -m module` finds a file to run."""
    found = module_file(module)
    return found is not None and found.is_file()


def unresolved_imports(path: Path, text: str | None = None) -> list[str]:
    """Every import in `path` (at the top or inside functions) that does not resolve from the root."""
    found = []
    for node in ast.walk(ast.parse(path.read_text() if text is None else text, str(path))):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules = [absolute(node, path)]
        else:
            continue
        for module in modules:
            top = module.split(".")[0]
            if top in BARE and top not in PROJECT:
                found.append(f"line {node.lineno}: {module} is importable only through sys.path")
                continue
            if top not in PROJECT:
                continue  # the standard library and installed packages
            prefixes = [".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 2)]
            missing = next((prefix for prefix in prefixes if not module_file(prefix)), None)
            if missing:
                found.append(f"line {node.lineno}: no module {missing}")
            elif isinstance(node, ast.ImportFrom):
                names = top_level_names(module_file(module))  # type: ignore[arg-type]
                for alias in node.names:
                    if names is not None and alias.name not in names and not module_file(f"{module}.{alias.name}"):
                        found.append(f"line {node.lineno}: {module} has no {alias.name}")
    return found


def is_sys_path(node: ast.AST) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "path" and isinstance(node.value, ast.Name)
            and node.value.id == "sys")  # fmt: skip


def path_changes(path: Path, text: str | None = None) -> list[str]:
    """Every place `path` assigns to sys.path, changes it in place, or adds a site folder."""
    found = []
    for node in ast.walk(ast.parse(path.read_text() if text is None else text, str(path))):
        if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(is_sys_path(t) or (isinstance(t, ast.Subscript) and is_sys_path(t.value)) for t in targets):
                found.append(f"line {node.lineno}: assigns sys.path")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if is_sys_path(node.func.value) and node.func.attr in PATH_CHANGES:
                found.append(f"line {node.lineno}: sys.path.{node.func.attr}()")
            elif node.func.attr == "addsitedir":
                found.append(f"line {node.lineno}: site.addsitedir()")
    return found


@pytest.mark.parametrize("path", python_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_import_of_the_projects_code_resolves_from_the_root(path):
    assert unresolved_imports(path) == []


@pytest.mark.parametrize("path", python_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_script_changes_sys_path(path):
    assert path_changes(path) == []


def test_the_checks_see_what_they_look_for():
    sample = SCRIPTS / "bench" / "sample.py"  # where the text would be: relative imports resolve from there
    text = (
        "import sys\nsys.path[:0] = ['x']\nsys.path.insert(0, 'y')\nprint(sys.path)\n"
        "from gpu_bench import time_gpu\n"
        "def f():\n    import torch_model\n    from scripts.bench.timing import no_such_name, time_gpu\n"
        "    from scripts.nothing import x\n    from .timing import census\n    from . import timing\n"
        "    import json, numpy, builder.common.backend_files\n"
    )
    assert path_changes(sample, text) == ["line 2: assigns sys.path", "line 3: sys.path.insert()"]
    assert unresolved_imports(sample, text) == [
        "line 5: gpu_bench is importable only through sys.path",
        "line 7: torch_model is importable only through sys.path",
        "line 8: scripts.bench.timing has no no_such_name",
        "line 9: no module scripts.nothing",
    ]


def test_every_folder_of_scripts_is_a_package_that_says_what_lives_there():
    folders = [SCRIPTS, *(p.parent for p in python_files())]
    for folder in sorted(set(folders)):
        init = folder / "__init__.py"
        assert init.is_file(), f"{folder.relative_to(ROOT)} has no __init__.py: `python -m scripts...` needs one"
        assert ast.get_docstring(ast.parse(init.read_text())), f"{init.relative_to(ROOT)} has no docstring"


MODULE_RUN = re.compile(r"python3?\s+-m\s+(scripts(?:\.[a-z_]\w*)+)(?![\w.])")  # not a placeholder (scripts.bench.X)
FILE_RUN = re.compile(r"python3?\s+(?:\S*/)?scripts/\S+\.py")
NAMED_FILE = re.compile(r"\bscripts/[\w./-]+\.(?:py|sh)\b")


@pytest.mark.parametrize("path", sorted(SCRIPTS.glob("*.sh")), ids=lambda p: p.name)
def test_shell_scripts_run_modules_and_name_files_that_exist(path):
    text = path.read_text()
    assert not FILE_RUN.findall(text), "run a script under scripts/ as a module: python3 -m scripts.bench.X"
    assert [m for m in MODULE_RUN.findall(text) if not runnable(m)] == []
    assert [f for f in NAMED_FILE.findall(text) if not (ROOT / f).is_file()] == []


def test_gpu_run_runs_every_mode_through_an_existing_module():
    modules = MODULE_RUN.findall((SCRIPTS / "gpu_run.sh").read_text())
    assert set(modules) >= {"scripts.bench.gpu_bench", "scripts.bench.gpu_serve_bench", "scripts.bench.gpu_multi_bench",
                            "scripts.probes.host_stall_probe", "scripts.probes.stub_overhead_probe",
                            "scripts.probes.gpu_trunk_probe"}  # fmt: skip


def test_usage_lines_name_modules_that_exist():
    texts = [p.read_text() for p in python_files()] + [(SCRIPTS / "results" / "README.md").read_text()]
    named = {m for text in texts for m in MODULE_RUN.findall(text)}
    assert named and [m for m in sorted(named) if not runnable(m)] == []


def test_a_light_script_runs_as_a_module_and_imports_no_torch():
    """host_stall_probe sets the pools' sizes before torch loads: nothing it imports at the top may load torch."""
    help_run = subprocess.run([sys.executable, "-m", "scripts.probes.host_stall_probe", "--help"], cwd=ROOT,
                              capture_output=True, text=True, timeout=60)  # fmt: skip
    assert help_run.returncode == 0 and "inprocess" in help_run.stdout, help_run.stderr
    code = "import sys, scripts.probes.host_stall_probe; print('torch' in sys.modules)"
    imported = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert imported.stdout.strip() == "False", imported.stderr


@pytest.mark.slow
def test_every_script_imports_from_the_root():
    """Each module imported for real (torch, the backend files): what the static checks cannot see."""
    modules = [".".join(p.relative_to(ROOT).with_suffix("").parts) for p in python_files()]
    code = "import importlib, sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)\nprint('ok')"
    result = subprocess.run([sys.executable, "-c", code, *modules], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)  # fmt: skip
    assert result.stdout.strip().endswith("ok"), result.stderr[-3000:]
