"""Class imbalance: over/under-sampling (`fastbert.sampling`), class weights, the stratified dev
split and macro-F1 model selection, on an imbalanced slice of SST-2 (real sentences)."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastbert
import fastbert.finetuning as finetuning
from fastbert.config import DEFAULT_METRIC, FinetuneConfig
from fastbert.features.arrays import Features
from fastbert.training.loss import IGNORE, class_weight_vector
from fastbert.training.sampling import resample_features, resample_indices


@pytest.fixture(scope="module")
def sst2_imbalanced(data_dir: Path) -> list[dict[str, str]]:
    """100 SST-2 training sentences, 80 negative and 20 positive, in file order."""
    with (data_dir / "sst2" / "train.tsv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    neg = [r for r in rows if r["label"] == "0"][:80]
    pos = [r for r in rows if r["label"] == "1"][:20]
    return [{"text": r["sentence"], "label": r["label"]} for r in neg + pos]


def quick(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"epochs": 1, "batch_size": 32, "progress": False, "max_length": 32, "seed": 0}
    base.update(kw)
    return base


def capture_training_rows(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Record the rows and class weights `finetune` hands to `train`."""
    seen: list[dict[str, Any]] = []
    real = finetuning.train

    def recording(model: Any, cfg: Any, feats: Features, evaluate: Any, **kw: Any) -> Any:
        seen.append(
            {"labels": None if feats.labels is None else feats.labels.copy(), "weights": kw["class_weights"]}
        )
        return real(model, cfg, feats, evaluate, **kw)

    monkeypatch.setattr(finetuning, "train", recording)
    return seen


# ----------------------------------------------------------------------------- sampling
@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 4), min_size=1, max_size=120), st.integers(0, 2**32 - 1))
def test_resampling_balances_every_class(labels: list[int], seed: int) -> None:
    y = np.array(labels)
    counts = Counter(labels)
    over = resample_indices(y, "over", seed)
    assert Counter(y[over].tolist()) == {c: max(counts.values()) for c in counts}
    assert set(over.tolist()) == set(range(len(y)))  # every row kept, the smaller classes repeated
    under = resample_indices(y, "under", seed)
    assert Counter(y[under].tolist()) == {c: min(counts.values()) for c in counts}
    assert len(set(under.tolist())) == len(under)  # a subset: no row twice
    assert np.array_equal(resample_indices(y, "over", seed), over)  # seeded
    assert np.array_equal(resample_indices(y, "under", seed), under)


def test_resampling_depends_on_the_seed_and_keeps_rows_whole() -> None:
    y = np.array([0] * 50 + [1] * 5)
    draws = {tuple(resample_indices(y, "under", s).tolist()) for s in range(5)}
    assert len(draws) > 1
    feats = Features(
        input_ids=np.arange(55 * 3, dtype=np.int32).reshape(55, 3),
        token_type_ids=np.zeros((55, 3), dtype=np.int32),
        lengths=np.full(55, 3),
        labels=y,
    )
    out = resample_features(feats, "over", 0)
    assert len(out) == 100 and np.bincount(out.labels).tolist() == [50, 50]
    # Row i's ids start at 3 * i: every resampled row keeps its own ids and label.
    assert all(y[row[0] // 3] == label for row, label in zip(out.input_ids, out.labels, strict=True))
    assert resample_features(feats, None, 0) is feats
    with pytest.raises(ValueError, match="'over' or 'under'"):
        resample_indices(y, "smote", 0)
    with pytest.raises(ValueError, match="single-label"):
        FinetuneConfig(task="token", sampling="over").validate()


@pytest.mark.parametrize("mode", ["over", "under"])
def test_sampling_balances_training_rows_and_leaves_dev_alone(
    tiny_model: Path, sst2_imbalanced: list[dict[str, str]], monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    seen = capture_training_rows(monkeypatch)
    ft = fastbert.finetune(
        sst2_imbalanced,
        model=tiny_model,
        sampling=mode,
        class_weights="balanced",
        dev_fraction=0.2,
        **quick(),
    )
    # The stratified dev split keeps the 80/20 mix exactly, and sampling never touches it.
    assert ft.data_info["dev_examples"] == 20 and ft.data_info["train_examples"] == 80
    assert {k: v["support"] for k, v in ft.metrics["per_class"].items()} == {"0": 16, "1": 4}
    (rows,) = seen
    expected = {"over": [64, 64], "under": [16, 16]}[mode]  # train: 64 negative, 16 positive
    assert np.bincount(rows["labels"]).tolist() == expected
    np.testing.assert_allclose(rows["weights"], [1.0, 1.0])  # "balanced" after resampling: equal
    assert len(ft.history.steps) == -(-sum(expected) // 32)  # one epoch over the resampled rows


def test_sampling_with_windows_balances_the_windows(
    tiny_model: Path, sst2_imbalanced: list[dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = capture_training_rows(monkeypatch)
    fastbert.finetune(
        sst2_imbalanced,
        model=tiny_model,
        sampling="over",
        long_text="chunk_vote",
        **quick(max_length=12, epochs=0.1),
    )
    counts = np.bincount(seen[0]["labels"])
    assert counts[0] == counts[1] and counts.sum() > 2 * 72  # more windows than texts, balanced


# ----------------------------------------------------------------------------- class weights
def test_balanced_class_weights_for_token_labels_skip_ignored_tokens() -> None:
    labels = np.array([[IGNORE, 0, 0, 1, IGNORE], [IGNORE, 0, 2, IGNORE, IGNORE]])
    weights = class_weight_vector(
        FinetuneConfig(task="token", class_weights="balanced"), labels, ["O", "B", "I"]
    )
    # 5 labelled tokens over 3 classes: n / (k * count) = 5/9, 5/3, 5/3.
    np.testing.assert_allclose(weights, [5 / 9, 5 / 3, 5 / 3])
    assert class_weight_vector(FinetuneConfig(), np.array([0, 1]), ["a", "b"]) is None
    with pytest.raises(ValueError, match="'balanced' or a dict"):
        class_weight_vector(FinetuneConfig(class_weights="inverse"), np.array([0, 1]), ["a", "b"])


def test_balanced_weights_follow_the_training_rows(
    tiny_model: Path, sst2_imbalanced: list[dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = capture_training_rows(monkeypatch)
    fastbert.finetune(
        sst2_imbalanced, model=tiny_model, class_weights="balanced", dev_fraction=0.2, **quick(epochs=0.1)
    )
    np.testing.assert_allclose(seen[0]["weights"], [80 / (2 * 64), 80 / (2 * 16)])


# ----------------------------------------------------------------------------- model selection
def test_macro_f1_picks_the_checkpoint_by_default(
    tiny_model: Path, sst2_imbalanced: list[dict[str, str]]
) -> None:
    assert DEFAULT_METRIC["classification"] == ("macro_f1", True) == DEFAULT_METRIC["pair"]
    ft = fastbert.finetune(
        sst2_imbalanced, model=tiny_model, dev_fraction=0.2, early_stopping_patience=None,
        **quick(epochs=2, batch_size=16, eval_steps=2, lr=1e-3),
    )  # fmt: skip
    evals = ft.history.evals
    assert len(evals) >= 4
    best = max(evals, key=lambda e: e["macro_f1"])  # the first of equal bests, as training keeps it
    assert ft.history.best_score == best["macro_f1"] and ft.history.best_step == best["step"]
