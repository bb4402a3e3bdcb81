"""fastbert.metrics against independent implementations on generated inputs:
scikit-learn (classification, multi-label, MSE/MAE), scipy (Pearson, Spearman) and
seqeval (entities, both its default conlleval mode and mode="strict" with IOB2)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastbert.evaluation import metrics

# The references are test-only dependencies; each group of tests skips without its own.
try:
    import sklearn.metrics as sk
except ImportError:  # pragma: no cover
    sk = None
try:
    import scipy.stats as stats
except ImportError:  # pragma: no cover
    stats = None
try:
    import seqeval.metrics.sequence_labeling as seqeval_seq
    import seqeval.metrics.v1 as seqeval_v1
    import seqeval.scheme as seqeval_scheme
except ImportError:  # pragma: no cover
    seqeval_seq = seqeval_v1 = seqeval_scheme = None

needs_sklearn = pytest.mark.skipif(sk is None, reason="scikit-learn (the reference) is not installed")
needs_scipy = pytest.mark.skipif(stats is None or sk is None, reason="scipy/scikit-learn are not installed")
needs_seqeval = pytest.mark.skipif(seqeval_seq is None, reason="seqeval (the reference) is not installed")

SETTINGS = settings(max_examples=200, deadline=None)


def quiet(fn, *args, **kwargs):
    """Call a reference implementation with its warnings (constant input, ill-defined metric) silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def close(a: float, b: float, tol: float = 1e-9) -> bool:
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= tol


# ---------------------------------------------------------------- classification
@st.composite
def class_ids(draw):
    c = draw(st.integers(1, 6))
    n = draw(st.integers(1, 40))
    mode = draw(st.sampled_from(["random", "one_class", "perfect", "few_classes"]))
    if mode == "one_class":
        k = draw(st.integers(0, c - 1))
        t = [k] * n
    elif mode == "few_classes":  # some classes absent from both sides
        t = draw(st.lists(st.integers(0, min(1, c - 1)), min_size=n, max_size=n))
    else:
        t = draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n))
    p = list(t) if mode == "perfect" else draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n))
    return c, np.array(t), np.array(p)


@needs_sklearn
@SETTINGS
@given(class_ids())
def test_classification_matches_sklearn(case):
    c, t, p = case
    names = [f"c{k}" for k in range(c)]
    got = metrics.classification_metrics(t, p, names)
    assert close(got["accuracy"], quiet(sk.accuracy_score, t, p))
    # sklearn's default labels (those in y_true or y_pred) for the averages.
    for avg in ("macro", "micro", "weighted"):
        assert close(got[f"{avg}_f1"], quiet(sk.f1_score, t, p, average=avg, zero_division=0)), avg
    assert close(got["macro_precision"], quiet(sk.precision_score, t, p, average="macro", zero_division=0))
    assert close(got["macro_recall"], quiet(sk.recall_score, t, p, average="macro", zero_division=0))
    for avg in ("micro", "weighted"):  # micro precision and recall equal micro_f1 (= accuracy) here
        want = quiet(sk.precision_score, t, p, average=avg, zero_division=0)
        assert close(got["micro_f1" if avg == "micro" else "weighted_precision"], want), avg
        want = quiet(sk.recall_score, t, p, average=avg, zero_division=0)
        assert close(got["micro_f1" if avg == "micro" else "weighted_recall"], want), avg
    prec, rec, f1, sup = quiet(sk.precision_recall_fscore_support, t, p, labels=range(c), zero_division=0)
    for k, name in enumerate(names):
        row = got["per_class"][name]
        assert close(row["precision"], prec[k]) and close(row["recall"], rec[k]) and close(row["f1"], f1[k])
        assert row["support"] == sup[k]
    assert got["confusion_matrix"] == quiet(sk.confusion_matrix, t, p, labels=range(c)).tolist()


