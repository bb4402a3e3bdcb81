"""The evaluation report and its parts: selective prediction, decision thresholds, bootstrap
intervals, slices, figures, and the saved folder that ``fastbert report DIR`` rebuilds.

Fast paths are checked against slow, readable references (and `fastbert.metrics`, itself checked
against scikit-learn and seqeval in test_metrics.py) on generated inputs; one tiny fine-tune
checks the whole path from `finetune` to the files on disk."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastbert.conversions import json_ready
from fastbert.evaluation import bootstrap, metrics, report, selective, slices, thresholds
from fastbert.evaluation.predictions import EvalPredictions

SETTINGS = settings(max_examples=150, deadline=None)
PNG = b"\x89PNG\r\n\x1a\n"

# Confidences on a coarse grid, so that ties (which the curve must treat as one cut) are common.
scored_items = st.lists(
    st.tuples(st.integers(0, 12).map(lambda k: k / 12), st.booleans()), min_size=1, max_size=40
)


# ---------------------------------------------------------------- selective prediction
def reference_curve(conf: list[float], correct: list[bool]) -> list[tuple[float, float, float]]:
    """(threshold, coverage, risk) for each distinct confidence, highest first: answer when conf >= t."""
    out = []
    for t in sorted(set(conf), reverse=True):
        answered = [ok for c, ok in zip(conf, correct, strict=True) if c >= t]
        out.append((t, len(answered) / len(conf), answered.count(False) / len(answered)))
    return out


@SETTINGS
@given(scored_items)
def test_risk_coverage_and_aurc_match_the_reference(items):
    conf, correct = [c for c, _ in items], [ok for _, ok in items]
    curve = selective.risk_coverage(conf, correct)
    want = reference_curve(conf, correct)
    assert np.allclose(curve["threshold"], [w[0] for w in want])
    assert np.allclose(curve["coverage"], [w[1] for w in want])
    assert np.allclose(curve["risk"], [w[2] for w in want])
    area = sum(r * (c - prev) for (_, c, r), prev in zip(want, [0.0] + [w[1] for w in want], strict=False))
    assert selective.aurc(conf, correct)["aurc"] == pytest.approx(area, abs=1e-12)


def test_aurc_without_ties_is_the_mean_risk_and_oracle_has_no_excess():
    rng = np.random.default_rng(0)
    conf = rng.random(200)
    correct = rng.random(200) < conf  # confident items are right more often
    order = np.argsort(-conf)
    risks = np.cumsum(~correct[order]) / np.arange(1, 201)
    got = selective.aurc(conf, correct)
    assert got["aurc"] == pytest.approx(risks.mean(), abs=1e-12)
    oracle = selective.aurc(correct.astype(float) + rng.random(200) * 0.1, correct)
    assert oracle["e_aurc"] == pytest.approx(0.0, abs=1e-12) and got["e_aurc"] > 0


@SETTINGS
@given(scored_items, st.sampled_from([0.1, 0.5, 0.8, 0.9, 1.0]))
def test_coverage_target_is_met_by_the_highest_such_threshold(items, target):
    conf, correct = np.array([c for c, _ in items]), np.array([ok for _, ok in items])
    cut = selective.abstain_threshold(conf, correct, {"coverage": target})
    answered = conf >= cut
    assert answered.mean() >= target - 1e-12
    # No higher cut meets it: the next distinct confidence up answers too few.
    above = conf[answered]
    if above.size and above.min() < conf.max():
        assert (conf > above.min()).mean() < target - 1e-12


@SETTINGS
@given(scored_items, st.sampled_from([0.5, 0.8, 0.95, 1.0]))
def test_accuracy_target_answers_the_most_items_that_meet_it(items, target):
    conf, correct = np.array([c for c, _ in items]), np.array([ok for _, ok in items])
    cut = selective.abstain_threshold(conf, correct, {"accuracy": target})
    feasible = [(cov, 1 - risk) for _, cov, risk in reference_curve(list(conf), list(correct))]
    feasible = [cov for cov, acc in feasible if acc >= target - 1e-12]
    answered = conf >= cut
    if not feasible:
        assert math.isinf(cut) and not answered.any()
    else:
        assert correct[answered].mean() >= target - 1e-12
        assert answered.mean() == pytest.approx(max(feasible))


@pytest.mark.parametrize(
    "abstain", [{"coverage": 0}, {"coverage": 1.5}, {"recall": 0.9}, {"coverage": 0.9, "accuracy": 0.9}, 0.9]
)
def test_bad_abstain_targets_are_refused(abstain):
    with pytest.raises(ValueError, match="abstain"):
        selective.parse_abstain(abstain)


# ---------------------------------------------------------------- decision thresholds
@SETTINGS
@given(
    st.lists(st.tuples(st.integers(0, 20).map(lambda k: k / 20), st.integers(0, 1)), min_size=2, max_size=40),
    st.sampled_from(thresholds.BINARY_METRICS),
)
def test_binary_threshold_is_the_best_cut(items, metric):
    p1 = np.array([p for p, _ in items])
    y = np.array([t for _, t in items])
    cut = thresholds.tune_binary_threshold(p1, y, metric)
    if np.unique(y).size < 2:
        assert cut == 0.5
        return

    def score(t: float) -> float:
        return metrics.classification_metrics(y, (p1 >= t).astype(int), ["0", "1"])[metric]

    # Every distinct cut, brute force through the metric function itself.
    best = max(score(t) for t in [*np.unique(p1), np.inf])
    assert score(cut) == pytest.approx(best, abs=1e-12)


def test_binary_threshold_prefers_the_argmax_among_equals_and_decide_applies_it():
    # Perfectly separated at any cut in (0.3, 0.7]: the one nearest 0.5 is kept.
    p1 = np.array([0.1, 0.3, 0.7, 0.9])
    y = np.array([0, 0, 1, 1])
    assert thresholds.tune_binary_threshold(p1, y) == pytest.approx(0.5)
    # An imbalanced case where the argmax is not best: the positives sit at 0.3-0.4.
    p1 = np.array([0.05, 0.1, 0.2, 0.3, 0.35, 0.4])
    y = np.array([0, 0, 0, 1, 1, 1])
    cut = thresholds.tune_binary_threshold(p1, y)
    assert 0.2 < cut <= 0.3
    probs = np.stack([1 - p1, p1], 1)
    assert thresholds.decide("classification", probs, np.array([cut])).tolist() == y.tolist()
    assert thresholds.decide("classification", probs, None).tolist() == [0] * 6
    got = thresholds.decide("multilabel", probs, np.array([0.85, 0.3]))  # one cut per column
    assert got.tolist() == [[True, False], [True, False], [False, False]] + [[False, True]] * 3


# ---------------------------------------------------------------- bootstrap
def resampled(w: np.ndarray) -> np.ndarray:
    """The item indices one row of bootstrap counts stands for."""
    return np.repeat(np.arange(w.size), w.astype(int))


@st.composite
def labelled_classes(draw):
    c = draw(st.integers(2, 5))
    n = draw(st.integers(2, 30))
    t = np.array(draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)))
    p = np.array(draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)))
    return c, t, p, draw(st.integers(0, 2**32 - 1))


@SETTINGS
@given(labelled_classes())
def test_classification_bootstrap_equals_the_metric_on_each_resample(case):
    c, t, p, seed = case
    names = [str(k) for k in range(c)]
    stat = bootstrap.classification_statistic(t, p, c)
    w = np.vstack([np.ones(t.size), bootstrap.resample_weights(t.size, 3, np.random.default_rng(seed))])
    values = stat(w)
    for row in range(w.shape[0]):
        idx = resampled(w[row])
        want = metrics.classification_metrics(t[idx], p[idx], names)
        for k in ("accuracy", "macro_f1", "weighted_f1"):
            assert values[k][row] == pytest.approx(want[k], abs=1e-12), k


@SETTINGS
@given(st.integers(2, 25), st.integers(2, 5), st.integers(0, 2**32 - 1))
def test_multilabel_bootstrap_equals_the_metric_on_each_resample(n, c, seed):
    rng = np.random.default_rng(seed)
    t, p = rng.random((n, c)) < 0.4, rng.random((n, c)) < 0.4
    stat = bootstrap.multilabel_statistic(t, p)
    w = np.vstack([np.ones(n), bootstrap.resample_weights(n, 3, rng)])
    values = stat(w)
    for row in range(w.shape[0]):
        idx = resampled(w[row])
        want = metrics.multilabel_metrics(t[idx], p[idx], [str(k) for k in range(c)])
        for k in ("micro_f1", "macro_f1", "subset_accuracy"):
            assert values[k][row] == pytest.approx(want[k], abs=1e-12), k


@SETTINGS
@given(st.integers(2, 30), st.booleans(), st.integers(0, 2**32 - 1))
def test_regression_bootstrap_equals_the_metric_on_each_resample(n, coarse, seed):
    rng = np.random.default_rng(seed)
    t = rng.integers(0, 4, n) / 2 if coarse else rng.normal(size=n)  # coarse: many ties, as STS-B
    p = t + rng.normal(size=n) * 0.5
    if coarse:
        p = np.round(p * 2) / 2
    stat = bootstrap.regression_statistic(t, p)
    w = np.vstack([np.ones(n), bootstrap.resample_weights(n, 3, rng)])
    values = stat(w)
    for row in range(w.shape[0]):
        idx = resampled(w[row])
        want = metrics.regression_metrics(t[idx], p[idx])
        for k in ("mse", "mae", "pearson", "spearman"):
            got = values[k][row]
            assert (math.isnan(got) and math.isnan(want[k])) or got == pytest.approx(want[k], abs=1e-9), k


def test_entity_bootstrap_equals_the_metric_on_resampled_sentences():
    rng = np.random.default_rng(0)
    tags = ["O", "O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    true = [list(rng.choice(tags, rng.integers(1, 8))) for _ in range(30)]
    pred = [[t if rng.random() < 0.7 else str(rng.choice(tags)) for t in s] for s in true]
    stat = bootstrap.entity_statistic(*report._entity_counts(true, pred))
    w = np.vstack([np.ones(30), bootstrap.resample_weights(30, 3, rng)])
    values = stat(w)
    for row in range(w.shape[0]):
        idx = resampled(w[row])
        want = metrics.entity_metrics([true[i] for i in idx], [pred[i] for i in idx])
        for k in ("precision", "recall", "f1"):
            assert values[k][row] == pytest.approx(want[k], abs=1e-12), k


def test_intervals_contain_the_estimate_shrink_with_n_and_are_seeded():
    def interval(n: int, seed: int = 0) -> dict[str, float]:
        rng = np.random.default_rng(n)
        t = rng.integers(0, 3, n)
        p = np.where(rng.random(n) < 0.7, t, rng.integers(0, 3, n))  # about 80% accurate
        return bootstrap.bootstrap_intervals(
            bootstrap.classification_statistic(t, p, 3), n, resamples=500, seed=seed
        )["accuracy"]

    small, large = interval(100), interval(3000)
    for ci in (small, large):
        assert ci["low"] <= ci["estimate"] <= ci["high"]
    # The interval narrows like 1/sqrt(n): 30x the data, about 5.5x narrower.
    assert (large["high"] - large["low"]) < (small["high"] - small["low"]) / 3
    assert interval(100) == small and interval(100, seed=1) != small


def test_interval_is_the_percentile_of_the_resampled_metric():
    rng = np.random.default_rng(4)
    t, p = rng.integers(0, 2, 300), rng.integers(0, 2, 300)
    stat = bootstrap.classification_statistic(t, p, 2)
    got = bootstrap.bootstrap_intervals(stat, 300, resamples=400, seed=3, level=0.9)["macro_f1"]
    values = stat(bootstrap.resample_weights(300, 400, np.random.default_rng(3)))["macro_f1"]
    assert [got["low"], got["high"]] == pytest.approx(np.percentile(values, [5, 95]).tolist(), abs=1e-15)


# ---------------------------------------------------------------- slices
def test_length_buckets_double_in_width():
    got = slices.length_buckets([1, 16, 17, 32, 33, 512, 513, 4000])
    assert got.tolist() == ["1-16", "1-16", "17-32", "17-32", "33-64", "257-512", "513+", "513+"]


def test_slice_metrics_are_the_metrics_of_each_subset():
    preds = synthetic("classification", 60, seed=2)
    groups = np.array(["a", "b", "c"])[np.arange(60) % 3]
    got = slices.slice_metrics(preds, groups)
    assert list(got) == ["a", "b", "c"]
    for g, row in got.items():
        idx = np.flatnonzero(groups == g)
        want = metrics.classification_metrics(preds.labels[idx], preds.outputs[idx].argmax(1), preds.names)
        assert row["examples"] == idx.size and row["accuracy"] == want["accuracy"]
        assert row["macro_f1"] == want["macro_f1"] and "per_class" not in row


def test_slice_column_is_read_from_the_data():
    rows = [{"text": f"t{i}", "label": "x", "source": ["web", None, 3][i % 3]} for i in range(6)]
    got = slices.column_values(rows, "classification", "Source", 6)  # names match as data columns do
    assert got.tolist() == ["web", slices.MISSING, "3"] * 2
    with pytest.raises(ValueError, match="5 values for 6"):
        slices.column_values(rows, "classification", ["a"] * 5, 6)


# ---------------------------------------------------------------- reports from predictions
def synthetic(task: str, n: int, seed: int = 0) -> EvalPredictions:
    """Model outputs with some signal, for each task, without a model."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, 200, n)
    if task == "regression":
        y = rng.normal(size=n)
        return EvalPredictions(task, None, y + rng.normal(size=n) * 0.5, y.astype(np.float32), lengths)
    if task == "multilabel":
        names = ["a", "b", "c"]
        y = (rng.random((n, 3)) < 0.4).astype(np.float32)
        return EvalPredictions(task, names, 3 * (y - 0.5) + rng.normal(size=(n, 3)), y, lengths)
    if task == "token":
        names = ["B-LOC", "B-PER", "I-LOC", "I-PER", "O"]
        counts = rng.integers(1, 9, n)
        words = int(counts.sum())
        y = rng.choice(5, words, p=[0.1, 0.1, 0.05, 0.05, 0.7])
        z = rng.normal(size=(words, 5)) * 2
        z[np.arange(words), y] += 3
        z[0] = np.nan  # a word truncated away
        return EvalPredictions(task, names, z, y, lengths, np.concatenate(([0], np.cumsum(counts))))
    names = ["neg", "pos", "neutral"][: 2 if task == "pair" else 3]
    y = rng.integers(0, len(names), n)
    z = rng.normal(size=(n, len(names))) * 3  # overconfident
    z[np.arange(n), y] += 2
    return EvalPredictions(task, names, z, y, lengths)


