"""fastbert with many classes: small saved files, the confusion matrix stored once, a short
printed table and readable figures.

A probe with 5,000 classes got a 981 MB model folder (the dense confusion matrix, indented, in
every evaluation of the saved history and again in the report) and 5,013 printed lines; the
77-class confusion figure was 2,500 px wide with 3 pt labels. Folders written before the sparse
form (the dense matrix in fastbert.json and report.json) must still load and report."""

from __future__ import annotations

import contextlib
import io
import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fastbert.cli import main as cli_main
from fastbert.cli.formatting import TABLE_ENDS, format_metrics
from fastbert.evaluation import metrics, plots, report
from fastbert.evaluation.predictions import EvalPredictions

PNG = b"\x89PNG\r\n\x1a\n"
CLASSES = 300


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height in pixels, from the PNG's IHDR chunk (the first, right after the signature)."""
    assert data.startswith(PNG) and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def many_class_predictions(c: int, n: int, seed: int = 0) -> EvalPredictions:
    """``n`` dev examples over ``c`` classes, right about 70% of the time, else a near neighbour."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    z = rng.normal(size=(n, c))
    wrong = rng.random(n) < 0.3
    z[np.arange(n), np.where(wrong, (y + rng.integers(1, 4, n)) % c, y)] += 6
    names = [f"intent_{k:04d}" for k in range(c)]
    return EvalPredictions("classification", names, z, y, rng.integers(1, 60, n))


def run_cli(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = cli_main(args)
    return status, out.getvalue(), err.getvalue()


# ---------------------------------------------------------------- the stored matrix
def test_the_matrix_is_dense_up_to_50_classes_and_sparse_above() -> None:
    rng = np.random.default_rng(1)
    for c in (3, metrics.DENSE_UP_TO, metrics.DENSE_UP_TO + 1, 400):
        y, p = rng.integers(0, c, 500), rng.integers(0, c, 500)
        dense = metrics.classification_metrics(y, p, [str(k) for k in range(c)])["confusion_matrix"]
        stored = metrics.stored_confusion(dense)
        assert isinstance(stored, list) == (c <= metrics.DENSE_UP_TO)
        if isinstance(stored, dict):
            assert stored["shape"] == [c, c] and len(stored["counts"]) == np.count_nonzero(dense)
        assert metrics.read_confusion(json.loads(json.dumps(stored))).tolist() == dense
        assert metrics.stored_confusion(stored) == stored  # stored twice, still the same


def test_a_broken_sparse_matrix_is_refused() -> None:
    with pytest.raises(ValueError, match="outside its shape"):
        metrics.read_confusion({"shape": [2, 2], "rows": [0, 2], "cols": [0, 1], "counts": [1, 1]})
    with pytest.raises(ValueError, match="one length"):
        metrics.read_confusion({"shape": [2, 2], "rows": [0], "cols": [0, 1], "counts": [1, 1]})
    with pytest.raises(ValueError, match="square"):
        metrics.read_confusion([[1, 2, 3], [4, 5, 6]])


def test_report_json_keeps_lists_of_numbers_on_one_line() -> None:
    value = {"a": [1, 2.5, None], "m": [[1, 2], [3, 4]], "e": [], "o": {}, "t": "é", "d": [{"x": 1}]}
    text = report.json_text(value)
    assert json.loads(text) == value
    assert '"a": [1, 2.5, null],' in text and "    [1, 2]," in text and '"t": "é"' in text


def test_a_report_of_300_classes_is_small_and_holds_the_matrix_once(tmp_path: Path) -> None:
    preds = many_class_predictions(CLASSES, 3000)
    rep = report.build_report(preds, task="classification", label_names=preds.names)
    report.write_report(tmp_path, rep)
    text = (tmp_path / "report.json").read_text()
    # Dense and indented, the matrix alone was 90,000 lines, about 1 MB.
    assert len(text.encode()) < 400_000, len(text.encode())
    assert text.count('"confusion_matrix"') == 1
    want = preds.metrics()["confusion_matrix"]
    assert metrics.read_confusion(json.loads(text)["metrics"]["confusion_matrix"]).tolist() == want


# ---------------------------------------------------------------- the printed table
def per_class(c: int) -> dict[str, Any]:
    rng = np.random.default_rng(2)
    f1 = rng.permutation(c) / (c - 1)  # distinct, from 0 to 1
    return {
        f"intent_{k:03d}": {"precision": f1[k], "recall": f1[k], "f1": f1[k], "support": 5} for k in range(c)
    }


def test_the_printed_table_of_100_classes_is_short_and_says_what_was_left_out() -> None:
    table = per_class(100)
    text = format_metrics({"accuracy": 0.5, "per_class": table}, "the full table is in model/report.json")
    lines = text.splitlines()
    assert len(lines) < 2 * TABLE_ENDS + 6, text
    by_f1 = sorted(table, key=lambda n: table[n]["f1"])
    shown = [line.split()[0] for line in lines if line.strip().startswith("intent_")]
    assert shown == by_f1[:TABLE_ENDS] + by_f1[-TABLE_ENDS:]  # the lowest F1 first, the highest last
    gap = [line for line in lines if "left out" in line]
    assert gap == [
        f"  ... 80 of the 100 classes left out (f1 {table[by_f1[TABLE_ENDS]]['f1']:.4f} to "
        f"{table[by_f1[-TABLE_ENDS - 1]]['f1']:.4f}): above, the {TABLE_ENDS} of lowest f1; below, "
        f"the {TABLE_ENDS} of highest; the full table is in model/report.json"
    ]
    assert "{" not in text and "'" not in text  # words, not Python reprs
    assert lines[-1] == "  accuracy  0.5000"


def test_a_table_of_30_rows_is_printed_whole_in_its_order() -> None:
    table = per_class(30)
    text = format_metrics({"per_class": table})
    assert [line.split()[0] for line in text.splitlines()[1:]] == list(table)
    assert "left out" not in text


# ---------------------------------------------------------------- the figures
def drawn_figures(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every matplotlib figure the plots module turns into PNG bytes from now on, kept for a look."""
    figures: list[Any] = []
    real = plots._png

    def keep(fig: Any) -> bytes:
        figures.append(fig)
        return real(fig)

    monkeypatch.setattr(plots, "_png", keep)
    return figures


