"""Slice metrics: the task's scores on subsets of a labelled set, to find where a model fails.

Two kinds of slice:

- by length: the tokens the model saw (special tokens included, after truncation) in buckets
  that double in width, ``1-16``, ``17-32``, ... ``513+``. Truncated texts land in the
  bucket of ``max_length``.
- by any column of the data that the caller names (``FineTunedModel.evaluate(data,
  slice_by="source")``): one slice per distinct value, compared as text; a missing value is
  its own slice, ``"<missing>"``.

Each slice reports its ``examples`` (sentences, for token tasks) and the task's scalar metrics
(`EvalPredictions.metrics` on the subset; tables such as ``per_class`` are left out). Small
slices give noisy numbers: read ``examples`` first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from fastbert.data.columns import pick_column
from fastbert.data.examples import Examples
from fastbert.data.readers import read_table
from fastbert.evaluation.predictions import EvalPredictions

__all__ = [
    "LENGTH_EDGES",
    "MISSING",
    "column_values",
    "evaluation_slices",
    "length_buckets",
    "length_slices",
    "slice_metrics",
    "slicing_title",
]

#: Upper ends of the length buckets (tokens); longer inputs share the last, open bucket.
LENGTH_EDGES = (16, 32, 64, 128, 256, 512)
MISSING = "<missing>"


def length_buckets(lengths: Any) -> np.ndarray:
    """``(n,)`` bucket names for token counts, e.g. ``"17-32"``; ``"513+"`` past the last edge."""
    lengths = np.asarray(lengths, dtype=np.int64).reshape(-1)
    lows = (1, *(e + 1 for e in LENGTH_EDGES))
    names = [f"{lo}-{hi}" for lo, hi in zip(lows, LENGTH_EDGES, strict=False)] + [f"{lows[-1]}+"]
    which = np.searchsorted(np.asarray(LENGTH_EDGES), lengths, side="left")
    return np.asarray(names, dtype=str)[which]


def slicing_title(name: str) -> str:
    """How reports name a slicing: ``"length"`` is by tokens per example, else by a column."""
    return "tokens per example" if name == "length" else f"column {name!r}"


def _as_text(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return MISSING
    if type(value).__name__ in ("NAType", "NaTType"):
        return MISSING
    return str(value)


def column_values(data: Any, task: str, column: Any, n: int) -> np.ndarray:
    """``(n,)`` values (as text) of the column ``column`` of ``data``, one per example.

    ``column`` names a column of ``data`` (anything `fastbert.data.load_examples` reads:
    a file, a DataFrame, a Dataset, a list of dicts), or is itself a sequence of ``n`` values.
    """
    if isinstance(column, str | int) and not isinstance(column, bool):
        if isinstance(data, Examples):
            raise ValueError(
                "slice_by names a column, but the data are already loaded Examples without their "
                "other columns; pass the original data, or slice_by=<one value per example>"
            )
        # `fastbert.data` reads every row of a table into one example, in order, so the raw
        # column lines up with the examples row for row.
        table = read_table(data, task)
        key = pick_column(table, "slice", column, (), "slice_by", set())
        values: Sequence[Any] = table.columns[key]
    else:
        values = list(column)
    if len(values) != n:
        raise ValueError(f"slice_by has {len(values)} values for {n} examples")
    return np.asarray([_as_text(v) for v in values], dtype=str)


def _scalars(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def slice_metrics(
    preds: EvalPredictions,
    groups: Any,
    temperature: float = 1.0,
    thresholds: np.ndarray | None = None,
    order: Sequence[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """``{value: {"examples": k, <scalar metrics>}}`` for each distinct value of ``groups`` (``(n,)``).

    Slices come in ``order`` when given (values not in it are skipped), else sorted.
    """
    groups = np.asarray(groups, dtype=str).reshape(-1)
    if groups.size != len(preds):
        raise ValueError(f"{groups.size} slice values for {len(preds)} examples")
    present = set(groups.tolist())
    keys = [k for k in order if k in present] if order is not None else sorted(present)
    out: dict[str, dict[str, Any]] = {}
    for key in keys:
        idx = np.flatnonzero(groups == key)
        out[key] = {"examples": int(idx.size), **_scalars(preds.subset(idx).metrics(temperature, thresholds))}
    return out


def length_slices(
    preds: EvalPredictions, temperature: float = 1.0, thresholds: np.ndarray | None = None
) -> dict[str, dict[str, Any]]:
    """`slice_metrics` over `length_buckets`, shortest bucket first."""
    buckets = length_buckets(preds.lengths)
    order = [str(b) for b in length_buckets([*LENGTH_EDGES, LENGTH_EDGES[-1] + 1])]
    return slice_metrics(preds, buckets, temperature, thresholds, order)


def evaluation_slices(
    preds: EvalPredictions,
    data: Any,
    slice_by: Any,
    temperature: float = 1.0,
    thresholds: np.ndarray | None = None,
) -> dict[str, dict[str, dict[str, Any]]]:
    """`FineTunedModel.evaluate`'s ``slices`` of ``preds`` (the predictions on ``data``): by
    length, and by ``slice_by`` (a column name of ``data``, or one value per example, reported
    under ``"slice_by"``)."""
    name = str(slice_by) if isinstance(slice_by, str | int) and not isinstance(slice_by, bool) else "slice_by"
    groups = column_values(data, preds.task, slice_by, len(preds))
    return {
        "length": length_slices(preds, temperature, thresholds),
        name: slice_metrics(preds, groups, temperature, thresholds),
    }
