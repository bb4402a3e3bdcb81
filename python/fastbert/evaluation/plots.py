"""The report's figures as PNG bytes, drawn from the sections of a report dict (`fastbert.report`).

matplotlib's object API with the Agg canvas: no pyplot, so no global figure state and no GUI
backend is touched (a notebook's backend stays as it was), and it works on headless machines.
matplotlib is imported only when a figure is drawn.

Each function returns the PNG's bytes; `fastbert.report` decides where they go (written
atomically with the rest of the report).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "PLOT_FILES",
    "confusion_matrix_png",
    "plot_names",
    "reliability_png",
    "render_plots",
    "risk_coverage_png",
    "training_curves_png",
]

#: File name of each figure in a model folder.
PLOT_FILES = {
    "confusion_matrix": "confusion_matrix.png",
    "reliability": "reliability_diagram.png",
    "risk_coverage": "risk_coverage.png",
    "training": "training_curves.png",
}
#: Above this many classes the confusion matrix drops its per-cell numbers (they would not fit).
_ANNOTATE_UP_TO = 20


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    # No "Software" text chunk: the bytes then depend on the drawing alone.
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def confusion_matrix_png(matrix: Sequence[Sequence[int]], names: Sequence[str]) -> bytes:
    """Rows = true class, columns = predicted; colour = share of the row (recall), text = count."""
    cm = np.asarray(matrix, dtype=np.float64)
    c = cm.shape[0]
    rows = cm.sum(1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    side = min(max(4.0, 0.45 * c + 2.0), 24.0)
    fig = _figure(side + 1.0, side)
    ax = fig.add_subplot()
    im = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(im, ax=ax, label="share of the true class")
    ticks = np.arange(c)
    size = 8 if c <= _ANNOTATE_UP_TO else max(2, int(200 / c))
    ax.set_xticks(ticks, [str(n) for n in names], rotation=90, fontsize=size)
    ax.set_yticks(ticks, [str(n) for n in names], fontsize=size)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Confusion matrix")
    if c <= _ANNOTATE_UP_TO:
        for i in range(c):
            for j in range(c):
                colour = "white" if share[i, j] > 0.5 else "black"
                ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=8, color=colour)
    return _png(fig)


def reliability_png(calibration: dict[str, Any]) -> bytes:
    """Accuracy against confidence per bin, before and after temperature scaling, with the diagonal."""
    fig = _figure(5.5, 5.0)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect calibration")
    for key, label, style in (
        ("before", "raw (T = 1)", {"marker": "o", "color": "tab:orange"}),
        ("after", f"calibrated (T = {calibration['temperature']:.3g})", {"marker": "s", "color": "tab:blue"}),
    ):
        bins = calibration[key]["reliability"]
        conf = np.asarray(bins["confidence"], dtype=np.float64)
        acc = np.asarray(bins["accuracy"], dtype=np.float64)
        filled = np.asarray(bins["count"]) > 0
        ece = calibration[key]["ece"]
        ax.plot(conf[filled], acc[filled], label=f"{label}, ECE {ece:.3f}", **style)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (mean of the bin)")
    ax.set_ylabel("observed frequency" if calibration.get("unit") == "label" else "accuracy")
    ax.set_title("Reliability diagram")
    ax.legend(loc="upper left", fontsize=8)
    return _png(fig)


def risk_coverage_png(selective: dict[str, Any]) -> bytes:
    """Error rate of the answered items against the share answered, most confident first."""
    fig = _figure(5.5, 4.5)
    ax = fig.add_subplot()
    curve = selective["curve"]
    ax.step(curve["coverage"], curve["risk"], where="post", color="tab:blue")
    ax.set_xlim(0, 1)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("coverage (share of items answered)")
    ax.set_ylabel("risk (error rate of answered items)")
    ax.set_title(f"Risk–coverage (AURC {selective['aurc']:.4f})")
    ax.grid(alpha=0.3)
    return _png(fig)


def training_curves_png(training: dict[str, Any]) -> bytes:
    """Training loss per logged step, and the dev scores at each evaluation."""
    fig = _figure(10.0, 4.0)
    loss_ax, eval_ax = fig.subplots(1, 2)
    loss_ax.plot(training["steps"], training["train_loss"], color="tab:blue")
    loss_ax.set_xlabel("optimizer step")
    loss_ax.set_ylabel("training loss")
    loss_ax.set_title("Training loss")
    loss_ax.grid(alpha=0.3)
    evals = training["eval"]
    for name, values in evals["metrics"].items():
        y = [np.nan if v is None else v for v in values]
        eval_ax.plot(evals["steps"], y, marker="o", label=name)
    if training.get("best_step") is not None:
        eval_ax.axvline(training["best_step"], color="grey", linestyle=":", label="best checkpoint")
    eval_ax.set_xlabel("optimizer step")
    eval_ax.set_title("Dev metrics")
    eval_ax.grid(alpha=0.3)
    if evals["metrics"]:
        eval_ax.legend(fontsize=8)
    return _png(fig)


def _planned(report: dict[str, Any]) -> dict[str, Callable[[], bytes]]:
    """File name → drawing call, for every figure the report has the data for."""
    out: dict[str, Callable[[], bytes]] = {}
    metrics = report.get("metrics") or {}
    if "confusion_matrix" in metrics:
        matrix, names = metrics["confusion_matrix"], report["label_names"]
        out[PLOT_FILES["confusion_matrix"]] = lambda: confusion_matrix_png(matrix, names)
    if report.get("calibration"):
        out[PLOT_FILES["reliability"]] = lambda: reliability_png(report["calibration"])
    if report.get("selective"):
        out[PLOT_FILES["risk_coverage"]] = lambda: risk_coverage_png(report["selective"])
    if report.get("training") and report["training"]["steps"]:
        out[PLOT_FILES["training"]] = lambda: training_curves_png(report["training"])
    return out


def plot_names(report: dict[str, Any]) -> list[str]:
    """The file names `render_plots` will produce for ``report``, sorted, without drawing anything."""
    return sorted(_planned(report))


def render_plots(report: dict[str, Any]) -> dict[str, bytes]:
    """``{file name: PNG bytes}`` for every figure the report has the data for.

    matplotlib's own warnings (a layout it could not fit, say) concern the drawing, not the
    model: they stay out of the user's terminal."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module="matplotlib")
        return {name: draw() for name, draw in sorted(_planned(report).items())}
