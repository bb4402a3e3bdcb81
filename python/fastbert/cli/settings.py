"""``fastbert finetune --set KEY=VALUE``: any `FinetuneConfig` field from the command line, type-checked."""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Sequence
from typing import Any

from fastbert.cli.common import UsageError
from fastbert.config import FinetuneConfig

__all__ = ["parse_set"]


def _config_types() -> dict[str, Any]:
    return typing.get_type_hints(FinetuneConfig)


def _fits(value: Any, hint: Any) -> bool:
    """Whether a JSON value can be stored in a `FinetuneConfig` field annotated ``hint``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin is typing.Literal:
        return value in args
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_fits(v, args[0]) for v in value)
        return len(value) == len(args) and all(_fits(v, a) for v, a in zip(value, args, strict=True))
    if origin is dict:
        return isinstance(value, dict) and all(
            _fits(k, args[0]) and _fits(v, args[1]) for k, v in value.items()
        )
    return False


def describe(hint: Any) -> str:
    """A field type in words for a message: ``float | None`` is "a number or null"."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe(a) for a in args)
    if origin is tuple:
        return "a list of " + (
            describe(args[0]) if len(args) == 2 and args[1] is Ellipsis else f"{len(args)} values"
        )
    if origin is dict:
        return 'a JSON object, e.g. {"pos": 2}'
    words = {type(None): "null", bool: "true or false", int: "a whole number", float: "a number", str: "text"}
    return words.get(hint, "a JSON value")


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _convert(value: Any, hint: Any) -> Any:
    """Tuples from JSON lists; a float where the field takes no int (``epochs=1`` is 1.0)."""
    if isinstance(value, list):
        return tuple(value)
    if type(value) is int and hint is not int and int not in typing.get_args(hint):
        return float(value)
    return value


def parse_set(items: Sequence[str]) -> dict[str, Any]:
    """``--set key=value`` options as `FinetuneConfig` fields.

    The value is read as JSON when it parses (``3``, ``2e-5``, ``null``, ``true``,
    ``["query","value"]``, ``{"pos": 2}``), else taken as a string; a comma-separated string
    is accepted for a tuple field (``lora_targets=query,key,value``). Raises :class:`UsageError`
    for an unknown key or a value of the wrong type.
    """
    hints = _config_types()
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise UsageError(f"--set {item}: expected KEY=VALUE, e.g. --set warmup_ratio=0.1")
        if key not in hints:
            known = ", ".join(sorted(hints))
            raise UsageError(f"--set {item}: {key!r} is not a FinetuneConfig field; the fields are {known}")
        if key in out:
            raise UsageError(f"--set {key} is given twice")
        hint = hints[key]
        value = _json_or_text(raw)
        if isinstance(value, str) and not _fits(value, hint) and _fits([], hint):
            value = [_json_or_text(v.strip()) for v in value.split(",")]
        if not _fits(value, hint):
            raise UsageError(f"--set {item}: {key} takes {describe(hint)}, not {raw}")
        out[key] = _convert(value, hint)
    return out