@pytest.mark.parametrize("task", ["classification", "pair", "multilabel", "regression", "token"])
def test_report_for_every_task(task: str, tmp_path: Path):
    preds = synthetic(task, 80)
    temperature = 1.7 if task != "regression" else 1.0
    th = {"pair": np.array([0.4]), "multilabel": np.array([0.3, 0.5, 0.6])}.get(task)
    history = {
        "steps": [1, 2, 3],
        "train_loss": [0.9, 0.5, 0.4],
        "evals": [{"step": 3, "f1": 0.5}],
        "best_step": 3,
    }
    rep = report.build_report(
        preds,
        task=task,
        label_names=preds.label_names,
        temperature=temperature,
        thresholds=th,
        history=history,
    )
    assert json.loads(json.dumps(rep, allow_nan=False)) == rep  # plain JSON, nothing lost
    assert rep["metrics"] == json.loads(json.dumps(json_ready(preds.metrics(temperature, th))))
    for name, ci in rep["intervals"]["metrics"].items():
        assert ci["estimate"] == pytest.approx(rep["metrics"][name], abs=1e-12)
    assert (rep["calibration"] is None) == (task == "regression")
    assert (rep["selective"] is not None) == (task in ("classification", "pair"))
    assert sum(s["examples"] for s in rep["slices"]["length"].values()) == 80
    if task == "token":  # IOB2 tags: both seqeval modes, strict in its own table
        true_tags, pred_tags = preds.tags(temperature)
        strict = metrics.entity_metrics(true_tags, pred_tags, mode="strict")
        assert rep["metrics"]["strict_f1"] == pytest.approx(strict["f1"], abs=1e-12)
        assert "Per entity type, strict IOB2" in report.render_markdown(rep)
    written = report.write_report(tmp_path, rep)
    expected = {"report.json", "report.md", "training_curves.png"}
    expected |= {"confusion_matrix.png"} if task in ("classification", "pair") else set()
    expected |= {"risk_coverage.png"} if task in ("classification", "pair") else set()
    expected |= {"reliability_diagram.png"} if task != "regression" else set()
    assert {p.name for p in written} == expected == {p.name for p in tmp_path.iterdir()}
    for p in written:
        data = p.read_bytes()
        assert data and (data.startswith(PNG) if p.suffix == ".png" else True)
    assert json.loads((tmp_path / "report.json").read_text()) == rep


