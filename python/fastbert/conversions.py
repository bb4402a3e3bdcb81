"""Small value conversions that several layers need: arrays, JSON values and files, numbers."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["as_numpy", "is_number", "json_ready", "read_json_object"]


def as_numpy(x: Any) -> np.ndarray:
    """A numpy view of ``x``: a numpy array, a torch tensor on any device, or nested lists."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def json_ready(x: Any) -> Any:
    """Plain JSON values: numpy arrays, numpy scalars and tensors become Python values (through
    ``tolist``), tuples become lists, dict keys strings, and ``nan``/``inf`` ``None`` (JSON has
    neither, and ``json.dumps`` would write the invalid token ``NaN``)."""
    if isinstance(x, dict):
        return {str(k): json_ready(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [json_ready(v) for v in x]
    if hasattr(x, "tolist"):  # numpy arrays and scalars, torch tensors
        return json_ready(x.tolist())
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def read_json_object(path: Path) -> dict[str, Any]:
    """The JSON object in the file ``path`` (a config, ``fastbert.json``, ...); a file that is not
    UTF-8 JSON, or holds no object, raises ``ValueError`` naming it."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(value, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value


def is_number(v: Any) -> bool:
    """True for ints and floats (numpy's included), not for ``bool`` nor ``None``."""
    return isinstance(v, int | float | np.number) and not isinstance(v, bool | np.bool_)
