"""dvc.yaml's code deps are exactly the files each stage runs, so `dvc repro` reruns a stage whenever
its code changes and never because of code it does not run.

A stage runs its script, the `vaebench` modules that script imports, the modules those import, and
so on (imports inside functions included: they run when the function does; imports under
`if TYPE_CHECKING:` excluded: they never run). A package's `__init__.py` counts where it holds more
than a docstring. `vaebench.models` imports the architecture file by name at run time: a matrix
stage runs `models/${item.arch}.py`, any other stage that imports it may run every model file.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest
from dvc.repo import Repo

from vaebench.models import architectures

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
CODE = ("src/", "stages/")


def _type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name | ast.Attribute) and ast.unparse(node.test).endswith("TYPE_CHECKING")


def _imported_names(tree: ast.AST) -> list[str]:
    """Dotted names of everything imported, `from a import b` as both `a` and `a.b`, skipping TYPE_CHECKING blocks."""
    names: list[str] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            names.extend(f"{node.module}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return names


def _module_file(dotted: str, script_dir: Path) -> Path | None:
    parts = dotted.split(".")
    if parts[0] != "vaebench":
        local = script_dir / f"{dotted}.py"  # `import _venv` beside the stage scripts
        return local if len(parts) == 1 and local.exists() else None
    base = SRC.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def _holds_code(init: Path) -> bool:
    body = ast.parse(init.read_text()).body
    return any(
        not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))
        and not (isinstance(node, ast.ImportFrom) and node.module == "__future__")
        for node in body
    )


@cache
def runs(script: Path) -> frozenset[Path]:
    """Every project file that running `script` may execute (the dynamic model import aside)."""
    seen: set[Path] = set()
    todo = [script]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for dotted in _imported_names(ast.parse(path.read_text())):
            parts = dotted.split(".")
            for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__.py and a/b/__init__.py first
                found = _module_file(".".join(parts[:i]), script.parent)
                if found is not None and (found.name != "__init__.py" or _holds_code(found)):
                    todo.append(found)
    return frozenset(seen)


def required(cmd: str) -> set[str]:
    """The code files a stage's command runs, relative to the repository."""
    script, *args = cmd.split()[1:]
    files = set(runs(ROOT / script))
    if SRC / "vaebench" / "models" / "__init__.py" in files:
        archs = [a for a in args if a in architectures()] or architectures()
        files |= {SRC / "vaebench" / "models" / f"{arch}.py" for arch in archs}
    return {str(f.relative_to(ROOT)) for f in files}


def _code_in(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*.py") if p.name != "__init__.py" or _holds_code(p)}


def declared(deps: list[str]) -> set[str]:
    """The code files a stage's deps cover: a file itself, a folder every .py file under it (but an
    `__init__.py` that holds no code)."""
    files = set()
    for dep in deps:
        path = ROOT / dep
        files |= {str(p.relative_to(ROOT)) for p in _code_in(path)} if path.is_dir() else {dep}
    return files


def stages() -> list[tuple[str, str, list[str]]]:
    with Repo(str(ROOT)) as repo:
        return [
            (s.addressing, s.cmd, [d.def_path for d in s.deps if d.def_path.startswith(CODE)])
            for s in repo.index.stages
        ]


@pytest.mark.parametrize(("stage", "cmd", "deps"), stages(), ids=[s[0] for s in stages()])
def test_a_stages_code_deps_are_what_it_runs(stage: str, cmd: str, deps: list[str]) -> None:
    need, have = required(cmd), declared(deps)
    assert not need - have, f"{stage} runs code that dvc.yaml does not list: {sorted(need - have)}"
    assert not have - need, f"{stage} lists code it does not run (needless reruns): {sorted(have - need)}"


def test_the_import_walk_follows_lazy_imports_and_skips_type_checking() -> None:
    """The walk can fail: an import inside a function counts, one under TYPE_CHECKING does not."""
    code = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import vaebench.a\nelse:\n    import vaebench.b\n"
    code += "def f():\n    from vaebench.c import d\n"
    assert _imported_names(ast.parse(code)) == [
        "typing",
        "typing.TYPE_CHECKING",
        "vaebench.b",
        "vaebench.c",
        "vaebench.c.d",
    ]
    assert "src/vaebench/data/mnist.py" in required("python stages/download.py")  # imported inside main()
    report = required("python stages/report.py")
    assert "src/vaebench/comparison/report.py" in report and "src/vaebench/training/fit.py" not in report
    assert not any(f.startswith("src/vaebench/models/") for f in report)  # the report builds no model