def test_calibration_section_shows_temperature_scaling_helping():
    preds = synthetic("classification", 2000, seed=5)
    t = report.calibration.fit_temperature(*preds.calibration_inputs()[:2], "softmax")
    cal = report.build_report(preds, task="classification", label_names=preds.names, temperature=t)[
        "calibration"
    ]
    assert t > 1 and cal["after"]["nll"] < cal["before"]["nll"] and cal["after"]["ece"] < cal["before"]["ece"]


def test_a_failed_write_leaves_the_old_report_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    rep = report.build_report(
        synthetic("classification", 40), task="classification", label_names=["neg", "pos", "neutral"]
    )
    report.write_report(tmp_path, rep)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    calls = []
    real_fsync = os.fsync

    def failing_fsync(fd: int) -> None:
        calls.append(fd)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", failing_fsync)
    changed = report.build_report(
        synthetic("classification", 50, seed=9), task="classification", label_names=["neg", "pos", "neutral"]
    )
    with pytest.raises(OSError, match="No space"):
        report.write_report(tmp_path, changed)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no temp file left either


# ---------------------------------------------------------------- a real model, saved and rebuilt
def sentiment_rows(n: int, seed: int) -> list[dict[str, str]]:
    """Short texts whose label follows from one word, with a class imbalance and a source column."""
    rng = np.random.default_rng(seed)
    good = ("good", "great", "fine", "lovely")
    bad = ("bad", "awful", "poor", "dull")
    rows = []
    for i in range(n):
        positive = rng.random() < 0.7
        filler = " ".join(rng.choice(["the", "film", "plot", "was", "a", "really"], rng.integers(1, 30)))
        word = rng.choice(good if positive else bad)
        rows.append(
            {"text": f"{filler} {word}", "label": "pos" if positive else "neg", "source": f"s{i % 2}"}
        )
    return rows


