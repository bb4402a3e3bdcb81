"""The evaluation report: ``report.json``, ``report.md`` and PNG figures in a model folder.

`build_report` turns one set of dev predictions (`fastbert.predictions.EvalPredictions`)
plus what the folder's ``fastbert.json`` records (task, labels, temperature, thresholds,
training history) into a JSON-ready dict:

- ``metrics``: the task's metrics (per-class P/R/F1, macro/micro/weighted averages, confusion
  matrix, sparse above `fastbert.evaluation.metrics.DENSE_UP_TO` classes; entity scores per
  type; regression errors and correlations). The saved folder keeps the matrix here only.
- ``intervals``: 95% bootstrap intervals of the headline metrics (`fastbert.bootstrap`).
- ``calibration``: ECE, MCE and NLL before and after temperature scaling, with the
  reliability bins (`fastbert.calibration`).
- ``thresholds``: the decision thresholds tuned on dev (`fastbert.thresholds`).
- ``selective``: risk–coverage curve, AURC and operating points (`fastbert.selective`).
- ``slices``: the metrics by length bucket and by any stored column (`fastbert.slices`).
- ``training``: the loss curve and dev scores per evaluation.

`write_report` renders the Markdown and the figures (`fastbert.plots`), the JSON by `json_text`
(indented, but lists of numbers on one line), and writes every file
to a temporary name first, renaming them into place only once all are written: a failure
leaves the previous report whole. `fastbert.io.rebuild_report` does all of it from a saved
folder alone, which is what ``fastbert report DIR`` runs; the result equals what
`FineTunedModel.save` wrote.

Temperature, thresholds and the report are all computed on the dev set that also picked the
checkpoint, so its numbers are optimistic; evaluate a held-out test set for the honest ones.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from fastbert.config import DEFAULT_METRIC
from fastbert.conversions import is_number, json_ready
from fastbert.evaluation import bootstrap, calibration, metrics, selective, slices
from fastbert.evaluation.plots import plot_names, render_plots
from fastbert.evaluation.predictions import EvalPredictions

__all__ = [
    "REPORT_JSON",
    "REPORT_MD",
    "build_report",
    "json_text",
    "render_markdown",
    "report_from_meta",
    "write_report",
]

REPORT_JSON = "report.json"
REPORT_MD = "report.md"
FORMAT = 1
#: Coverages whose accuracy the selective section lists.
COVERAGES = (1.0, 0.95, 0.9, 0.8, 0.5)
#: Most points of the risk–coverage curve kept in the JSON (the figure needs no more).
CURVE_POINTS = 200


# ---------------------------------------------------------------- sections
def _entity_counts(true_tags: list[list[str]], pred_tags: list[list[str]]) -> tuple[np.ndarray, ...]:
    """Per sentence: matched entities, predicted entities, true entities (conlleval chunking)."""
    tp, n_pred, n_true = [], [], []
    for t, p in zip(true_tags, pred_tags, strict=True):
        te, pe = set(metrics.get_entities(t)), set(metrics.get_entities(p))
        tp.append(len(te & pe))
        n_pred.append(len(pe))
        n_true.append(len(te))
    return np.array(tp), np.array(n_pred), np.array(n_true)


def _intervals(
    preds: EvalPredictions, temperature: float, thresholds: np.ndarray | None, resamples: int, seed: int
) -> dict[str, Any]:
    task = preds.task
    if task == "regression":
        stat = bootstrap.regression_statistic(preds.labels, preds.outputs)
    elif task == "token":
        stat = bootstrap.entity_statistic(*_entity_counts(*preds.tags(temperature)))
    elif task == "multilabel":
        stat = bootstrap.multilabel_statistic(preds.labels > 0.5, preds.decisions(temperature, thresholds))
    else:
        stat = bootstrap.classification_statistic(
            preds.labels, preds.decisions(temperature, thresholds), len(preds.names)
        )
    return {
        "level": 0.95,
        "method": "percentile bootstrap",
        "resamples": resamples,
        "seed": seed,
        "unit": "sentence" if task == "token" else "example",
        "metrics": bootstrap.bootstrap_intervals(stat, len(preds), resamples=resamples, seed=seed),
    }


def _calibration_at(
    logits: np.ndarray, labels: np.ndarray, kind: calibration.Kind, temperature: float
) -> dict[str, Any]:
    z = np.asarray(logits, dtype=np.float64) / temperature
    if kind == "sigmoid":
        confidence = (1.0 / (1.0 + np.exp(-z))).reshape(-1)
        outcome = np.asarray(labels).reshape(-1) > 0.5
    else:
        z = z - z.max(-1, keepdims=True)
        probs = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
        confidence = probs.max(-1)
        outcome = probs.argmax(-1) == np.asarray(labels)
    return {
        **calibration.calibration_errors(confidence, outcome),
        "nll": calibration.negative_log_likelihood(logits, labels, kind, temperature),
        "reliability": calibration.reliability_bins(confidence, outcome),
    }


def _calibration(preds: EvalPredictions, temperature: float) -> dict[str, Any] | None:
    inputs = preds.calibration_inputs()
    if inputs is None:
        return None
    logits, labels, kind = inputs
    unit = {"multilabel": "label", "token": "word"}.get(preds.task, "top-label")
    return {
        "temperature": temperature,
        "bins": calibration.DEFAULT_BINS,
        # label: each label's probability against its presence; else the top label's against correctness.
        "unit": unit,
        "items": int(np.asarray(labels).size if kind == "sigmoid" else len(labels)),
        "before": _calibration_at(logits, labels, kind, 1.0),
        "after": _calibration_at(logits, labels, kind, temperature),
    }


def _thresholds(preds: EvalPredictions, thresholds: np.ndarray | None) -> dict[str, Any] | None:
    if thresholds is None:
        return None
    names = preds.names
    if preds.task == "multilabel":
        return {"kind": "per_label", "values": dict(zip(names, np.asarray(thresholds).tolist(), strict=True))}
    return {"kind": "binary", "positive_label": names[1], "value": float(np.asarray(thresholds)[0])}


def _thin(curve: dict[str, np.ndarray]) -> dict[str, list[float]]:
    """At most `CURVE_POINTS` evenly spaced points, the last (full coverage) always kept."""
    n = curve["coverage"].size
    keep = np.unique(np.linspace(0, n - 1, min(n, CURVE_POINTS)).round().astype(np.int64))
    return {"coverage": curve["coverage"][keep].tolist(), "risk": curve["risk"][keep].tolist()}


def _selective(
    preds: EvalPredictions, temperature: float, thresholds: np.ndarray | None
) -> dict[str, Any] | None:
    if preds.task not in ("classification", "pair") or len(preds) == 0:
        return None
    confidence, correct = preds.confidence_and_correct(temperature, thresholds)
    points = []
    for target in COVERAGES:
        cut = selective.abstain_threshold(confidence, correct, {"coverage": target})
        answered = confidence >= cut
        points.append(
            {
                "target_coverage": target,
                "threshold": cut,
                "coverage": float(answered.mean()),
                "accuracy": float(correct[answered].mean()) if answered.any() else None,
            }
        )
    return {
        "confidence": "probability of the predicted class (calibrated)",
        **selective.aurc(confidence, correct),
        "operating_points": points,
        "curve": _thin(selective.risk_coverage(confidence, correct)),
    }


def _slices(preds: EvalPredictions, temperature: float, thresholds: np.ndarray | None) -> dict[str, Any]:
    out = {"length": slices.length_slices(preds, temperature, thresholds)}
    for name, values in preds.groups.items():
        out[name] = slices.slice_metrics(preds, values, temperature, thresholds)
    return out


def _is_value(v: Any) -> bool:
    """A number, or ``None`` where an evaluation had none (JSON's null for NaN)."""
    return v is None or is_number(v)


def _training(history: dict[str, Any] | None, selection_metric: str | None) -> dict[str, Any] | None:
    if not history or not history.get("steps"):
        return None
    evals = [e for e in history.get("evals") or [] if isinstance(e, dict) and "step" in e]
    names = [
        k for k in (evals[0] if evals else {}) if k != "step" and all(_is_value(e.get(k, 0)) for e in evals)
    ]
    return {
        "steps": history["steps"],
        "train_loss": history.get("train_loss", []),
        "eval": {
            "steps": [e["step"] for e in evals],
            "metrics": {k: [e.get(k) for e in evals] for k in names},
        },
        "selection_metric": selection_metric,
        "best_step": history.get("best_step"),
        "best_score": history.get("best_score"),
        "stopped_early": history.get("stopped_early"),
        "train_seconds": history.get("train_seconds"),
    }


# ---------------------------------------------------------------- the report
def build_report(
    preds: EvalPredictions | None,
    *,
    task: str,
    label_names: list[str] | None = None,
    temperature: float = 1.0,
    thresholds: np.ndarray | None = None,
    history: dict[str, Any] | None = None,
    selection_metric: str | None = None,
    metrics_without_predictions: dict[str, Any] | None = None,
    resamples: int = bootstrap.DEFAULT_RESAMPLES,
    seed: int = 0,
) -> dict[str, Any]:
    """The report as JSON-ready values (``nan`` is ``None``), ready for `write_report`.

    Without ``preds`` (an MLM model, or a folder saved without ``eval_predictions.npz``) it holds
    ``metrics_without_predictions`` and the training curves only.
    """
    th = None if thresholds is None else np.asarray(thresholds, dtype=np.float64)
    report: dict[str, Any] = {"format": FORMAT, "task": task, "label_names": label_names}
    if preds is None:
        saved = metrics_without_predictions
        report["metrics"] = None if saved is None else metrics.with_stored_confusion(saved)
    else:
        if preds.task != task:
            raise ValueError(f"the predictions are for task {preds.task!r}, the model for {task!r}")
        report.update(
            examples=len(preds),
            metrics=metrics.with_stored_confusion(preds.metrics(temperature, th)),
            intervals=_intervals(preds, temperature, th, resamples, seed),
            calibration=_calibration(preds, temperature),
            thresholds=_thresholds(preds, th),
            selective=_selective(preds, temperature, th),
            slices=_slices(preds, temperature, th),
        )
    report["training"] = _training(history, selection_metric)
    report = json_ready(report)
    report["plots"] = plot_names(report)
    return report


def report_from_meta(meta: dict[str, Any], preds: EvalPredictions | None) -> dict[str, Any]:
    """`build_report` from a folder's ``fastbert.json`` contents (as JSON values) and its predictions."""
    task = meta["task"]
    metric = (meta.get("config") or {}).get("metric", "auto")
    if metric == "auto":
        metric = DEFAULT_METRIC[task][0]
    thresholds = meta.get("thresholds")
    temperature = meta.get("temperature")
    return build_report(
        preds,
        task=task,
        label_names=meta.get("label_names"),
        temperature=1.0 if temperature is None else float(temperature),
        thresholds=None if thresholds is None else np.asarray(thresholds, dtype=np.float64),
        history=meta.get("history"),
        selection_metric=metric,
        metrics_without_predictions=meta.get("metrics"),
    )


# ---------------------------------------------------------------- markdown
def _num(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    return f"{float(v):.4f}"


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(c if isinstance(c, str) else _num(c) for c in row) + " |" for row in rows]
    return [*lines, ""]


def _metric_tables(report: dict[str, Any]) -> list[str]:
    m = report.get("metrics") or {}
    lines: list[str] = []
    ci = (report.get("intervals") or {}).get("metrics", {})
    scalars = [(k, v) for k, v in m.items() if _is_value(v)]
    if scalars:
        lines += ["## Metrics", ""]
        if ci:
            level = report["intervals"]["level"]
            unit = report["intervals"]["unit"]
            lines.append(
                f"Intervals: {level:.0%} percentile bootstrap over {unit}s "
                f"({report['intervals']['resamples']} resamples, seed {report['intervals']['seed']})."
            )
            lines.append("")
        rows = [
            [k, v, f"{_num(ci[k]['low'])} – {_num(ci[k]['high'])}" if k in ci else ""] for k, v in scalars
        ]
        lines += _table(["metric", "value", "95% interval" if ci else ""], rows)
    for key, title in (
        ("per_class", "Per class"),
        ("per_type", "Per entity type"),
        ("per_type_strict", "Per entity type, strict IOB2 (an entity must open with B-)"),
    ):
        table = m.get(key)
        if table:
            lines += [f"## {title}", ""]
            rows = [[str(n), r["precision"], r["recall"], r["f1"], r["support"]] for n, r in table.items()]
            lines += _table(["name", "precision", "recall", "f1", "support"], rows)
    return lines


def render_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown, with the figures linked by file name (they sit beside it)."""
    plots = set(report.get("plots") or [])
    lines = [f"# Evaluation report ({report['task']})", ""]
    if "examples" in report:
        lines += [
            f"Dev set: {report['examples']} examples. Temperature, thresholds and these scores all come "
            "from the dev set that picked the checkpoint, so they are optimistic; evaluate a held-out "
            "test set for the honest numbers.",
            "",
        ]
    lines += _metric_tables(report)
    if "confusion_matrix.png" in plots:
        lines += ["## Confusion matrix", "", "![confusion matrix](confusion_matrix.png)", ""]
    cal = report.get("calibration")
    if cal:
        lines += [
            "## Calibration",
            "",
            f"Temperature T = {cal['temperature']:.4g}, fitted on dev by minimising the NLL of logits / T. "
            f"{cal['bins']} equal-width bins over {cal['items']} {cal['unit']} probabilities.",
            "",
        ]
        rows = [
            [name, cal[k]["ece"], cal[k]["mce"], cal[k]["nll"]]
            for k, name in (("before", "raw"), ("after", "calibrated"))
        ]
        lines += _table(["probabilities", "ECE", "MCE", "NLL"], rows)
        lines += ["![reliability diagram](reliability_diagram.png)", ""]
    th = report.get("thresholds")
    if th:
        lines += ["## Decision thresholds", ""]
        if th["kind"] == "binary":
            lines += [
                f"Predict {th['positive_label']!r} when its calibrated probability is at least {th['value']:.4f}.",
                "",
            ]
        else:
            lines += _table(["label", "threshold"], [[n, v] for n, v in th["values"].items()])
    sel = report.get("selective")
    if sel:
        lines += [
            "## Selective prediction",
            "",
            f"AURC {_num(sel['aurc'])} (excess over an oracle ranking: {_num(sel['e_aurc'])}). "
            "Confidence: the calibrated probability of the predicted class; `predict(texts, "
            'abstain={"coverage": c})` answers only above the dev threshold for that coverage.',
            "",
        ]
        rows = [
            [p["target_coverage"], p["threshold"], p["coverage"], p["accuracy"]]
            for p in sel["operating_points"]
        ]
        lines += _table(["target coverage", "threshold", "coverage", "accuracy"], rows)
        lines += ["![risk-coverage curve](risk_coverage.png)", ""]
    for name, table in (report.get("slices") or {}).items():
        if not table:
            continue
        lines += [f"## Slices by {slices.slicing_title(name)}", ""]
        cols = sorted({k for r in table.values() for k in r if k != "examples"})
        lines += _table(
            ["slice", "examples", *cols],
            [[k, r["examples"], *(r.get(c) for c in cols)] for k, r in table.items()],
        )
    tr = report.get("training")
    if tr:
        lines += [
            "## Training",
            "",
            f"Best dev {tr['selection_metric']} {_num(tr['best_score'])} at step {tr['best_step']} "
            f"of {tr['steps'][-1]}{' (stopped early)' if tr.get('stopped_early') else ''}.",
            "",
        ]
        if "training_curves.png" in plots:
            lines += ["![training curves](training_curves.png)", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


# ---------------------------------------------------------------- files
def json_text(value: Any) -> str:
    """``value`` as JSON, indented two spaces like ``json.dumps(value, indent=2)`` except that a
    list holding no list or object sits on one line: a loss curve or a matrix row is then one line,
    not one line per number (which made 300 classes' dense matrix alone 1 MB of report.json)."""
    return _json_lines(value, "") + "\n"


def _json_lines(value: Any, pad: str) -> str:
    inner = pad + "  "
    if isinstance(value, dict) and value:
        items = [f"{inner}{_scalar_json(str(k))}: {_json_lines(v, inner)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(value, list) and any(isinstance(v, dict | list) for v in value):
        return "[\n" + ",\n".join(inner + _json_lines(v, inner) for v in value) + f"\n{pad}]"
    return _scalar_json(value)


def _scalar_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def write_report(folder: str | Path, report: dict[str, Any]) -> list[Path]:
    """Write ``report.json``, ``report.md`` and the figures into ``folder``; returns their paths.

    Everything is rendered in memory, then written to temporary files in ``folder``, then renamed
    into place: an error before the renames leaves every existing file untouched.
    """
    folder = Path(folder)
    files = {
        REPORT_JSON: json_text(report).encode("utf-8"),
        REPORT_MD: render_markdown(report).encode("utf-8"),
        **render_plots(report),
    }
    temps: dict[str, str] = {}
    try:
        for name, data in files.items():
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
            temps[name] = tmp
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            umask = os.umask(0)  # mkstemp makes the file private (0600); give it the usual mode
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        for name, tmp in temps.items():
            os.replace(tmp, folder / name)
    except BaseException:
        for tmp in temps.values():
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise
    return [folder / name for name in files]
