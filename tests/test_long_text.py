"""Texts longer than ``max_length`` (`fastbert.long_text`, `fastbert.documents`, `fastbert.window_pool`).

Every policy is trained end to end on a tiny BERT over real long texts (WikiText-2 paragraphs,
labelled by their article; CoNLL-2003 sentences run together for NER), and the fast, batched,
Rust-windowed predictions are compared with slow references that cut windows with
`fastbert.text.chunk.window_ranges`, run the model one window at a time and merge in plain
Python.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

import fastbert
from fastbert.config import FinetuneConfig
from fastbert.data import Examples
from fastbert.features.featurize import featurize
from fastbert.features.inference import vote_log_shares
from fastbert.features.long_text import head_tail_reference, resolved_head, resolved_stride
from fastbert.features.window_pool import WindowMeanPool, slot_features
from fastbert.text.chunk import window_ranges
from fastbert.text.chunk_reference import merge_windows as reference_merge_windows
from fastbert.text.tokenizer import Tokenizer

MAX_LENGTH = 48
ARTICLES = ("Military history of Australia", "Scientology in Germany", "U.S. Route 2 in Michigan")
POLICIES = ("truncate", "head_tail", "chunk_vote", "chunk_mean_logits", "chunk_mean_pool")


# ----------------------------------------------------------------------------- data
@pytest.fixture(scope="module")
def wiki(data_dir: Path) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(train, dev) WikiText-2 paragraphs of over 100 words (130-400 tokens), label = article."""
    paragraphs: dict[str, list[str]] = {}
    article = None
    for line in (data_dir / "raw_text" / "wikitext2_valid.txt").read_text(encoding="utf-8").split("\n"):
        text = line.strip()
        title = re.fullmatch(r"= ([^=].*[^=]) =", text)
        if title:
            article = title.group(1)
            paragraphs[article] = []
        elif text and not text.startswith("=") and article is not None:
            paragraphs[article].append(text)
    train, dev = [], []
    for name in ARTICLES:
        long = [p for p in paragraphs[name] if len(p.split()) > 100]
        train += [{"text": p, "label": name} for p in long[:3]]
        dev += [{"text": p, "label": name} for p in long[3:5]]
    return train, dev


@pytest.fixture(scope="module")
def conll_docs(data_dir: Path) -> list[tuple[list[str], list[str]]]:
    """CoNLL-2003 train sentences run together, 8 to a text (a news story's worth of words)."""
    sentences = []
    for block in (data_dir / "conll2003" / "train.txt").read_text(encoding="utf-8").split("\n\n")[:112]:
        rows = [line.split() for line in block.strip().split("\n") if line.strip()]
        sentences.append(([r[0] for r in rows], [r[-1] for r in rows]))
    docs = []
    for start in range(0, len(sentences), 8):
        part = sentences[start : start + 8]
        docs.append(([w for s in part for w in s[0]], [t for s in part for t in s[1]]))
    return docs


@pytest.fixture(scope="module")
def tok(tiny_model: Path) -> Tokenizer:
    return Tokenizer.from_pretrained(tiny_model)


def text_ids(tok: Tokenizer, text: Any, words: bool = False) -> tuple[list[int], list[int | None]]:
    enc = tok.encode(text, add_special_tokens=False, is_split_into_words=words)
    return list(enc.ids), list(enc.word_ids)


def examples(texts: list[Any], pairs: list[str] | None = None) -> Examples:
    return Examples(texts, pairs, None, None, "<test>", np.arange(1, len(texts) + 1))


# ----------------------------------------------------------------------------- head + tail
@pytest.mark.parametrize("head", [None, 0, 10, MAX_LENGTH - 2])
def test_head_tail_keeps_exactly_the_first_and_last_tokens(
    tok: Tokenizer, wiki: tuple[list, list], head: int | None
) -> None:
    room = MAX_LENGTH - 2
    exact = " ".join(["word"] * room)  # exactly `room` tokens: kept whole, by either route
    texts = [r["text"] for r in wiki[0][:5]] + ["a short text", exact, ""]
    cfg = FinetuneConfig(long_text="head_tail", long_text_head=head, max_length=MAX_LENGTH)
    feats = featurize(tok, examples(texts), cfg)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    n_head = resolved_head(cfg)
    assert head is not None or n_head == round(46 * 128 / 510) == 12  # Sun et al.'s share
    for i, text in enumerate(texts):
        want = head_tail_reference(text_ids(tok, text)[0], room, n_head, cls, sep)
        assert feats.lengths[i] == len(want)
        assert feats.input_ids[i, : len(want)].tolist() == want, text[:40]
        assert not feats.input_ids[i, len(want) :].any()
    if head == room:  # all head: the same rows as truncation
        plain = featurize(tok, examples(texts), FinetuneConfig(max_length=MAX_LENGTH))
        np.testing.assert_array_equal(plain.input_ids, feats.input_ids)
    # The reference itself, on a layout written out by hand.
    assert head_tail_reference(list(range(10)), 6, 2, -1, -2) == [-1, 0, 1, 6, 7, 8, 9, -2]