@pytest.fixture(scope="module")
def saved(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    import fastbert

    train, dev = sentiment_rows(192, 0), sentiment_rows(96, 1)
    ft = fastbert.finetune(
        train, dev, task="classification", model=tiny_model, epochs=3, batch_size=16, lr=1e-3,
        max_length=32, progress=False, seed=0,
    )  # fmt: skip
    out = ft.save(tmp_path_factory.mktemp("saved") / "model")
    return ft, out, dev


def test_saved_folder_has_the_report_and_every_figure(saved):
    ft, out, dev = saved
    for name in (
        "report.json",
        "report.md",
        "eval_predictions.npz",
        *report.plot_names(json.loads((out / "report.json").read_text())),
    ):
        assert (out / name).stat().st_size > 0, name
    rep = json.loads((out / "report.json").read_text())
    assert set(rep["plots"]) == {
        "confusion_matrix.png",
        "reliability_diagram.png",
        "risk_coverage.png",
        "training_curves.png",
    }
    assert all((out / p).read_bytes().startswith(PNG) for p in rep["plots"])
    # The report scores what the model answers, with its temperature and tuned threshold.
    assert rep["metrics"] == json.loads(json.dumps(ft.metrics))
    assert rep["thresholds"]["value"] == pytest.approx(float(ft.thresholds[0]))
    assert rep["calibration"]["temperature"] == ft.temperature
    assert rep["examples"] == len(dev)
    md = (out / "report.md").read_text()
    assert all(f"({p})" in md for p in rep["plots"])


def test_cli_rebuild_equals_the_saved_report(saved):
    from fastbert.cli import main

    _, out, _ = saved
    saved_files = {n: (out / n).read_bytes() for n in ("report.json", "report.md")}
    (out / "report.json").unlink()
    (out / "risk_coverage.png").unlink()
    assert main(["report", str(out)]) == 0
    assert {n: (out / n).read_bytes() for n in saved_files} == saved_files
    assert (out / "risk_coverage.png").read_bytes().startswith(PNG)
    assert main(["report", str(out.parent / "nowhere")]) == 1


def test_abstention_meets_its_target_on_dev_and_survives_loading(saved):
    import fastbert

    ft, out, dev = saved
    texts = [r["text"] for r in dev]
    answers = ft.predict(texts, abstain={"coverage": 0.8})
    answered = [a is not None for a in answers]
    assert 0.8 <= np.mean(answered) < 0.8 + 0.1  # ties in confidence may add a few
    plain = ft.predict(texts)
    assert all(a == p for a, p in zip(answers, plain, strict=True) if a is not None)
    # An accuracy target: what it answers on dev is at least that accurate.
    truth = [r["label"] for r in dev]
    accurate = ft.predict(texts, abstain={"accuracy": 0.9})
    kept = [(a, t) for a, t in zip(accurate, truth, strict=True) if a is not None]
    assert not kept or np.mean([a == t for a, t in kept]) >= 0.9

    again = fastbert.load(out)
    assert again.temperature == ft.temperature and np.array_equal(again.thresholds, ft.thresholds)
    assert again.predict(texts, abstain={"coverage": 0.8}) == answers
    np.testing.assert_allclose(again.predict_proba(texts[:4]), ft.predict_proba(texts[:4]), atol=1e-6)
    raw = again.predict_proba(texts[:4], calibrated=False)
    assert not np.allclose(raw, again.predict_proba(texts[:4]))
    with pytest.raises(ValueError, match="abstain"):
        ft.predict(texts[:2], abstain={"coverage": 2})


def test_evaluate_slices_by_a_column_and_by_length(saved):
    ft, _, dev = saved
    got = ft.evaluate(dev, slice_by="source")
    assert set(got["slices"]) == {"length", "source"}
    assert {k: v["examples"] for k, v in got["slices"]["source"].items()} == {"s0": 48, "s1": 48}
    assert sum(v["examples"] for v in got["slices"]["length"].values()) == len(dev)
    whole = {k: v for k, v in got.items() if k != "slices"}
    assert whole == ft.evaluate(dev)
