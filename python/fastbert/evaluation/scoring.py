"""The metrics of one pass over a labelled set: what evaluation, training and ``finetune`` report.

Every score comes from `EvalPredictions.metrics` (the one scoring path); texts cut into windows
add how they were cut and window-level metrics (`fastbert.evaluation.windows`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fastbert.config import FinetuneConfig
from fastbert.data.examples import Examples
from fastbert.evaluation.predictions import EvalPredictions
from fastbert.evaluation.windows import window_report
from fastbert.features.arrays import Features, WindowFeatures
from fastbert.features.inference import DocumentOutputs

__all__ = ["score_outputs"]


def score_outputs(
    cfg: FinetuneConfig,
    ex: Examples,
    feats: Features,
    outputs: DocumentOutputs,
    preds: EvalPredictions,
    temperature: float = 1.0,
    thresholds: np.ndarray | None = None,
) -> dict[str, Any]:
    """The task's metrics of ``preds`` under ``temperature`` and ``thresholds``, plus the window
    report when ``feats`` are windows (``outputs`` are the model's outputs they came from)."""
    result = preds.metrics(temperature, thresholds)
    if isinstance(feats, WindowFeatures):
        result.update(window_report(cfg, preds.names, thresholds, ex.labels, feats, outputs))
    return result
