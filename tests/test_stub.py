"""``fastbert/_core.pyi`` against the compiled ``fastbert._core``.

The stub is what editors and type checkers see, so it must not drift from the
Rust bindings. Checked here (and by ``make lint``):

- the module's names (``__all__`` and every non-dunder attribute) are exactly the
  stub's functions, classes and annotated constants;
- each class has the same methods and properties, of the same kind (property,
  staticmethod, method), and the same base classes;
- wherever the compiled object carries a ``__text_signature__``, the parameters
  have the same names, kinds (positional / keyword-only) and defaults; a class's
  constructor is written ``__new__(cls, ...)`` in the stub and checked against the
  class's own text signature.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from typing import Any

import pytest

import fastbert
from fastbert import _core

STUB = Path(fastbert.__file__).with_name("_core.pyi")
# What every module / class has without the bindings defining it.
MODULE_BOILERPLATE = {"__doc__", "__file__", "__loader__", "__name__", "__package__", "__spec__", "__all__"}
CLASS_BOILERPLATE = {"__doc__", "__module__", "__weakref__", "__dict__", "__new__", "__text_signature__"}


def _tree() -> ast.Module:
    return ast.parse(STUB.read_text(encoding="utf-8"), filename=str(STUB))


def _stub_names(tree: ast.Module) -> dict[str, ast.AST]:
    """Functions, classes and annotated names; plain assignments are private type aliases."""
    names: dict[str, ast.AST] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names[node.name] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names[node.target.id] = node
    return names


def _kind(node: ast.FunctionDef) -> str:
    decorators = {d.id for d in node.decorator_list if isinstance(d, ast.Name)}
    if "property" in decorators:
        return "property"
    if "staticmethod" in decorators:
        return "staticmethod"
    if "classmethod" in decorators:
        return "classmethod"
    return "method"


def _runtime_kind(cls: type, name: str) -> str:
    raw = inspect.getattr_static(cls, name)
    if isinstance(raw, staticmethod):
        return "staticmethod"
    if isinstance(raw, classmethod) or type(raw).__name__ == "classmethod_descriptor":
        return "classmethod"
    if inspect.isdatadescriptor(raw) and not callable(raw):
        return "property"
    return "method"


def _stub_params(node: ast.FunctionDef) -> list[tuple[str, str, Any]]:
    """(name, kind, default) per parameter; default is ``inspect.Parameter.empty`` when there is none."""
    a = node.args
    positional = [*a.posonlyargs, *a.args]
    defaults: list[Any] = [inspect.Parameter.empty] * (len(positional) - len(a.defaults))
    defaults += [ast.literal_eval(d) for d in a.defaults]
    out = []
    for i, p in enumerate(positional):
        kind = "positional_only" if i < len(a.posonlyargs) else "positional_or_keyword"
        out.append((p.arg, kind, defaults[i]))
    for p, d in zip(a.kwonlyargs, a.kw_defaults, strict=True):
        out.append((p.arg, "keyword_only", inspect.Parameter.empty if d is None else ast.literal_eval(d)))
    return out


def _runtime_params(obj: Any) -> list[tuple[str, str, Any]] | None:
    if not getattr(obj, "__text_signature__", None):
        return None
    out = []
    for p in inspect.signature(obj).parameters.values():
        kind = p.kind.name.lower()
        # `$self, /`: CPython's convention for the receiver; the stub writes plain `self`.
        if p.name == "self" and kind == "positional_only":
            kind = "positional_or_keyword"
        out.append((p.name, kind, p.default))
    return out


def _same_params(stub: list[tuple[str, str, Any]], runtime: list[tuple[str, str, Any]], where: str) -> None:
    assert [(n, k) for n, k, _ in stub] == [(n, k) for n, k, _ in runtime], (
        f"{where}: stub parameters {[(n, k) for n, k, _ in stub]} != compiled {[(n, k) for n, k, _ in runtime]}"
    )
    for (name, _, want), (_, _, got) in zip(stub, runtime, strict=True):
        has_stub, has_rt = want is not inspect.Parameter.empty, got is not inspect.Parameter.empty
        assert has_stub == has_rt, (
            f"{where}({name}): default in stub: {has_stub}, in compiled module: {has_rt}"
        )
        # PyO3 writes `...` for defaults it cannot print.
        if has_rt and got is not Ellipsis:
            assert want == got, f"{where}({name}): stub default {want!r} != compiled {got!r}"


def _module_names() -> set[str]:
    return {n for n in dir(_core) if n not in MODULE_BOILERPLATE}


def test_stub_is_beside_the_compiled_module() -> None:
    assert STUB.is_file(), f"{STUB} is missing"
    assert Path(_core.__file__).parent == STUB.parent


def test_module_names_match() -> None:
    stub = set(_stub_names(_tree()))
    runtime = _module_names()
    assert not runtime - stub, f"in fastbert._core but not in the stub: {sorted(runtime - stub)}"
    assert not stub - runtime, f"in the stub but not in fastbert._core: {sorted(stub - runtime)}"
    assert set(_core.__all__) <= stub, (
        f"__all__ names missing from the stub: {sorted(set(_core.__all__) - stub)}"
    )


@pytest.mark.parametrize("name", sorted(n for n, v in vars(_core).items() if isinstance(v, type)))
def test_class_matches(name: str) -> None:
    cls = getattr(_core, name)
    node = _stub_names(_tree()).get(name)
    assert isinstance(node, ast.ClassDef), f"{name} is a class in fastbert._core but not in the stub"

    stub_bases = [ast.unparse(b) for b in node.bases] or ["object"]
    assert stub_bases == [b.__name__ for b in cls.__bases__], f"{name}: bases differ"

    members = {n: m for n, m in ((m.name, m) for m in node.body if isinstance(m, ast.FunctionDef))}
    # A constructor: the stub's `__new__(cls, ...)` against the class's own text signature.
    constructor = members.pop("__new__", None)
    if constructor is not None:
        params = _runtime_params(cls)
        assert params is not None, f"{name} has a constructor in the stub but no __text_signature__"
        _same_params(_stub_params(constructor)[1:], params, f"{name}.__new__")
    runtime = {n for n in vars(cls) if n not in CLASS_BOILERPLATE}
    assert set(members) == runtime, (
        f"{name}: only in the stub {sorted(set(members) - runtime)}, "
        f"only in the compiled class {sorted(runtime - set(members))}"
    )
    for member, fn in members.items():
        assert _kind(fn) == _runtime_kind(cls, member), f"{name}.{member}: kind differs"
        if _kind(fn) == "property":
            continue
        params = _runtime_params(getattr(cls, member))
        if params is None:
            continue
        stub_params = _stub_params(fn)
        if _kind(fn) == "staticmethod":
            assert params[:1] != [("self", "positional_or_keyword", inspect.Parameter.empty)]
        _same_params(stub_params, params, f"{name}.{member}")


@pytest.mark.parametrize("name", sorted(n for n, v in vars(_core).items() if inspect.isbuiltin(v)))
def test_function_signature_matches(name: str) -> None:
    node = _stub_names(_tree()).get(name)
    assert isinstance(node, ast.FunctionDef), f"{name} is a function in fastbert._core but not in the stub"
    params = _runtime_params(getattr(_core, name))
    assert params is not None, f"fastbert._core.{name} has no __text_signature__"
    _same_params(_stub_params(node), params, name)


def test_signatures_are_checked_at_all() -> None:
    """Guard against a PyO3 upgrade silently dropping text signatures (every check above would pass)."""
    assert _runtime_params(_core.WordPieceTokenizer.encode_batch) is not None
    assert _runtime_params(_core.WordPieceTokenizer.from_file) == [
        ("path", "positional_or_keyword", inspect.Parameter.empty)
    ]