def font_sizes(fig: Any) -> list[float]:
    ax = fig.axes[0]
    texts = [*ax.get_xticklabels(), *ax.get_yticklabels(), *ax.texts]
    return [t.get_fontsize() for t in texts if t.get_text()]


def test_the_confusion_figure_of_77_classes_is_bounded_and_readable(monkeypatch: pytest.MonkeyPatch) -> None:
    figures = drawn_figures(monkeypatch)
    preds = many_class_predictions(77, 770)
    cm = preds.metrics()["confusion_matrix"]
    names = preds.names
    for stored in (metrics.stored_confusion(cm), cm):  # sparse, and dense as older reports hold it
        width, height = png_size(plots.confusion_matrix_png(stored, names))
        assert width <= 1200 and height <= 1000, (width, height)  # was 2,500 x 2,400
    fig = figures[-1]
    assert min(font_sizes(fig)) >= 8
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert len(labels) == plots.TOP_CONFUSIONS and all(" → " in label for label in labels)
    # The first bar is the most frequent confusion.
    off = np.array(cm) - np.diag(np.diag(cm))
    i, j = np.unravel_index(off.argmax(), off.shape)
    assert labels[0] == f"{names[i]} → {names[j]}"


def test_a_small_confusion_matrix_stays_a_matrix(monkeypatch: pytest.MonkeyPatch) -> None:
    figures = drawn_figures(monkeypatch)
    preds = many_class_predictions(plots.MATRIX_UP_TO, 500)
    width, height = png_size(plots.confusion_matrix_png(preds.metrics()["confusion_matrix"], preds.names))
    assert width <= 1500 and height <= 1400
    assert len(figures[0].axes[0].get_xticklabels()) == plots.MATRIX_UP_TO
    assert min(font_sizes(figures[0])) >= 8


