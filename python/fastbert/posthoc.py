"""What `fastbert.finetune` learns on dev after training: a temperature and decision thresholds.

The dev set already chose the checkpoint; the same forward pass then

1. fits a temperature (`fastbert.calibration.fit_temperature`) so that `predict_proba` gives
   calibrated probabilities (``FinetuneConfig.calibrate``);
2. tunes decision thresholds on those calibrated probabilities (`fastbert.thresholds`,
   ``FinetuneConfig.tune_thresholds``): binary tasks a cut on ``P(label_names[1])`` for the
   selection metric, multilabel one cut per label;
3. keeps the dev predictions (`fastbert.predictions.EvalPredictions`) for the evaluation
   report and for abstention thresholds (`FineTunedModel.predict(..., abstain=...)`).

Both the temperature and the thresholds are chosen on the set that also chose the checkpoint,
so dev scores are optimistic; a held-out test set gives the honest number.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from fastbert.calibration import fit_temperature
from fastbert.predictions import collect_predictions
from fastbert.selective import abstain_threshold
from fastbert.thresholds import tune_binary_threshold, tune_multilabel_thresholds

if TYPE_CHECKING:
    from fastbert.api import FineTunedModel
    from fastbert.data import Examples

__all__ = ["fit_on_dev", "threshold_for_abstain"]


def fit_on_dev(ft: FineTunedModel, dev_ex: Examples) -> None:
    """Set ``ft.eval_predictions``, ``ft.temperature`` and ``ft.thresholds`` from the dev set."""
    if ft.task == "mlm":
        return
    cfg = ft.config
    preds = collect_predictions(ft, dev_ex)
    ft.eval_predictions = preds
    fit = preds.calibration_inputs()
    if fit is not None and cfg.calibrate:
        ft.temperature = fit_temperature(*fit)  # type: ignore[arg-type]
    if not cfg.tune_thresholds or fit is None:
        return
    if ft.task == "multilabel":
        ft.thresholds = tune_multilabel_thresholds(preds.probabilities(ft.temperature), preds.labels)
    elif ft.task in ("classification", "pair") and len(preds.names) == 2:
        p1 = preds.probabilities(ft.temperature)[:, 1]
        ft.thresholds = np.array([tune_binary_threshold(p1, preds.labels, cfg.resolved_metric()[0])])


def threshold_for_abstain(ft: FineTunedModel, abstain: Any) -> float:
    """The dev-calibrated confidence below which ``ft`` abstains, for ``{"coverage": c}`` or
    ``{"accuracy": a}`` (`fastbert.selective.abstain_threshold`)."""
    preds = ft.eval_predictions
    if preds is None:
        raise ValueError(
            "abstaining needs the dev predictions that finetune keeps (and save writes to "
            "eval_predictions.npz); this model has none"
        )
    confidence, correct = preds.confidence_and_correct(ft.temperature, ft.thresholds)
    return abstain_threshold(confidence, correct, abstain)