def test_classification_known_values():
    got = metrics.classification_metrics([0, 0, 1, 2], [0, 1, 1, 1], ["a", "b", "c"])
    assert got["accuracy"] == 0.5
    assert got["per_class"]["b"] == {"precision": 1 / 3, "recall": 1.0, "f1": 0.5, "support": 1}
    assert got["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert got["confusion_matrix"] == [[1, 1, 0], [0, 1, 0], [0, 1, 0]]
    # a class absent from both sides is listed but not averaged (sklearn's default labels)
    got = metrics.classification_metrics([0, 1], [0, 1], ["a", "b", "never"])
    assert got["macro_f1"] == 1.0 and got["per_class"]["never"]["support"] == 0


@pytest.mark.parametrize(
    ("t", "p", "names", "match"),
    [
        ([0, 3], [0, 1], ["a", "b"], "not a class id"),
        ([0, 1], [0], ["a", "b"], "examples"),
        ([], [], ["a"], "no examples"),
        ([[0, 1]], [[0, 1]], ["a", "b"], "shape"),
        ([0.5], [0], ["a"], "integer"),
    ],
)
def test_classification_rejects_bad_input(t, p, names, match):
    with pytest.raises(ValueError, match=match):
        metrics.classification_metrics(t, p, names)


# ---------------------------------------------------------------- multi-label
@st.composite
def indicator_pairs(draw):
    n = draw(st.integers(1, 25))
    c = draw(st.integers(2, 6))  # sklearn reads an (n, 1) matrix as binary, not multi-label
    density = draw(st.sampled_from([0.0, 0.2, 0.5, 1.0]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    t = (rng.random((n, c)) < density).astype(np.int64)
    p = t.copy() if draw(st.booleans()) and density == 1.0 else (rng.random((n, c)) < 0.4).astype(np.int64)
    if draw(st.booleans()):  # an all-zero column on both sides
        t[:, 0] = p[:, 0] = 0
    return t, p


@needs_sklearn
@SETTINGS
@given(indicator_pairs())
def test_multilabel_matches_sklearn(case):
    t, p = case
    names = [f"l{k}" for k in range(t.shape[1])]
    got = metrics.multilabel_metrics(t, p, names)
    for avg in ("micro", "macro", "samples", "weighted"):
        assert close(got[f"{avg}_f1"], quiet(sk.f1_score, t, p, average=avg, zero_division=0)), avg
    assert close(got["micro_precision"], quiet(sk.precision_score, t, p, average="micro", zero_division=0))
    assert close(got["micro_recall"], quiet(sk.recall_score, t, p, average="micro", zero_division=0))
    assert close(got["subset_accuracy"], quiet(sk.accuracy_score, t, p))
    assert close(got["hamming_loss"], quiet(sk.hamming_loss, t, p))
    prec, rec, f1, sup = quiet(sk.precision_recall_fscore_support, t, p, zero_division=0)
    for k, name in enumerate(names):
        row = got["per_class"][name]
        assert close(row["precision"], prec[k]) and close(row["recall"], rec[k]) and close(row["f1"], f1[k])
        assert row["support"] == sup[k]


def test_multilabel_rejects_scores_and_bad_shapes():
    with pytest.raises(ValueError, match="only 0 and 1"):
        metrics.multilabel_metrics([[0.2, 1]], [[0, 1]], ["a", "b"])
    with pytest.raises(ValueError, match="label_names"):
        metrics.multilabel_metrics([[0, 1]], [[0, 1]], ["a"])
    with pytest.raises(ValueError, match="shape"):
        metrics.multilabel_metrics([[0, 1]], [[0, 1, 1]], ["a", "b"])


# ---------------------------------------------------------------- regression
values = st.one_of(
    st.integers(-8, 8).map(lambda k: k / 4),  # a coarse grid: many ties, as STS scores have
    st.floats(-1e3, 1e3, allow_nan=False, allow_subnormal=False),
)


@st.composite
def regression_pairs(draw):
    n = draw(st.integers(1, 30))
    t = draw(st.lists(values, min_size=n, max_size=n))
    p = draw(st.lists(values, min_size=n, max_size=n))
    kind = draw(st.sampled_from(["free", "const_true", "const_pred", "same", "affine"]))
    if kind == "const_true":
        t = [t[0]] * n
    elif kind == "const_pred":
        p = [p[0]] * n
    elif kind == "same":
        p = list(t)
    elif kind == "affine":
        p = [3.0 - 2.0 * x for x in t]
    return np.array(t), np.array(p)


@needs_scipy
@SETTINGS
@given(regression_pairs())
def test_regression_matches_sklearn_and_scipy(case):
    t, p = case
    got = metrics.regression_metrics(t, p)
    mse = sk.mean_squared_error(t, p)
    assert close(got["mse"], mse, 1e-9 * max(1.0, mse))
    assert close(got["rmse"], math.sqrt(mse), 1e-9 * max(1.0, math.sqrt(mse)))
    assert close(got["mae"], sk.mean_absolute_error(t, p), 1e-9 * max(1.0, got["mae"]))
    # scipy raises for fewer than two pairs and gives nan (with a warning) for a constant input
    want_r = quiet(stats.pearsonr, t, p).statistic if t.size >= 2 else math.nan
    want_rho = quiet(stats.spearmanr, t, p).statistic
    assert close(got["pearson"], float(want_r), 1e-9), (got["pearson"], want_r)
    assert close(got["spearman"], float(want_rho), 1e-9), (got["spearman"], want_rho)


def test_regression_nan_and_constant_conventions():
    got = metrics.regression_metrics([1.0, 2.0, 3.0], [2.0, 2.0, 2.0])
    assert math.isnan(got["pearson"]) and math.isnan(got["spearman"])
    assert got["mse"] == pytest.approx(2 / 3)
    got = metrics.regression_metrics([1.0, np.nan, 3.0], [1.0, 2.0, 3.0])
    assert math.isnan(got["pearson"]) and math.isnan(got["spearman"]) and math.isnan(got["mse"])
    assert metrics.regression_metrics([1.0, 2.0], [5.0, 4.0])["pearson"] == -1.0
    assert math.isnan(metrics.regression_metrics([1.0], [2.0])["pearson"])
    with pytest.raises(ValueError, match="no examples"):
        metrics.regression_metrics([], [])


# ---------------------------------------------------------------- entities
TYPES = ["PER", "LOC", "creative-work"]
IOB2_TAGS = ["O", "O", "O", *[f"{p}-{t}" for t in TYPES for p in "BI"], "B", "I"]
ALL_TAGS = [*IOB2_TAGS, "E-PER", "S-LOC", "E-LOC", "S-PER", "E", "S"]


def tag_sequences(tags):
    return st.lists(st.integers(0, 12), min_size=1, max_size=8).flatmap(
        lambda lengths: st.tuples(
            *[
                st.tuples(
                    st.lists(st.sampled_from(tags), min_size=k, max_size=k),
                    st.lists(st.sampled_from(tags), min_size=k, max_size=k),
                )
                for k in lengths
            ]
        )
    )


def check_against_seqeval(got, prfs, entity_types):
    p, r, f, _ = prfs(average="micro")
    assert close(got["precision"], p, 0) and close(got["recall"], r, 0) and close(got["f1"], f, 0)
    assert sorted(got["per_type"]) == entity_types
    if entity_types:
        ps, rs, fs, ss = prfs(average=None)
        for k, name in enumerate(entity_types):
            row = got["per_type"][name]
            assert (row["precision"], row["recall"], row["f1"], row["support"]) == (
                ps[k],
                rs[k],
                fs[k],
                ss[k],
            )


@needs_seqeval
@SETTINGS
@given(tag_sequences(ALL_TAGS))
def test_entities_match_seqeval_default_mode(pairs):
    true = [list(t) for t, _ in pairs]
    pred = [list(p) for _, p in pairs]
    got = metrics.entity_metrics(true, pred)

    def prfs(average):
        return quiet(
            seqeval_seq.precision_recall_fscore_support, true, pred, average=average, zero_division=0
        )

    types = sorted({e[0] for seqs in (true, pred) for e in seqeval_seq.get_entities(seqs)})
    check_against_seqeval(got, prfs, types)
    for seq in true + pred:  # and the per-sequence chunks, word for word
        assert metrics.get_entities(seq) == seqeval_seq.get_entities(seq)


@needs_seqeval
@SETTINGS
@given(tag_sequences(IOB2_TAGS))
def test_entities_match_seqeval_strict_iob2(pairs):
    true = [list(t) for t, _ in pairs]
    pred = [list(p) for _, p in pairs]
    got = metrics.entity_metrics(true, pred, mode="strict")
    iob2 = seqeval_scheme.IOB2

    def prfs(average):
        return quiet(
            seqeval_v1.precision_recall_fscore_support,
            true,
            pred,
            average=average,
            zero_division=0,
            scheme=iob2,
        )

    types = sorted(
        seqeval_scheme.Entities(true, iob2).unique_tags | seqeval_scheme.Entities(pred, iob2).unique_tags
    )
    check_against_seqeval(got, prfs, types)
    for seq in true + pred:
        want = [(e.tag, e.start, e.end - 1) for e in seqeval_scheme.Tokens(seq, iob2).entities]
        assert metrics.get_entities(seq, mode="strict") == want


@SETTINGS
@given(tag_sequences(ALL_TAGS))
def test_entity_scores_report_both_modes_when_the_tags_are_iob2(pairs):
    # What evaluation reports: conlleval scores, plus strict_* exactly when strict mode can read the tags.
    true = [list(t) for t, _ in pairs]
    pred = [list(p) for _, p in pairs]
    got = metrics.entity_scores(true, pred)
    conlleval = metrics.entity_metrics(true, pred)
    assert {k: got[k] for k in conlleval} == conlleval
    iob2 = all(t == "O" or t[0] in "BI" for seq in true + pred for t in seq)  # B, B-PER, I, ...
    assert ("strict_f1" in got) == iob2
    if iob2:
        strict = metrics.entity_metrics(true, pred, mode="strict")
        assert (got["strict_precision"], got["strict_recall"], got["strict_f1"]) == (
            strict["precision"],
            strict["recall"],
            strict["f1"],
        )
        assert got["per_type_strict"] == strict["per_type"]


def test_iob1_is_lenient_by_default_and_dropped_when_strict():
    # IOB1: an entity may open with I-; B- only separates two adjacent entities of one type.
    iob1 = ["I-PER", "I-PER", "B-PER", "O", "I-LOC"]
    assert metrics.get_entities(iob1) == [("PER", 0, 1), ("PER", 2, 2), ("LOC", 4, 4)]
    assert metrics.get_entities(iob1, mode="strict") == [("PER", 2, 2)]
    got = metrics.entity_metrics([iob1], [["B-PER", "I-PER", "B-PER", "O", "B-LOC"]])
    assert got["f1"] == 1.0
    assert metrics.entity_metrics([iob1], [iob1], mode="strict")["per_type"] == {
        "PER": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
    }


def test_entities_seqeval_docstring_example():
    y_true = [["O", "O", "O", "B-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
    y_pred = [["O", "O", "B-MISC", "I-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
    got = metrics.entity_metrics(y_true, y_pred)
    assert (got["precision"], got["recall"], got["f1"]) == (0.5, 0.5, 0.5)
    assert got["per_type"]["MISC"]["f1"] == 0.0 and got["per_type"]["PER"]["f1"] == 1.0


@pytest.mark.parametrize(
    ("true", "pred", "mode", "match"),
    [
        ([["B-PER"]], [["PER"]], "conlleval", "not O"),
        ([["B-PER"]], [["E-PER"]], "strict", "not O"),
        ([["B-PER"]], [["B-"]], "conlleval", "not O"),
        ([["B-PER"]], [["O", "O"]], "conlleval", "tags"),
        ([["B-PER"]], [], "conlleval", "sentences"),
        ([["B-PER"]], [["B-PER"]], "lenient", "mode"),
    ],
)
def test_entities_reject_bad_input(true, pred, mode, match):
    with pytest.raises(ValueError, match=match):
        metrics.entity_metrics(true, pred, mode=mode)


def test_no_entities_anywhere_scores_zero():
    got = metrics.entity_metrics([["O", "O"], []], [["O", "O"], []])
    assert got == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "per_type": {}}
