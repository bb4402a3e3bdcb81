"""Evaluation: every score fastbert reports, from a model's outputs on a labelled set.

- `fastbert.evaluation.predictions`: `EvalPredictions`, a pass's raw outputs, and its
  ``metrics`` (the one scoring path); `fastbert.evaluation.scoring` adds window metrics;
- `fastbert.evaluation.metrics`: classification, multi-label, regression and entity metrics;
- `fastbert.evaluation.calibration`, `thresholds`, `selective`, `posthoc`: temperature
  scaling, decision thresholds, abstention, and what ``finetune`` fits on dev;
- `fastbert.evaluation.bootstrap`, `slices`: intervals and per-slice metrics;
- `fastbert.evaluation.report` and `plots`: ``report.json``, ``report.md`` and the figures;
- `fastbert.evaluation.windows`, `mlm`: window-level metrics, the masked-LM loss.
"""

from fastbert.evaluation.predictions import EvalPredictions, eval_predictions

__all__ = ["EvalPredictions", "eval_predictions"]
