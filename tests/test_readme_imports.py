"""What the README's Python examples import, its install lines provide.

``pip install .`` installs the base dependencies only, and the README's examples once imported
``peft`` and ``transformers`` with no word on installing them. Every top-level module an
example imports must be the standard library's, fastbert's, a base dependency's, or come with
an extra (``pip install ".[EXTRA]"``) that the README names before that example.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

tomllib = pytest.importorskip("tomllib")

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
PYPROJECT = REPO / "pyproject.toml"


def project() -> dict:
    with PYPROJECT.open("rb") as f:
        return tomllib.load(f)["project"]


def names(requirements: list[str]) -> set[str]:
    return {canonicalize_name(Requirement(r).name) for r in requirements}


def python_examples(text: str) -> list[tuple[int, str]]:
    """``(offset in text, code)`` of every ```python block."""
    return [(m.start(), m.group(1)) for m in re.finditer(r"^```python\n(.*?)^```$", text, re.S | re.M)]


def top_level_imports(code: str) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def extras_named(text: str) -> set[str]:
    """The extras a text tells the reader to install: ``pip install ".[a,b]"``, ``pip install fastbert[a]``."""
    found = set()
    for group in re.findall(r"pip install [\"']?(?:\.|fastbert)\[([A-Za-z0-9_,\- ]+)\]", text):
        found |= {canonicalize_name(e.strip()) for e in group.split(",")}
    return found


def test_readme_examples_import_only_what_its_install_lines_provide() -> None:
    text = README.read_text(encoding="utf-8")
    meta = project()
    base = names(meta["dependencies"])
    extras = {canonicalize_name(k): names(v) for k, v in meta.get("optional-dependencies", {}).items()}
    providers = importlib.metadata.packages_distributions()
    examples = python_examples(text)
    assert examples, "README.md has no Python examples"
    missing = []
    for number, (offset, code) in enumerate(examples, 1):
        named = extras_named(text[:offset])
        for module in sorted(top_level_imports(code)):
            if module in sys.stdlib_module_names or module == "fastbert":
                continue
            dists = {canonicalize_name(d) for d in providers.get(module, [])}
            assert dists, (
                f"README example {number} imports {module}, which no installed distribution provides"
            )
            if dists & base:
                continue
            if not any(dists & extras.get(extra, set()) for extra in named):
                offering = sorted(e for e, reqs in extras.items() if dists & reqs)
                missing.append(f"example {number}: {module} ({', '.join(sorted(dists))}; extras: {offering})")
    assert not missing, (
        "README examples import what neither `pip install .` nor a named extra installs:\n"
        + "\n".join(missing)
    )


def test_named_extras_exist_and_pin_what_the_tests_ran() -> None:
    """Every extra the README names is in pyproject.toml, and pins as the ``test`` extra does."""
    meta = project()
    extras = {canonicalize_name(k): v for k, v in meta["optional-dependencies"].items()}
    named = extras_named(README.read_text(encoding="utf-8"))
    assert named - {"test"}, "the README names no extra"
    assert named <= set(extras), f"README names extras pyproject.toml lacks: {sorted(named - set(extras))}"
    tested = {canonicalize_name(r.name): r.specifier for r in map(Requirement, extras["test"])}
    for extra in named:
        for req in map(Requirement, extras[extra]):
            name = canonicalize_name(req.name)
            if name in tested:
                assert req.specifier == tested[name], (
                    f"extra {extra} pins {req}, the tests ran {name}{tested[name]}"
                )