def test_policies_are_checked_against_the_task() -> None:
    bad = [
        ({"task": "token", "long_text": "head_tail"}, "does not apply to task 'token'"),
        ({"task": "pair", "long_text": "head_tail"}, "does not apply to task 'pair'"),
        ({"task": "regression", "long_text": "chunk_vote"}, "does not apply"),
        ({"task": "mlm", "long_text": "chunk_mean_logits"}, "does not apply"),
        ({"long_text": "sliding"}, "choose one of truncate, head_tail"),
        ({"long_text": "chunk_vote", "long_text_stride": 46, "max_length": 48}, "long_text_stride"),
        ({"long_text": "head_tail", "long_text_head": 47, "max_length": 48}, "long_text_head"),
    ]
    for options, message in bad:
        with pytest.raises(ValueError, match=re.escape(message)):
            FinetuneConfig(**options).validate()
    FinetuneConfig(task="token", long_text="chunk_vote").validate()


def test_pair_windows_cut_the_second_text_and_repeat_the_first(
    tok: Tokenizer, wiki: tuple[list, list]
) -> None:
    cfg = FinetuneConfig(task="pair", long_text="chunk_mean_logits", max_length=MAX_LENGTH)
    first, second = "which army fought there ?", wiki[1][0]["text"]
    feats = featurize(tok, examples([first], [second]), cfg)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    q, p = text_ids(tok, first)[0], text_ids(tok, second)[0]
    ranges = window_ranges(len(p), MAX_LENGTH - 3 - len(q), resolved_stride(cfg))
    assert len(feats) == len(ranges) > 3 and feats.windows_per_document().tolist() == [len(ranges)]
    for i, (s, e) in enumerate(ranges):
        want = [cls, *q, sep, *p[s:e], sep]
        assert feats.input_ids[i, : feats.lengths[i]].tolist() == want
        assert feats.token_type_ids[i, : feats.lengths[i]].tolist() == [0] * (len(q) + 2) + [1] * (e - s + 1)
    with pytest.raises(ValueError, match="repeat the first whole"):
        featurize(tok, examples([second], [first]), cfg)


# ----------------------------------------------------------------------------- references
def reference_windows(tok: Tokenizer, cfg: FinetuneConfig, text: Any, words: bool = False) -> list[dict]:
    """A text's windows as dicts of ``ids`` (with [CLS]/[SEP]), ``start``, ``end`` (token range)
    and ``word_ids`` (of the text tokens), from the pure-Python window ranges."""
    ids, word_ids = text_ids(tok, text, words)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    ranges = window_ranges(len(ids), cfg.max_length - 2, resolved_stride(cfg))
    return [
        {"ids": [cls, *ids[s:e], sep], "start": s, "end": e, "word_ids": word_ids[s:e]} for s, e in ranges
    ]


@torch.no_grad()
def run_one(ft: Any, ids: list[int], vectors: bool = False) -> np.ndarray:
    """The model on a single row: logits (C,), token logits (L, C), or the sentence vector (H,)."""
    x = torch.tensor([ids])
    ones, zeros = torch.ones_like(x), torch.zeros_like(x)
    model = ft.model.eval()
    out = model.sentence_vectors(x, ones, zeros) if vectors else model(x, ones, zeros)
    return out[0].double().numpy()


def reference_text_logits(ft: Any, tok: Tokenizer, text: str) -> tuple[np.ndarray, int]:
    """(per-text scores, predicted class) the slow way; vote: (vote counts, the vote)."""
    cfg = ft.config
    policy = cfg.long_text
    room = cfg.max_length - 2
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    if policy in ("truncate", "head_tail"):
        ids = text_ids(tok, text)[0]
        head = room if policy == "truncate" else resolved_head(cfg)
        logits = run_one(ft, head_tail_reference(ids, room, head, cls, sep))
        return logits, int(np.argmax(logits))
    windows = [w["ids"] for w in reference_windows(tok, cfg, text)]
    if policy == "chunk_mean_pool":
        mean = sum(run_one(ft, w, vectors=True) for w in windows) / len(windows)
        classifier = ft.model.classifier
        logits = (
            classifier.weight.double().detach().numpy() @ mean
        ) + classifier.bias.double().detach().numpy()
        return logits, int(np.argmax(logits))
    per_window = [run_one(ft, w) for w in windows]
    if policy == "chunk_mean_logits":
        mean = sum(per_window) / len(per_window)
        return mean, int(np.argmax(mean))
    # Majority vote of the windows' argmax; ties to the larger summed logits, then the lower id.
    classes = len(per_window[0])
    votes = [0] * classes
    sums = [0.0] * classes
    for logits in per_window:
        votes[int(np.argmax(logits))] += 1
        for k in range(classes):
            sums[k] += logits[k]
    winner = max(range(classes), key=lambda k: (votes[k], sums[k], -k))
    return np.array(votes, dtype=np.float64), winner


