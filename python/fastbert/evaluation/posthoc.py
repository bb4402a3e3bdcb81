"""What `fastbert.finetune` learns on dev after training: a temperature and decision thresholds.

The dev set already chose the checkpoint; its predictions at that checkpoint (kept from the
evaluation that chose it, not computed again) then

1. fit a temperature (`fastbert.evaluation.calibration.fit_temperature`) so that `predict_proba` gives
   calibrated probabilities (``FinetuneConfig.calibrate``);
2. tune decision thresholds on those calibrated probabilities (`fastbert.evaluation.thresholds`,
   ``FinetuneConfig.tune_thresholds``): binary tasks a cut on ``P(label_names[1])`` for the
   selection metric, multilabel one cut per label;
3. are kept (`fastbert.evaluation.predictions.EvalPredictions`) for the evaluation
   report and for abstention thresholds (`FineTunedModel.predict(..., abstain=...)`).

Both the temperature and the thresholds are chosen on the set that also chose the checkpoint,
so dev scores are optimistic; a held-out test set gives the honest number.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fastbert.config import FinetuneConfig
from fastbert.evaluation.calibration import fit_temperature
from fastbert.evaluation.predictions import EvalPredictions
from fastbert.evaluation.selective import abstain_threshold
from fastbert.evaluation.thresholds import tune_binary_threshold, tune_multilabel_thresholds

__all__ = ["abstain_cut", "fit_on_dev"]


def fit_on_dev(preds: EvalPredictions, cfg: FinetuneConfig) -> tuple[float, np.ndarray | None]:
    """``(temperature, thresholds)`` fitted on the dev predictions, as ``cfg`` asks (1 and ``None``
    where it asks for neither)."""
    temperature: float = 1.0
    fit = preds.calibration_inputs()
    if fit is not None and cfg.calibrate:
        temperature = fit_temperature(*fit)
    if not cfg.tune_thresholds or fit is None:
        return temperature, None
    if preds.task == "multilabel":
        return temperature, tune_multilabel_thresholds(preds.probabilities(temperature), preds.labels)
    if preds.task in ("classification", "pair") and len(preds.names) == 2:
        p1 = preds.probabilities(temperature)[:, 1]
        return temperature, np.array([tune_binary_threshold(p1, preds.labels, cfg.resolved_metric()[0])])
    return temperature, None


def abstain_cut(
    preds: EvalPredictions | None, temperature: float, thresholds: np.ndarray | None, abstain: Any
) -> float:
    """The dev-calibrated confidence below which a model abstains, for ``{"coverage": c}`` or
    ``{"accuracy": a}`` (`fastbert.evaluation.selective.abstain_threshold`)."""
    if preds is None:
        raise ValueError(
            "abstaining needs the dev predictions that finetune keeps (and save writes to "
            "eval_predictions.npz); this model has none"
        )
    confidence, correct = preds.confidence_and_correct(temperature, thresholds)
    return abstain_threshold(confidence, correct, abstain)