def test_training_curves_draw_the_main_dev_metrics_with_a_y_label(monkeypatch: pytest.MonkeyPatch) -> None:
    figures = drawn_figures(monkeypatch)
    names = [
        "accuracy", "macro_f1", "macro_precision", "macro_recall", "micro_f1",
        "weighted_f1", "weighted_precision", "weighted_recall",
    ]  # fmt: skip
    steps = [2, 4, 6]
    training = {
        "steps": [1, 2, 3, 4, 5, 6],
        "train_loss": [1.0, 0.8, 0.7, 0.6, 0.5, 0.45],
        "eval": {"steps": steps, "metrics": {n: [0.5, 0.6 + k / 100, None] for k, n in enumerate(names)}},
        "selection_metric": "macro_f1",
        "best_step": 4,
    }
    png_size(plots.training_curves_png(training))
    eval_ax = figures[0].axes[1]
    assert eval_ax.get_ylabel() == "dev score"
    legend = [t.get_text() for t in eval_ax.get_legend().get_texts()]
    assert legend[0] == "macro_f1 (selects the checkpoint)"
    assert len(legend) <= plots.CURVES_SHOWN + 1  # and the best checkpoint's line
    assert "5 more in report.json" in eval_ax.get_title()
    # The legend sits beside the curves, not over them.
    figures[0].canvas.draw()
    renderer = figures[0].canvas.get_renderer()
    assert eval_ax.get_legend().get_window_extent(renderer).x0 >= eval_ax.get_window_extent(renderer).x1


def test_errors_and_scores_are_not_drawn_on_one_axis() -> None:
    assert plots.dev_curves_shown(["pearson", "spearman", "mse", "mae"], "mse") == ["mse", "mae"]
    assert plots.dev_curves_shown(["pearson", "spearman", "mse", "mae"], "pearson") == ["pearson", "spearman"]
    assert plots.dev_curves_shown(["loss", "perplexity"], "loss") == ["loss"]
    assert plots.dev_curves_shown(["x", "y"], None) == ["x", "y"]


# ---------------------------------------------------------------- a saved model with 300 classes
def rows(n_per_class: int, start: int) -> list[dict[str, str]]:
    words = ("alpha", "beta", "gamma", "delta", "omega", "kappa", "sigma", "theta")
    return [
        {"text": f"item {words[(k + i + start) % 8]} number {k}", "label": f"intent_{k:04d}"}
        for k in range(CLASSES)
        for i in range(n_per_class)
    ]


@pytest.fixture(scope="module")
def saved(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path, Path]:
    import fastbert

    folder = tmp_path_factory.mktemp("many")
    dev = folder / "dev.jsonl"
    dev.write_text("".join(json.dumps(r) + "\n" for r in rows(1, 3)))
    ft = fastbert.finetune(
        rows(2, 0), str(dev), task="classification", model=tiny_model, epochs=2, batch_size=64,
        max_length=16, eval_steps=4, lr=1e-3, progress=False, seed=0,
    )  # fmt: skip
    return ft, ft.save(folder / "model"), dev


