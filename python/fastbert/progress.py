"""Progress bars on stderr (tqdm), for the training loop and the command line alike."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

__all__ = ["progress_bar"]


def progress_bar(total: int, unit: str, *, iterable: Iterable[Any] | None = None, leave: bool = True) -> Any:
    """A tqdm bar of ``total`` steps of ``unit`` on stderr (wrapping ``iterable`` when given), or
    ``None`` when tqdm is not installed."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(iterable, total=total, unit=unit, leave=leave, dynamic_ncols=True, file=sys.stderr)