# ----------------------------------------------------------------------------- end to end
@pytest.mark.parametrize("policy", POLICIES)
def test_every_policy_trains_predicts_and_reloads(
    tiny_model: Path, tok: Tokenizer, wiki: tuple[list, list], policy: str, tmp_path: Path
) -> None:
    train, dev = wiki
    ft = fastbert.finetune(
        train, dev, model=tiny_model, long_text=policy, max_length=MAX_LENGTH,
        epochs=1, batch_size=32, lr=1e-3, progress=False, seed=0,
    )  # fmt: skip
    room = MAX_LENGTH - 2
    assert all(len(text_ids(tok, r["text"])[0]) > room for r in dev)  # every dev text is long

    # Document-level metrics, plus how the texts were cut when they were.
    metrics = ft.evaluate(dev)
    assert 0 <= metrics["macro_f1"] <= 1
    if policy.startswith("chunk_"):
        cfg = ft.config
        n_windows = sum(len(reference_windows(tok, cfg, r["text"])) for r in dev)
        assert metrics["documents"] == len(dev) == metrics["documents_chunked"]
        assert metrics["windows"] == n_windows > 2 * len(dev)
        assert set(metrics["window_level"]) >= {"accuracy", "macro_f1", "per_class"}
        assert sum(row["support"] for row in metrics["window_level"]["per_class"].values()) == n_windows
        assert ft.metrics["documents_chunked"] == len(dev)  # also in the metrics finetune reports
    else:
        assert "documents_chunked" not in metrics and "window_level" not in metrics

    # The batched, windowed predictions against the one-window-at-a-time references.
    texts = [r["text"] for r in dev] + ["a short text about the army"]
    logits = ft.logits(texts)
    assert logits.shape == (len(texts), len(ARTICLES))
    predicted = ft.predict(texts)
    for i, text in enumerate(texts):
        want, winner = reference_text_logits(ft, tok, text)
        if policy == "chunk_vote":
            windows = want.sum()
            np.testing.assert_allclose(np.exp(logits[i]).sum(), 1.0, rtol=1e-5)
            # The shares are the votes plus under half a vote spread by the mean prediction.
            assert np.all(np.abs(np.exp(logits[i]) * (windows + 0.5) - want) < 0.5)
        else:
            np.testing.assert_allclose(logits[i], want, rtol=1e-4, atol=1e-5)
        assert int(np.argmax(logits[i])) == winner
        assert predicted[i] == ft.label_names[winner]

    # The policy travels with the saved model (in its config; two policies suffice to show it).
    if policy not in ("head_tail", "chunk_mean_pool"):
        return
    loaded = fastbert.load(ft.save(tmp_path / "model"))
    assert loaded.config.long_text == policy
    np.testing.assert_allclose(loaded.logits(texts), logits, rtol=1e-5, atol=1e-6)
    assert loaded.predict(texts) == predicted


def test_token_windows_are_stitched_by_max_context(
    tiny_model: Path, tok: Tokenizer, conll_docs: list[tuple[list[str], list[str]]]
) -> None:
    max_length = 32
    train, dev = conll_docs[:10], conll_docs[10:14]
    ft = fastbert.finetune(
        train, dev, task="token", model=tiny_model, long_text="chunk_mean_logits", max_length=max_length,
        epochs=1, batch_size=32, lr=1e-3, progress=False, seed=0,
    )  # fmt: skip
    cfg = ft.config
    assert resolved_stride(cfg) == 7
    metrics = ft.metrics
    assert metrics["documents"] == len(dev) == metrics["documents_chunked"]
    assert {"precision", "recall", "f1"} <= set(metrics["window_level"])
    words = [w for w, _ in dev]
    predicted = ft.predict(words)
    probs = ft.predict_proba(words, calibrated=False)
    for doc, (doc_words, _) in enumerate(dev):
        windows = reference_windows(tok, cfg, doc_words, words=True)
        assert len(windows) > 3
        logits = [run_one(ft, w["ids"])[1:-1] for w in windows]  # the text tokens' logits
        n_tokens = windows[-1]["end"]
        chosen: list[tuple[int, int]] = []  # per token: (window, column)
        for p in range(n_tokens):
            # google-research/bert run_squad.py `_check_is_max_context`: the most context on
            # the shorter side (+ 0.01 per window token), the earliest window on ties.
            best, best_score = None, -math.inf
            for k, w in enumerate(windows):
                if w["start"] <= p < w["end"]:
                    score = min(p - w["start"], w["end"] - 1 - p) + 0.01 * (w["end"] - w["start"])
                    if score > best_score:
                        best, best_score = (k, p - w["start"]), score
            assert best is not None
            chosen.append(best)
        word_of = [windows[k]["word_ids"][c] for k, c in chosen]
        want = []
        for word in range(len(doc_words)):
            k, c = chosen[word_of.index(word)]  # the word's first token, from its best window
            want.append(ft.label_names[int(np.argmax(logits[k][c]))])
            softmax = np.exp(logits[k][c] - logits[k][c].max())
            np.testing.assert_allclose(probs[doc][word], softmax / softmax.sum(), rtol=1e-4, atol=1e-6)
        assert predicted[doc] == want