def test_a_saved_model_of_300_classes_is_small_and_holds_the_matrix_once(saved: tuple) -> None:
    ft, out, _ = saved
    assert len(ft.history.evals) >= 3
    for e in ft.history.evals:  # in memory too: one number per metric
        assert all(v is None or isinstance(v, int | float) for v in e.values()), sorted(e)
    meta_text, report_text = (out / "fastbert.json").read_text(), (out / "report.json").read_text()
    # Before: 8.0 MB and 1.05 MB, and 7 copies of the matrix (5 evaluations, the metrics, the report).
    assert len(meta_text.encode()) < 150_000 and len(report_text.encode()) < 150_000
    assert (meta_text + report_text).count('"confusion_matrix"') == 1
    meta, rep = json.loads(meta_text), json.loads(report_text)
    assert "per_class" not in meta["history"]["evals"][0] and "per_class" in meta["metrics"]
    assert (
        metrics.read_confusion(rep["metrics"]["confusion_matrix"]).tolist() == ft.metrics["confusion_matrix"]
    )
    assert png_size((out / "confusion_matrix.png").read_bytes())[0] <= 1200


def test_fastbert_evaluate_prints_a_short_table_of_300_classes(saved: tuple, tmp_path: Path) -> None:
    _, out, dev = saved
    status, stdout, _ = run_cli(["evaluate", str(out), "--data", str(dev)])
    assert status == 0
    assert len(stdout.splitlines()) < 2 * TABLE_ENDS + 20, stdout  # was 311 lines
    assert f"{CLASSES - 2 * TABLE_ENDS} of the {CLASSES} classes left out" in stdout
    assert "--output FILE.json writes the full table" in stdout
    written = tmp_path / "metrics.json"
    status, stdout, _ = run_cli(["evaluate", str(out), "--data", str(dev), "--output", str(written)])
    assert status == 0 and f"the full table is in {written}" in stdout
    got = json.loads(written.read_text())["metrics"]
    assert len(got["per_class"]) == CLASSES
    assert metrics.read_confusion(got["confusion_matrix"]).shape == (CLASSES, CLASSES)


def old_format(out: Path, dense: list[list[int]]) -> None:
    """Rewrite ``out`` as fastbert wrote it before the sparse form: the dense matrix, indented, in
    fastbert.json's metrics, in every evaluation of its history, and in report.json."""
    meta = json.loads((out / "fastbert.json").read_text())
    meta["metrics"]["confusion_matrix"] = dense
    for e in meta["history"]["evals"]:
        e.update(confusion_matrix=dense, per_class=meta["metrics"]["per_class"])
    (out / "fastbert.json").write_text(json.dumps(meta, indent=2) + "\n")
    rep = json.loads((out / "report.json").read_text())
    rep["metrics"]["confusion_matrix"] = dense
    (out / "report.json").write_text(json.dumps(rep, indent=2) + "\n")


def test_a_folder_of_the_old_format_loads_and_reports(saved: tuple, tmp_path: Path) -> None:
    import shutil

    import fastbert

    ft, out, _ = saved
    old = tmp_path / "old"
    shutil.copytree(out, old)
    old_format(old, ft.metrics["confusion_matrix"])
    assert (old / "fastbert.json").stat().st_size > 5_000_000  # the old size, about 8 MB

    status, _, stderr = run_cli(["report", str(old)])
    assert status == 0, stderr
    assert (old / "report.json").read_text() == (out / "report.json").read_text()  # rebuilt as new
    loaded = fastbert.load(old)
    assert loaded.metrics["confusion_matrix"] == ft.metrics["confusion_matrix"]
    assert "confusion_matrix" in loaded.history.evals[0]  # read as it was written...
    again = loaded.save(tmp_path / "again")  # ...and not written again
    assert (again / "fastbert.json").stat().st_size < 150_000

    # Without its predictions the report is built from the dense matrix in fastbert.json.
    (old / "eval_predictions.npz").unlink()
    status, _, stderr = run_cli(["report", str(old)])
    assert status == 0 and "no eval_predictions.npz" in stderr
    rep = json.loads((old / "report.json").read_text())
    assert (
        metrics.read_confusion(rep["metrics"]["confusion_matrix"]).tolist() == ft.metrics["confusion_matrix"]
    )
    assert "confusion_matrix.png" in rep["plots"]
    assert png_size((old / "confusion_matrix.png").read_bytes())[0] <= 1200
