"""Every encoder family's tokenizer through fastbert: WordPiece for BERT / DistilBERT / ELECTRA (the
Rust core), byte-level BPE for RoBERTa and ModernBERT, SentencePiece Unigram for XLM-R and
DeBERTa-v3 (the ``tokenizers`` fallback), each trained here on the shared raw text
(`family_tokenizers`) and loaded by both fastbert and ``transformers.AutoTokenizer``.

For each family: ids, type ids, offsets and word ids as transformers gives them (texts, pairs,
truncation, arbitrary text); labels of pre-split words on each word's first token, where
transformers' ``word_ids()`` loop puts them with ``is_split_into_words=True`` (and
``add_prefix_space=True`` for byte-level BPE), including words that start with a bare ``▁`` or
``Ġ`` token; windows that put every token of a text back in place; the long-text policies; and
MLM's mask token and special tokens read from the tokenizer's own files.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from family_tokenizers import STYLES, write_tokenizer
from hypothesis import given, settings
from hypothesis import strategies as st

import fastbert
from fastbert.config import FinetuneConfig
from fastbert.data import Examples
from fastbert.features.long_text import head_tail_features, head_tail_reference, window_features
from fastbert.text.align import IGNORE_INDEX, bio_labels, spans_to_bio, token_to_entities, tokenize_and_align
from fastbert.text.chunk import chunk_texts, merge_token_predictions
from fastbert.training.masking import mask_tokens, mlm_spec

SETTINGS = settings(max_examples=25, deadline=None)
#: The tokens that mark a word start on their own (SentencePiece ▁, byte-level BPE's space).
BARE_WORD_STARTS = {"▁", "Ġ"}


@dataclass
class Family:
    style: str
    folder: Path
    tok: fastbert.Tokenizer
    #: transformers' tokenizer as the folder configures it (running text).
    hf: Any
    #: transformers' tokenizer for pre-split words (``add_prefix_space=True`` where it matters).
    hf_words: Any


@pytest.fixture(scope="session")
def family_of(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Family]:
    """Each style built once per session, on first use."""
    from tokenizers import pre_tokenizers
    from transformers import AutoTokenizer

    built: dict[str, Family] = {}

    def get(style: str) -> Family:
        if style not in built:
            folder = tmp_path_factory.mktemp(style)
            write_tokenizer(folder, style)
            hf = AutoTokenizer.from_pretrained(folder)
            hf_words = hf
            if style.endswith("-bpe"):
                hf_words = AutoTokenizer.from_pretrained(folder, add_prefix_space=True)
            if style == "modernbert-bpe":
                # transformers 5 keeps a PreTrainedTokenizerFast's tokenizer.json as it is and
                # ignores add_prefix_space; set it on the pre-tokenizer, as v4 did.
                hf_words.backend_tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(
                    add_prefix_space=True, trim_offsets=True, use_regex=True
                )
            tok = fastbert.Tokenizer.from_pretrained(folder)
            built[style] = Family(style, folder, tok, hf, hf_words)
        return built[style]

    return get


@pytest.fixture(scope="module", params=STYLES)
def family(request: pytest.FixtureRequest, family_of: Callable[[str], Family]) -> Family:
    return family_of(request.param)


# ----------------------------------------------------------------------------- data
def _column(path: Path, column: int, limit: int) -> list[str]:
    rows = path.read_text(encoding="utf-8").split("\n")[1:]
    return [r.split("\t")[column] for r in rows if r][:limit]


def _conll(path: Path, limit: int) -> list[tuple[list[str], list[str]]]:
    sentences = []
    for block in path.read_text(encoding="utf-8").split("\n\n"):
        rows = [line.split() for line in block.strip().split("\n") if line.strip()]
        rows = [r for r in rows if r[0] != "-DOCSTART-"]
        if rows:
            sentences.append(([r[0] for r in rows], [r[-1] for r in rows]))
        if len(sentences) == limit:
            break
    return sentences


@pytest.fixture(scope="module")
def texts(data_dir: Path) -> list[str]:
    """SST-2 sentences, held-out tweets (training used each file's first 300 lines) and edge cases."""
    tweets = [
        t
        for t in (data_dir / "raw_text" / "wnut17_twitter.txt")
        .read_text(encoding="utf-8")
        .split("\n")[5000:5040]
        if t
    ]
    edge = [
        "",
        "x",
        "  two  spaces, then a tab\tand a newline\n",
        "naïve café 東京 Zzyzx",
        "a <mask> or [MASK]",
    ]
    return _column(data_dir / "sst2" / "dev.tsv", 0, 40) + tweets + edge


@pytest.fixture(scope="module")
def pairs(data_dir: Path) -> tuple[list[str], list[str]]:
    path = data_dir / "mrpc" / "dev.tsv"
    return _column(path, 3, 40), _column(path, 4, 40)


@pytest.fixture(scope="module")
def sentences(data_dir: Path) -> list[tuple[list[str], list[str]]]:
    """Pre-split, tagged sentences: CoNLL-2003 (news) and WNUT-17 (tweets)."""
    return _conll(data_dir / "conll2003" / "dev.txt", 120) + _conll(data_dir / "wnut17" / "dev.conll", 120)


@pytest.fixture(scope="module")
def long_texts(data_dir: Path) -> list[str]:
    lines = (data_dir / "raw_text" / "wikitext2_test.txt").read_text(encoding="utf-8").split("\n")
    paragraphs = [line.strip() for line in lines if len(line.split()) > 80]
    return [*paragraphs[:6], "", "short"]


# ----------------------------------------------------------------------------- encoding
def test_loads_with_the_families_backend_and_vocabulary(family: Family) -> None:
    tok, hf = family.tok, family.hf
    assert tok.backend == ("fastbert" if family.style == "bert-wordpiece" else "tokenizers")
    assert tok.vocab_size == len(hf) == 1000
    assert tok.pad_token_id == hf.pad_token_id
    assert tok.model_max_length == hf.model_max_length
    for pair in (False, True):
        assert tok.num_special_tokens_to_add(pair) == hf.num_special_tokens_to_add(pair)


CALLS = {"whole": {}, "truncated": {"truncation": True, "max_length": 20}}


def assert_same_arrays(got: dict[str, np.ndarray], want: Any, pad_id: int) -> None:
    real = np.asarray(want["attention_mask"]) == 1
    np.testing.assert_array_equal(got["attention_mask"], want["attention_mask"])
    np.testing.assert_array_equal(got["input_ids"][real], np.asarray(want["input_ids"])[real])
    assert (got["input_ids"][~real] == pad_id).all()
    for key in ("token_type_ids", "offset_mapping", "special_tokens_mask"):
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    words = [[-1 if w is None else w for w in want.word_ids(r)] for r in range(len(real))]
    np.testing.assert_array_equal(got["word_ids"], np.array(words, dtype=np.int64).reshape(real.shape))


@pytest.mark.parametrize("call", list(CALLS))
@pytest.mark.parametrize("with_pairs", [False, True], ids=["texts", "pairs"])
def test_texts_and_pairs_encode_as_transformers(
    family: Family, texts: list[str], pairs: tuple[list[str], list[str]], call: str, with_pairs: bool
) -> None:
    """Ids, token type ids (each post-processor's own: 0/1 for BERT, DeBERTa and ModernBERT, all 0
    for RoBERTa and XLM-R), offsets, special-token masks and word ids."""
    first, second = pairs if with_pairs else (texts, None)
    kw: dict[str, Any] = {"padding": True, "return_offsets_mapping": True, "return_special_tokens_mask": True}
    got = family.tok(first, second, return_word_ids=True, **kw, **CALLS[call])
    want = family.hf(first, second, return_tensors="np", return_token_type_ids=True, **kw, **CALLS[call])
    assert_same_arrays(got, want, family.tok.pad_token_id)
    if with_pairs and family.style in ("bert-wordpiece", "deberta-unigram", "modernbert-bpe"):
        assert got["token_type_ids"].max() == 1
    for text in first[:5]:
        assert family.tok.encode(text).ids == family.hf(text)["input_ids"]


@SETTINGS
@given(text=st.text(st.characters(codec="utf-8"), max_size=40))
def test_any_text_encodes_as_transformers(family: Family, text: str) -> None:
    ours = family.tok.encode(text)
    theirs = family.hf(text, return_offsets_mapping=True)
    assert ours.ids == theirs["input_ids"]
    assert [tuple(o) for o in ours.offsets] == [tuple(o) for o in theirs["offset_mapping"]]
    assert ours.word_ids == theirs.word_ids()


# ----------------------------------------------------------------------------- alignment
def word_ids_loop(word_ids: list[int | None], labels: list[int]) -> list[int]:
    """transformers' run_ner.py: a word's first token gets its label, every other token -100."""
    out, previous = [], None
    for word in word_ids:
        out.append(IGNORE_INDEX if word is None or word == previous else labels[word])
        previous = word
    return out


def test_pre_split_words_label_their_first_token_as_transformers_does(
    family: Family, sentences: list[tuple[list[str], list[str]]]
) -> None:
    words = [w for w, _ in sentences]
    names = sorted({t for _, tags in sentences for t in tags})
    labels = [[names.index(t) for t in tags] for _, tags in sentences]
    out = tokenize_and_align(family.tok, words, labels)
    want = family.hf_words(words, is_split_into_words=True)
    bare_starts = 0
    for i, lab in enumerate(labels):
        ids, word_ids = want["input_ids"][i], want.word_ids(i)
        n = len(ids)
        assert out["input_ids"][i, :n].tolist() == ids, i
        assert out["word_ids"][i, :n].tolist() == [-1 if k is None else k for k in word_ids], i
        assert out["labels"][i, :n].tolist() == word_ids_loop(word_ids, lab), i
        assert (out["labels"][i, n:] == IGNORE_INDEX).all()
        tokens = family.hf_words.convert_ids_to_tokens(ids)
        bare_starts += sum(
            1 for k, t in enumerate(tokens) if t in BARE_WORD_STARTS and word_ids[k] != word_ids[k - 1]
        )
    # The data exercises words whose first token is a bare ▁ / Ġ (then that token carries the label).
    assert bare_starts > 0 or family.style == "bert-wordpiece"


def test_pre_split_words_are_encoded_as_after_a_space(
    family: Family, sentences: list[tuple[list[str], list[str]]]
) -> None:
    """Every word, the first included, gets the tokens it has in running text after another word
    ("Ġword", "▁word"), whatever the file's add_prefix_space: what pre-training mostly saw."""
    tok = family.tok
    for words, _ in sentences[:40]:
        split = tok.encode(words, is_split_into_words=True, add_special_tokens=False)
        for k, word in enumerate(words):
            in_text = tok.encode("x " + word, add_special_tokens=False)
            after_x = [t for t, w in zip(in_text.tokens, in_text.word_ids, strict=True) if w != 0]
            assert [t for t, w in zip(split.tokens, split.word_ids, strict=True) if w == k] == after_x, word
    # Running text keeps the file's own setting: no space is added before the first word.
    if family.style in ("roberta-bpe", "modernbert-bpe"):
        assert not tok.encode("Hello", add_special_tokens=False).tokens[0].startswith("Ġ")


@pytest.mark.parametrize(
    ("style", "pre_tokenizer"),
    [
        ("xlmr-unigram", {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "never", "split": True}),
        (
            "deberta-unigram",
            {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": True},
        ),
        (
            "modernbert-bpe",
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        ),
    ],
    ids=["never", "first", "bytelevel"],
)
def test_pre_split_words_get_a_word_start_whatever_the_files_prefix_setting(
    family_of: Callable[[str], Family],
    tmp_path: Path,
    sentences: list[tuple[list[str], list[str]]],
    style: str,
    pre_tokenizer: dict[str, Any],
) -> None:
    """A pre-tokenizer that adds no ▁ (or Ġ) before a text's first word still gives pre-split words
    their word-start tokens, as transformers' ``add_prefix_space=True`` does."""
    original = family_of(style)
    spec = json.loads((original.folder / "tokenizer.json").read_text(encoding="utf-8"))
    spec["pre_tokenizer"] = pre_tokenizer
    shutil.copytree(original.folder, tmp_path / style)
    (tmp_path / style / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")
    tok = fastbert.Tokenizer.from_pretrained(tmp_path / style)
    words = [w for w, _ in sentences[:30]]
    np.testing.assert_array_equal(
        tok(words, is_split_into_words=True, padding=True)["input_ids"],
        original.tok(words, is_split_into_words=True, padding=True)["input_ids"],
    )
    assert (
        tok.encode(["x"], is_split_into_words=True, add_special_tokens=False).tokens[0][0] in BARE_WORD_STARTS
    )


WORD = st.text(st.characters(categories=("L", "N", "P", "S")), min_size=1, max_size=8)


@SETTINGS
@given(words=st.lists(WORD, min_size=1, max_size=8))
def test_any_words_get_one_label_on_their_first_token(family: Family, words: list[str]) -> None:
    labels = [list(range(len(words)))]
    out = tokenize_and_align(family.tok, [words], labels)
    want = family.hf_words(words, is_split_into_words=True)
    n = len(want["input_ids"])
    assert out["input_ids"][0, :n].tolist() == want["input_ids"]
    assert out["labels"][0, :n].tolist() == word_ids_loop(want.word_ids(), labels[0])
    # Every word keeps at least one token, so each label appears once, in word order.
    assert out["labels"][0][out["labels"][0] != IGNORE_INDEX].tolist() == labels[0]


def test_character_spans_round_trip_through_bio_and_entities(
    family: Family, sentences: list[tuple[list[str], list[str]]]
) -> None:
    """Running text with character-span entities → BIO token labels → entities decoded token by
    token give the spans back, once the space some offsets start with (DeBERTa-v3, ModernBERT)
    is stripped."""
    texts, spans = [], []
    for words, tags in sentences[:120]:
        text, found, previous = "", [], "O"
        for word, tag in zip(words, tags, strict=True):
            start = len(text) + (1 if text else 0)
            text = f"{text} {word}" if text else word
            if tag.startswith("I-") and previous[2:] == tag[2:]:
                found[-1][1] = len(text)
            elif tag != "O":
                found.append([start, len(text), tag[2:]])
            previous = tag
        texts.append(text)
        spans.append([tuple(s) for s in found])
    types = sorted({s[2] for row in spans for s in row})
    enc = family.tok(texts, padding=True, return_offsets_mapping=True, return_word_ids=True)
    labels = spans_to_bio(enc["offset_mapping"], spans, types, word_ids=enc["word_ids"])
    found = token_to_entities(
        enc["offset_mapping"], enc["word_ids"], labels, bio_labels(types), "none", texts
    )
    for row, (text, want) in enumerate(zip(texts, spans, strict=True)):
        got = []
        for e in found[row]:
            lead = len(e["text"]) - len(e["text"].lstrip())
            got.append((e["start"] + lead, e["end"], e["label"]))
        assert got == want, (row, text)
    assert sum(map(len, spans)) > 100


# ----------------------------------------------------------------------------- windows
def test_windows_are_transformers_overflow_and_put_every_token_back(
    family: Family, long_texts: list[str]
) -> None:
    tok = family.tok
    out = chunk_texts(tok, long_texts, max_length=24, stride=6)
    want = family.hf(
        long_texts, truncation=True, max_length=24, stride=6, return_overflowing_tokens=True, padding=True
    )
    np.testing.assert_array_equal(out["window_to_sample"], want["overflow_to_sample_mapping"])
    real = np.asarray(want["attention_mask"]) == 1
    np.testing.assert_array_equal(out["input_ids"][real], np.asarray(want["input_ids"])[real])
    merged = merge_token_predictions(out, out["input_ids"])
    for s, text in enumerate(long_texts):
        ids = tok.encode(text, add_special_tokens=False).ids
        assert merged[s, : len(ids)].tolist() == ids, s
        assert (merged[s, len(ids) :] == -1).all()
    assert out["window_to_sample"].tolist().count(0) > 3


def test_pair_windows_cut_the_second_text_with_its_type_ids(family: Family, long_texts: list[str]) -> None:
    tok = family.tok
    questions = [f"what is in text {i}?" for i in range(len(long_texts))]
    kw: dict[str, Any] = {"max_length": 40, "stride": 8}
    out = chunk_texts(tok, questions, pairs=long_texts, **kw)
    want = family.hf(
        questions,
        long_texts,
        truncation="only_second",
        return_overflowing_tokens=True,
        return_token_type_ids=True,
        padding=True,
        **kw,
    )
    real = np.asarray(want["attention_mask"]) == 1
    np.testing.assert_array_equal(out["input_ids"][real], np.asarray(want["input_ids"])[real])
    np.testing.assert_array_equal(out["token_type_ids"], want["token_type_ids"])
    merged = merge_token_predictions(out, out["input_ids"])
    for s, text in enumerate(long_texts):
        ids = tok.encode(text, add_special_tokens=False).ids
        assert merged[s, : len(ids)].tolist() == ids, s


def test_word_windows_keep_each_tokens_word(
    family: Family, sentences: list[tuple[list[str], list[str]]]
) -> None:
    docs = [[w for words, _ in sentences[k : k + 6] for w in words] for k in range(0, 60, 6)]
    out = chunk_texts(family.tok, docs, max_length=24, stride=6, is_split_into_words=True)
    merged = merge_token_predictions(out, out["word_ids"])
    for s, words in enumerate(docs):
        enc = family.tok.encode(words, is_split_into_words=True, add_special_tokens=False)
        assert merged[s, : len(enc.ids)].tolist() == enc.word_ids, s


@SETTINGS
@given(text=st.text(st.characters(codec="utf-8"), max_size=120), max_length=st.integers(6, 20))
def test_any_text_windows_put_its_tokens_back(family: Family, text: str, max_length: int) -> None:
    stride = (max_length - 4) // 2
    out = chunk_texts(family.tok, [text], max_length=max_length, stride=stride)
    ids = family.tok.encode(text, add_special_tokens=False).ids
    assert merge_token_predictions(out, out["input_ids"])[0, : len(ids)].tolist() == ids
    assert int(out["sample_num_tokens"][0]) == len(ids)


# ----------------------------------------------------------------------------- long texts
def test_head_tail_keeps_the_first_and_last_tokens(family: Family, long_texts: list[str]) -> None:
    cfg = FinetuneConfig(task="classification", long_text="head_tail", max_length=32, long_text_head=10)
    ex = Examples(long_texts, None, None, None, "<test>", np.arange(1, len(long_texts) + 1))
    feats = head_tail_features(family.tok, ex, cfg)
    start, *_, end = family.tok.encode("x").ids
    for i, text in enumerate(long_texts):
        ids = family.tok.encode(text, add_special_tokens=False).ids
        row = head_tail_reference(ids, 30, 10, start, end)
        assert feats.input_ids[i, : len(row)].tolist() == row, i
        assert int(feats.lengths[i]) == len(row)


def test_token_windows_label_each_words_first_token(
    family: Family, sentences: list[tuple[list[str], list[str]]]
) -> None:
    docs = [[w for words, _ in sentences[k : k + 6] for w in words] for k in range(0, 36, 6)]
    labels = [np.arange(len(words)) % 5 for words in docs]
    cfg = FinetuneConfig(task="token", long_text="chunk_vote", max_length=24, long_text_stride=6)
    ex = Examples(docs, None, labels, ["a", "b", "c", "d", "e"], "<test>", np.arange(1, len(docs) + 1))
    feats = window_features(family.tok, ex, cfg)
    assert feats.word_ids is not None and feats.labels is not None and feats.document_word_ids is not None
    windows = chunk_texts(family.tok, docs, max_length=24, stride=6, is_split_into_words=True)
    for r, s in enumerate(windows["window_to_sample"]):
        row = [None if w < 0 else int(w) for w in feats.word_ids[r]]
        assert feats.labels[r].tolist() == word_ids_loop(row, labels[s].tolist()), r
    for s, words in enumerate(docs):
        enc = family.tok.encode(words, is_split_into_words=True, add_special_tokens=False)
        assert feats.document_word_ids[s, : len(enc.ids)].tolist() == enc.word_ids


# ----------------------------------------------------------------------------- MLM
def test_mlm_masks_with_the_tokenizers_own_mask_and_never_a_special_token(
    family: Family, texts: list[str], pairs: tuple[list[str], list[str]]
) -> None:
    spec = mlm_spec(family.tok, FinetuneConfig(task="mlm", mlm_probability=0.5))
    hf = family.hf
    assert spec["mask_id"] == hf.mask_token_id == family.tok.mask_token_id
    assert family.tok.mask_token == hf.mask_token
    assert spec["special_ids"].tolist() == sorted(hf.all_special_ids) == family.tok.all_special_ids
    assert spec["vocab_size"] == len(hf)
    batch = {k: torch.from_numpy(v) for k, v in family.tok(*pairs, padding=True).items()}
    inputs, labels = mask_tokens(batch, generator=torch.Generator().manual_seed(0), **spec)
    special = torch.isin(batch["input_ids"], spec["special_ids"]) | (batch["attention_mask"] == 0)
    assert (labels[special] == IGNORE_INDEX).all() and torch.equal(
        inputs[special], batch["input_ids"][special]
    )
    selected = labels != IGNORE_INDEX
    assert 0.4 < float(selected.sum()) / float((~special).sum()) < 0.6
    assert 0.7 < float((inputs[selected] == spec["mask_id"]).float().mean()) < 0.9


@pytest.mark.parametrize("style", ["bert-wordpiece", "roberta-bpe"], ids=["rust", "tokenizers"])
def test_a_tokenizer_without_a_mask_token_is_an_error_naming_its_folder(
    family_of: Callable[[str], Family], tmp_path: Path, style: str
) -> None:
    """The mask token renamed away in every file, and the files' mask_token dropped."""
    mask = "[MASK]" if style == "bert-wordpiece" else "<mask>"
    folder = tmp_path / "no-mask"
    shutil.copytree(family_of(style).folder, folder)
    for path in folder.iterdir():
        text = path.read_text(encoding="utf-8").replace(json.dumps(mask)[1:-1], "[NOT-A-MASK]")
        if path.name.endswith("config.json") or path.name == "special_tokens_map.json":
            values = json.loads(text)
            values.pop("mask_token", None)
            text = json.dumps(values)
        path.write_text(text, encoding="utf-8")
    tok = fastbert.Tokenizer.from_pretrained(folder)
    assert tok.mask_token is None and tok.mask_token_id is None
    with pytest.raises(ValueError, match="mask token") as error:
        mlm_spec(tok, FinetuneConfig(task="mlm"))
    assert str(folder) in str(error.value)