# ----------------------------------------------------------------------------- merging
@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(1, 5), min_size=1, max_size=6),
    st.integers(2, 4),
    st.integers(0, 2**31 - 1),
)
@example(windows=[1, 2], classes=4, seed=154)  # a summed-logit tie among the vote-tied classes only
def test_vote_scores_pick_the_majority_with_its_tie_break(
    windows: list[int], classes: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    mapping = np.repeat(np.arange(len(windows)), windows)
    # Rounded logits make argmax ties between windows, and vote ties between classes, common.
    logits = np.round(rng.normal(size=(len(mapping), classes)), 1).astype(np.float32)
    want, shares = reference_merge_windows(mapping.tolist(), logits, "vote", len(windows), classes)
    _, means = reference_merge_windows(mapping.tolist(), logits, "mean", len(windows), classes)
    scores = vote_log_shares(np.array(shares), np.array(means), np.array(windows))
    np.testing.assert_allclose(np.exp(scores).sum(1), 1.0, rtol=1e-5)
    sums = np.zeros((len(windows), classes))
    np.add.at(sums, mapping, logits.astype(np.float64))
    for i in range(len(windows)):
        tied_votes = np.flatnonzero(np.array(shares[i]) == max(shares[i]))
        # The tie-break is the larger summed logit among the vote-tied classes (another class may
        # sum higher, having won no vote); when those sums tie too, within float error, either
        # answer is right.
        among = sums[i][tied_votes]
        if np.isclose(among, among.max(), rtol=0, atol=1e-4).sum() > 1:
            continue
        assert int(np.argmax(scores[i])) == want[i]


@torch.no_grad()
def test_mean_pool_training_rows_are_the_windows_of_each_text(tiny_model: Path, tok: Tokenizer) -> None:
    from fastbert.model.build import build_model

    cfg = FinetuneConfig(long_text="chunk_mean_pool", max_length=24, pooling="mean")
    texts = [
        "one short text",
        " ".join(f"word{i}" for i in range(60)),
        "a third text that is long enough to need a second window of tokens , if not a third " * 2,
    ]
    feats = featurize(
        tok, Examples(texts, None, np.array([0, 1, 0]), ["a", "b"], "<t>", np.arange(1, 4)), cfg
    )
    rows = slot_features(feats)
    counts = feats.windows_per_document()
    assert counts.tolist()[0] == 1 and counts.max() >= 3
    assert (
        rows.labels.tolist() == [0, 1, 0]
        and rows.lengths.tolist() == (counts * feats.input_ids.shape[1]).tolist()
    )

    torch.manual_seed(0)
    head = build_model(cfg, tiny_model, 2).eval()
    pool = WindowMeanPool(head, feats.input_ids.shape[1])
    width = int(rows.lengths.max())
    batch = [torch.from_numpy(a[:, :width].astype(np.int64)) for a in (rows.input_ids, rows.token_type_ids)]
    mask = (torch.arange(width)[None, :] < torch.from_numpy(rows.lengths)[:, None]).long()
    with torch.enable_grad():
        got = pool(batch[0], mask, batch[1])
        got.square().sum().backward()
    got_grads = {k: p.grad.clone() for k, p in head.named_parameters() if p.grad is not None}
    head.zero_grad()

    # Reference: each window alone through `sentence_vectors`, a Python mean per text, the classifier.
    with torch.enable_grad():
        per_text = []
        for doc, text in enumerate(texts):
            vectors = []
            for w in reference_windows(tok, cfg, text):
                x = torch.tensor([w["ids"]])
                vectors.append(head.sentence_vectors(x, torch.ones_like(x), torch.zeros_like(x))[0])
            per_text.append(head.classifier(sum(vectors) / len(vectors)))
            assert len(vectors) == counts[doc]
        want = torch.stack(per_text)
        want.square().sum().backward()
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    for name, grad in got_grads.items():
        torch.testing.assert_close(grad, dict(head.named_parameters())[name].grad, rtol=1e-4, atol=1e-6)
    assert "bert.encoder.layer.0.attention.self.query.weight" in got_grads
