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

from fastbert.config import LOWER_IS_BETTER
from fastbert.evaluation.metrics import confusion_cells, read_confusion

__all__ = [
    "PLOT_FILES",
    "confusion_matrix_png",
    "dev_curves_shown",
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
#: Above this many classes the confusion figure is a bar chart of the most frequent confusions:
#: the full matrix of BANKING77's 77 classes was 2,500 px wide with 3 pt labels. 25 ticks fit a
#: 13-inch side at 8 pt. The full matrix stays in report.json.
MATRIX_UP_TO = 25
#: Confusions (off-diagonal cells) in the bar chart drawn instead of a large matrix.
TOP_CONFUSIONS = 20
#: Characters of a class name kept in the bar chart's labels ("true → predicted").
_NAME_CHARS = 32
#: Dev metrics drawn in the training curves, the selection metric first: the eight of a
#: classifier on one axis hid each other. report.json keeps every one.
CURVES_SHOWN = 4
#: The metrics worth a line beside the selection metric, in this order.
MAIN_METRICS = (
    "accuracy",
    "macro_f1",
    "f1",
    "weighted_f1",
    "precision",
    "recall",
    "pearson",
    "spearman",
    "samples_f1",
    "subset_accuracy",
    "loss",
    "mse",
    "mae",
)


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


def confusion_matrix_png(matrix: Any, names: Sequence[str]) -> bytes:
    """The confusion matrix (either stored form, `fastbert.evaluation.metrics.stored_confusion`) as
    a figure: the matrix up to `MATRIX_UP_TO` classes, else the most frequent confusions."""
    c = confusion_cells(matrix)[0]
    if c <= MATRIX_UP_TO:
        return _matrix_png(read_confusion(matrix), names)
    return _top_confusions_png(matrix, names)


def _matrix_png(cm: np.ndarray, names: Sequence[str]) -> bytes:
    """Rows = true class, columns = predicted; colour = share of the row (recall), text = count."""
    cm = cm.astype(np.float64)
    c = cm.shape[0]
    rows = cm.sum(1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    side = max(4.0, 0.45 * c + 2.0)  # at most 13.25 inches: MATRIX_UP_TO classes
    fig = _figure(side + 1.0, side)
    ax = fig.add_subplot()
    im = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(im, ax=ax, label="share of the true class")
    ticks = np.arange(c)
    ax.set_xticks(ticks, [str(n) for n in names], rotation=90, fontsize=8)
    ax.set_yticks(ticks, [str(n) for n in names], fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Confusion matrix")
    if c <= _ANNOTATE_UP_TO:
        for i in range(c):
            for j in range(c):
                colour = "white" if share[i, j] > 0.5 else "black"
                ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=8, color=colour)
    return _png(fig)


def _short(name: Any) -> str:
    text = str(name)
    return text if len(text) <= _NAME_CHARS else text[: _NAME_CHARS - 1] + "…"


def _top_confusions_png(matrix: Any, names: Sequence[str]) -> bytes:
    """The `TOP_CONFUSIONS` most frequent confusions as horizontal bars, "true → predicted",
    each with its count and its share of the true class's examples."""
    c, rows, cols, counts = confusion_cells(matrix)
    support = np.bincount(rows, weights=counts, minlength=c)
    off = rows != cols
    rows, cols, counts = rows[off], cols[off], counts[off]
    order = np.lexsort((cols, rows, -counts))[:TOP_CONFUSIONS]  # most first; ties in matrix order
    n = len(order)
    fig = _figure(10.0, 1.6 + 0.3 * max(n, 3))  # at most 1000 x 760 px
    ax = fig.add_subplot()
    if n:
        y = np.arange(n)
        ax.barh(y, counts[order], color="tab:blue")
        labels = [f"{_short(names[rows[k]])} → {_short(names[cols[k]])}" for k in order]
        ax.set_yticks(y, labels, fontsize=8)
        ax.invert_yaxis()
        for i, k in enumerate(order):
            share = counts[k] / support[rows[k]]
            ax.text(counts[k], i, f" {counts[k]} ({share:.0%})", va="center", fontsize=8)
        ax.margins(x=0.15)
        ax.xaxis.get_major_locator().set_params(integer=True)  # counts of examples
    else:
        ax.set_yticks([])
        ax.text(0.5, 0.5, "no confusions: every example was predicted right", ha="center", va="center")
    # On the figure, not the axes: long labels push the axes right, and text centred on them is cut.
    fig.supxlabel(
        "dev examples of the true class predicted as the other (share of the true class)", fontsize=9
    )
    fig.suptitle(
        f"The {n} most frequent of {off.sum()} confusions between {c} classes "
        "(the full matrix is in report.json)",
        fontsize=10,
    )
    ax.grid(axis="x", alpha=0.3)
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


def dev_curves_shown(names: Sequence[str], selection: str | None) -> list[str]:
    """The dev metrics the training curves draw: the selection metric, then the `MAIN_METRICS`
    on its side of `fastbert.config.LOWER_IS_BETTER` (an error and a score share no scale),
    `CURVES_SHOWN` at most."""
    first = [selection] if selection is not None and selection in names else []
    errors = selection in LOWER_IS_BETTER if first else None
    main = [
        m
        for m in MAIN_METRICS
        if m in names and m not in first and (errors is None or (m in LOWER_IS_BETTER) == errors)
    ]
    shown = [*first, *main][:CURVES_SHOWN]
    return shown or list(names[:CURVES_SHOWN])


def training_curves_png(training: dict[str, Any]) -> bytes:
    """Training loss per logged step, and the main dev metrics at each evaluation (`dev_curves_shown`)."""
    fig = _figure(11.0, 4.0)
    loss_ax, eval_ax = fig.subplots(1, 2)
    loss_ax.plot(training["steps"], training["train_loss"], color="tab:blue")
    loss_ax.set_xlabel("optimizer step")
    loss_ax.set_ylabel("training loss")
    loss_ax.set_title("Training loss")
    loss_ax.grid(alpha=0.3)
    evals = training["eval"]
    names = list(evals["metrics"])
    selection = training.get("selection_metric")
    shown = dev_curves_shown(names, selection)
    for name in shown:
        y = [np.nan if v is None else v for v in evals["metrics"][name]]
        chosen = name == selection
        label = f"{name} (selects the checkpoint)" if chosen else name
        eval_ax.plot(evals["steps"], y, marker="o", linewidth=2.5 if chosen else 1.2, label=label)
    if training.get("best_step") is not None:
        eval_ax.axvline(training["best_step"], color="grey", linestyle=":", label="best checkpoint")
    eval_ax.set_xlabel("optimizer step")
    if len(shown) == 1:
        eval_ax.set_ylabel(f"dev {shown[0]}")
    else:
        eval_ax.set_ylabel("dev error" if shown and shown[0] in LOWER_IS_BETTER else "dev score")
    left = len(names) - len(shown)
    eval_ax.set_title(f"Dev metrics ({left} more in report.json)" if left else "Dev metrics")
    eval_ax.grid(alpha=0.3)
    if eval_ax.get_legend_handles_labels()[0]:
        # Beside the axes, not over the curves.
        eval_ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
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
