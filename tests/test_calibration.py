"""fastbert.calibration: ECE/MCE against a slow readable reference, and temperature scaling that
lowers the NLL of held-out data (synthetic over- and underconfident logits, and a real fine-tune)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastbert.evaluation import calibration

SETTINGS = settings(max_examples=200, deadline=None)


# ---------------------------------------------------------------- ECE / MCE
def reference_ece_mce(confidence: list[float], outcome: list[bool], n_bins: int) -> tuple[float, float]:
    """Guo et al. (2017), one bin at a time: bin b holds lo < c <= hi (and c = 0 in the first bin)."""
    n = len(confidence)
    ece, mce = 0.0, 0.0
    for b in range(n_bins):
        lo, hi = np.linspace(0, 1, n_bins + 1)[b], np.linspace(0, 1, n_bins + 1)[b + 1]
        members = [i for i, c in enumerate(confidence) if lo < c <= hi or (b == 0 and c == 0)]
        if not members:
            continue
        accuracy = sum(outcome[i] for i in members) / len(members)
        mean_conf = sum(confidence[i] for i in members) / len(members)
        gap = abs(accuracy - mean_conf)
        ece += len(members) / n * gap
        mce = max(mce, gap)
    return ece, mce


@st.composite
def scored_items(draw):
    """(confidences, outcomes, n_bins); many confidences sit exactly on a bin edge, where an
    off-by-one in the binning shows."""
    n_bins = draw(st.sampled_from([1, 5, 10, 15]))
    edges = np.linspace(0, 1, n_bins + 1)
    value = st.one_of(st.floats(0, 1, allow_nan=False), st.sampled_from(edges.tolist()))
    items = draw(st.lists(st.tuples(value, st.booleans()), min_size=1, max_size=60))
    return [c for c, _ in items], [o for _, o in items], n_bins


@SETTINGS
@given(scored_items())
def test_ece_and_mce_match_the_reference(case):
    conf, hit, n_bins = case
    got = calibration.calibration_errors(np.array(conf), np.array(hit), n_bins)
    ece, mce = reference_ece_mce(conf, hit, n_bins)
    assert got["ece"] == pytest.approx(ece, abs=1e-12) and got["mce"] == pytest.approx(mce, abs=1e-12)
    bins = calibration.reliability_bins(np.array(conf), np.array(hit), n_bins)
    assert sum(bins["count"]) == len(conf)


def test_a_confidence_on_an_edge_belongs_to_the_bin_below():
    # 0.1 closes the first of ten bins, (0, 0.1]; 0.15 is in the second.
    bins = calibration.reliability_bins(np.array([0.1, 0.15]), np.array([1, 0]), 10)
    assert bins["count"][:3] == [1, 1, 0]
    got = calibration.calibration_errors(np.array([0.1, 0.15]), np.array([1, 0]), 10)
    assert got["ece"] == pytest.approx(0.5 * 0.9 + 0.5 * 0.15)


def test_ece_known_values():
    # Perfect confidence and always right: no gap. Always 0.9 sure but right half the time: gap 0.4.
    assert calibration.calibration_errors(np.ones(4), np.ones(4, bool)) == {"ece": 0.0, "mce": 0.0}
    got = calibration.calibration_errors(np.full(4, 0.9), np.array([1, 0, 1, 0]))
    assert got["ece"] == pytest.approx(0.4) and got["mce"] == pytest.approx(0.4)
    # Two bins: 0.2-confident items right 1/2 of the time (gap .3), 0.8-confident always right (gap .2).
    got = calibration.calibration_errors(np.array([0.2, 0.2, 0.8, 0.8]), np.array([1, 0, 1, 1]), 10)
    assert got["ece"] == pytest.approx(0.25) and got["mce"] == pytest.approx(0.3)
    assert calibration.calibration_errors(np.zeros(0), np.zeros(0)) == {"ece": 0.0, "mce": 0.0}


def test_calibration_rejects_bad_input():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        calibration.calibration_errors(np.array([1.5]), np.array([1]))
    with pytest.raises(ValueError, match="values"):
        calibration.calibration_errors(np.array([0.5, 0.5]), np.array([1]))


# ---------------------------------------------------------------- temperature scaling
BONUS = 1.5


def synthetic_logits(n: int, classes: int, sharpness: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A noisy classifier: unit Gaussian scores, the true class's shifted up by ``BONUS``.

    Given the scores, the true posterior is exactly ``softmax(BONUS * scores)`` (the Gaussian
    likelihood ratio), so logits ``sharpness * scores`` are calibrated at ``T = sharpness / BONUS``:
    overconfident above it, underconfident below."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    z = rng.normal(size=(n, classes))
    z[np.arange(n), y] += BONUS
    return z * sharpness, y


@pytest.mark.parametrize(("sharpness", "direction"), [(6.0, 1), (0.5, -1)])
def test_temperature_lowers_held_out_nll(sharpness, direction):
    z, y = synthetic_logits(4000, 5, sharpness, seed=1)
    fit_z, fit_y, held_z, held_y = z[:2000], y[:2000], z[2000:], y[2000:]
    t = calibration.fit_temperature(fit_z, fit_y, "softmax")
    assert (t > 1) if direction > 0 else (t < 1)
    assert t == pytest.approx(sharpness / BONUS, rel=0.1)  # the exactly calibrated temperature
    before = calibration.negative_log_likelihood(held_z, held_y, "softmax")
    after = calibration.negative_log_likelihood(held_z, held_y, "softmax", t)
    assert after < before - 0.01
    ece_before = calibration.calibration_errors(*top_label(held_z, held_y, 1.0))["ece"]
    ece_after = calibration.calibration_errors(*top_label(held_z, held_y, t))["ece"]
    assert ece_after < ece_before


def top_label(z: np.ndarray, y: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
    p = np.exp(z / t - (z / t).max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    return p.max(1), p.argmax(1) == y


def test_fitted_temperature_is_the_nll_minimum():
    z, y = synthetic_logits(500, 3, 2.5, seed=7)
    t = calibration.fit_temperature(z, y, "softmax")
    best = calibration.negative_log_likelihood(z, y, "softmax", t)
    grid = np.exp(np.linspace(-2, 3, 400))
    assert best <= min(calibration.negative_log_likelihood(z, y, "softmax", g) for g in grid) + 1e-9


def test_sigmoid_temperature_for_multilabel_logits():
    rng = np.random.default_rng(3)
    truth = rng.random((3000, 4)) < 0.3
    z = 5.0 * (np.where(truth, 1.0, -1.0) * 0.6 + rng.normal(size=truth.shape))  # overconfident
    t = calibration.fit_temperature(z[:1500], truth[:1500], "sigmoid")
    assert t > 1
    held = (z[1500:], truth[1500:])
    assert calibration.negative_log_likelihood(*held, "sigmoid", t) < calibration.negative_log_likelihood(
        *held, "sigmoid"
    )


def test_nll_matches_torch():
    torch = pytest.importorskip("torch")
    z, y = synthetic_logits(50, 4, 1.0, seed=0)
    want = float(torch.nn.functional.cross_entropy(torch.tensor(z / 2.0), torch.tensor(y)))
    assert calibration.negative_log_likelihood(z, y, "softmax", 2.0) == pytest.approx(want, rel=1e-12)
    truth = (z > 0).astype(float)
    want = float(torch.nn.functional.binary_cross_entropy_with_logits(torch.tensor(z), torch.tensor(truth)))
    assert calibration.negative_log_likelihood(z, truth, "sigmoid") == pytest.approx(want, rel=1e-12)


def test_degenerate_inputs_keep_temperature_one():
    assert calibration.fit_temperature(np.zeros((0, 3)), np.zeros(0, dtype=int), "softmax") == 1.0
    # Constant logits carry no information: every T gives the same NLL, so nothing is fitted.
    assert calibration.fit_temperature(np.zeros((10, 3)), np.arange(10) % 3, "softmax") == 1.0


# ---------------------------------------------------------------- a real fine-tune
def noisy_sentiment(n: int, seed: int, noise: float = 0.2) -> list[dict[str, str]]:
    """Texts whose sentiment word decides the label, with a share ``noise`` of labels flipped:
    the best possible accuracy is ``1 - noise``, and a model that fits the flips is overconfident."""
    rng = np.random.default_rng(seed)
    good, bad = ("good", "great", "fine", "lovely"), ("bad", "awful", "poor", "dull")
    rows = []
    for _ in range(n):
        positive = bool(rng.random() < 0.5)
        filler = " ".join(rng.choice(["the", "film", "plot", "was", "a", "really"], rng.integers(1, 12)))
        label = positive if rng.random() >= noise else not positive
        rows.append(
            {"text": f"{filler} {rng.choice(good if positive else bad)}", "label": "pos" if label else "neg"}
        )
    return rows


def test_temperature_fitted_on_dev_lowers_held_out_nll_of_a_fine_tuned_model(tiny_model: Path):
    """Trained for many epochs on few texts, a tiny BERT memorises the flipped labels and is
    overconfident (held-out NLL 0.72-0.80 at seeds 0-2, where 0.50 is the noise floor); the
    temperature finetune fits on dev must lower the NLL of unseen texts, as in Guo et al. (2017).
    (At 6 epochs on 160 texts the model was barely overconfident and the fitted temperature,
    though above 1, could raise the held-out NLL by 0.002: too fine a margin to test.)"""
    import fastbert

    ft = fastbert.finetune(
        noisy_sentiment(96, 0),
        noisy_sentiment(200, 10),
        task="classification",
        model=tiny_model,
        epochs=15,
        lr=3e-3,
        batch_size=16,
        max_length=24,
        early_stopping_patience=None,
        restore_best=False,
        progress=False,
        seed=0,
    )
    held = noisy_sentiment(400, 20)
    texts = [r["text"] for r in held]
    z = ft.logits(texts)
    y = np.array([ft.label_names.index(r["label"]) for r in held])
    assert (z.argmax(1) == y).mean() > 0.6  # it learned the task (chance 0.5, the ceiling 0.8)
    assert ft.temperature > 1
    before = calibration.negative_log_likelihood(z, y, "softmax")
    after = calibration.negative_log_likelihood(z, y, "softmax", ft.temperature)
    assert after < before and math.isfinite(after)
    # predict_proba is calibrated; the raw probabilities stay available; the argmax is the same.
    raw = ft.predict_proba(texts, calibrated=False)
    cal = ft.predict_proba(texts)
    np.testing.assert_allclose(
        np.log(cal[:, 1] / cal[:, 0]) * ft.temperature, np.log(raw[:, 1] / raw[:, 0]), atol=1e-3
    )
    assert (raw.argmax(1) == cal.argmax(1)).all()
