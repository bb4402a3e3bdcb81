"""The package's shape (ARCHITECTURE.md), checked on the source: what the import linter cannot see.

import-linter (`make lint`, CI) checks that layers import only downward and that no modules import
each other. It cannot see the compiled ``fastbert._core``, so it reads ``import fastbert._core``
as an import of the package root and is told to ignore those; these tests refuse a real import
of the root instead. They also hold every module under 600 lines, keep private names private to
their module, and find module-level names that nothing uses.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "python" / "fastbert"
#: The generated copy of kernels/ is checked as kernels/ itself.
SOURCES = [
    p for p in sorted(PACKAGE.rglob("*.py")) if "kernels" not in p.relative_to(PACKAGE).parts
] + sorted((REPO / "kernels").glob("*.py"))
#: Where a name may be used: the package, the kernels, tests, benchmarks and tools.
USERS = [*SOURCES, *sorted((REPO / "tests").rglob("*.py")), *sorted((REPO / "benches").glob("*.py"))]
USERS += sorted((REPO / "tools").glob("*.py"))
MAX_LINES = 600

pytestmark = pytest.mark.skipif(not PACKAGE.is_dir(), reason="needs the source tree (python/fastbert)")


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _imports(path: Path) -> Iterator[tuple[int, str, list[str]]]:
    """(line, module, imported names) of every import in ``path``, at any depth."""
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, []
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            yield node.lineno, node.module, [alias.name for alias in node.names]


def test_no_module_imports_the_package_root() -> None:
    # The root imports the public API (lazily, but eagerly for type checkers): a module that
    # imports it back ties itself to every layer. Only the compiled core may be reached through it.
    found = []
    for path in SOURCES:
        if path.name in ("__init__.py", "__main__.py") and path.parent == PACKAGE:
            continue
        for line, module, names in _imports(path):
            if module == "fastbert" and (not names or set(names) - {"_core"}):
                found.append(f"{path.relative_to(REPO)}:{line}: imports fastbert {names or ''}")
    assert not found, "\n".join(found)


def test_no_module_is_longer_than_600_lines() -> None:
    long = {
        str(p.relative_to(REPO)): n
        for p in SOURCES
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not long, f"over {MAX_LINES} lines: {long}"


def test_private_names_stay_in_their_module() -> None:
    # `from fastbert.x import _name` reaches into another module's internals: make the name public
    # (and documented) or move the code. `_core` is the compiled module, not a private name.
    found = []
    for path in [*SOURCES, *sorted((REPO / "benches").glob("*.py"))]:
        for line, module, names in _imports(path):
            if not module.startswith("fastbert"):
                continue
            private = [n for n in names if n.startswith("_") and n != "_core" and not n.startswith("__")]
            if private:
                found.append(f"{path.relative_to(REPO)}:{line}: from {module} import {private}")
    assert not found, "\n".join(found)


def _defined(path: Path) -> Iterator[tuple[int, str]]:
    """(line, name) of the public module-level functions, classes and constants of ``path``."""
    for node in _tree(path).body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names = [(node.lineno, node.name)]
        elif isinstance(node, ast.Assign):
            names = [(node.lineno, t.id) for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names = [(node.lineno, node.target.id)]
        else:
            continue
        yield from ((line, n) for line, n in names if not n.startswith("_"))


def _uses(path: Path) -> Iterator[str]:
    """Every name ``path`` reads, calls, imports or annotates with, but not its own definitions."""
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Store):
            yield node.id
        elif isinstance(node, ast.Attribute):
            yield node.attr
        elif isinstance(node, ast.ImportFrom):
            yield from (alias.name for alias in node.names)


def test_every_public_name_is_used_somewhere() -> None:
    # Dead code is a name defined at module level that no module, test, benchmark or tool reads
    # (a name listed in __all__ only is still dead: __all__ holds strings, not uses).
    used: dict[str, int] = {}
    for path in USERS:
        for name in _uses(path):
            used[name] = used.get(name, 0) + 1
    dead = [
        f"{path.relative_to(REPO)}:{line}: {name}"
        for path in SOURCES
        for line, name in _defined(path)
        if name not in used
    ]
    assert not dead, "defined but never used:\n" + "\n".join(dead)
