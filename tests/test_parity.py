"""Parity with Hugging Face: `fastbert.Tokenizer` must give exactly what `tokenizers` gives.

The contract (ids, tokens, offsets, word ids, type ids, special-token and
attention masks, sequence ids, and every overflowing window, in order) is
checked on:

- every line of every file in ``../shared/data`` (plus its sentence pairs and
  its CoNLL sentences as pre-split words), untruncated and truncated;
- hypothesis-generated Unicode from all planes (combining marks, every CJK
  block, emoji, control/format characters, odd whitespace, lone surrogates,
  embedded special tokens, words longer than ``max_input_chars_per_word``);
- every truncation strategy and direction, with stride, for single texts,
  pairs and pre-split words;
- the padded arrays of ``tok(...)`` against ``transformers``' BertTokenizerFast;
- five vocabularies/flag sets: the packaged uncased MiniLM, a cased WordPiece
  trained here, the bare ``vocab.txt`` path, and two edited ``tokenizer.json``.

Documented differences, and only these, are accounted for:

- Lone surrogates: `tokenizers` cannot take them at all; fastbert reads each as
  U+FFFD (one code point for one, so character offsets still index the Python
  string). We compare fastbert on the surrogate text with `tokenizers` on the
  text with every surrogate replaced by U+FFFD.
- ``max_length`` smaller than the number of special tokens: `tokenizers`
  computes ``max_length - n_special`` in unsigned arithmetic, wraps around and
  silently does not truncate at all; fastbert raises ``ValueError``. The
  generated truncation cases therefore keep ``max_length >= n_special``, and
  ``test_max_length_below_special_tokens_is_an_error`` pins our behaviour.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastbert

FIELDS = (
    "ids",
    "tokens",
    "type_ids",
    "offsets",
    "word_ids",
    "special_tokens_mask",
    "attention_mask",
    "sequence_ids",
)
STRATEGIES = ("longest_first", "only_first", "only_second")
SURROGATE = re.compile("[\ud800-\udfff]")


# --------------------------------------------------------------------------- helpers
# For bulk comparisons: `tokens` follows from `ids` (same vocabulary) and is the costliest getter.
BULK_FIELDS = tuple(f for f in FIELDS if f != "tokens")


def view(e: Any) -> tuple:
    """Everything an encoding holds, overflowing windows included (recursively, in order)."""
    return (*(getattr(e, f) for f in BULK_FIELDS), [view(o) for o in e.overflowing])


def first_difference(ours: Any, theirs: Any, path: str = "") -> str | None:
    """Name the first field (or window) where two encodings differ, with both values."""
    for f in FIELDS:
        a, b = list(getattr(ours, f)), list(getattr(theirs, f))
        if a != b:
            return f"{path}{f}:\n    ours {a}\n    hf   {b}"
    if len(ours.overflowing) != len(theirs.overflowing):
        return f"{path}overflowing: ours {len(ours.overflowing)} windows, hf {len(theirs.overflowing)}"
    for i, (a, b) in enumerate(zip(ours.overflowing, theirs.overflowing, strict=True)):
        d = first_difference(a, b, f"{path}overflowing[{i}].")
        if d:
            return d
    return None


def report(mismatches: list[int], total: int, describe: Callable[[int], str], what: str) -> str:
    shown = "\n".join(describe(i) for i in mismatches[:5])
    return f"{len(mismatches)} of {total} {what} differ from tokenizers; first ones:\n{shown}"


def hf_safe(x: Any) -> Any:
    """What `tokenizers` gets for our input: each lone surrogate replaced by U+FFFD (see module doc)."""
    if isinstance(x, str):
        return SURROGATE.sub("\ufffd", x)
    if isinstance(x, list | tuple):
        return [hf_safe(w) for w in x]
    return x


def hf_encode_batch(
    hf: Any,
    texts: Sequence[Any],
    pairs: Sequence[Any] | None = None,
    *,
    is_split_into_words: bool = False,
    add_special_tokens: bool = True,
    max_length: int | None = None,
    truncation: str | None = None,
    stride: int = 0,
    truncation_side: str = "right",
) -> list[Any]:
    """`tokenizers` with the same options as `fastbert.Tokenizer.encode_batch`."""
    if truncation is not None:
        hf.enable_truncation(max_length, stride=stride, strategy=truncation, direction=truncation_side)
    try:
        inputs = [hf_safe(t) for t in texts]
        if pairs is not None:
            inputs = list(zip(inputs, (hf_safe(p) for p in pairs), strict=True))
        return hf.encode_batch(
            inputs, is_pretokenized=is_split_into_words, add_special_tokens=add_special_tokens
        )
    finally:
        hf.no_truncation()


def assert_same_batch(tok: fastbert.Tokenizer, hf: Any, texts: Sequence[Any], pairs=None, **kw: Any) -> None:
    """Encode on both sides; both must fail, or both succeed with identical encodings."""
    try:
        theirs = hf_encode_batch(hf, texts, pairs, **kw)
    except BaseException as e:  # `tokenizers` panics (PanicException is a BaseException) on bad strides
        if not isinstance(e, Exception) and type(e).__name__ != "PanicException":
            raise
        with pytest.raises(ValueError):
            tok.encode_batch(texts, pairs, **kw)
        return
    ours = tok.encode_batch(texts, pairs, **kw)
    assert len(ours) == len(theirs)
    for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        d = first_difference(a, b)
        pair = "" if pairs is None else f" + {pairs[i]!r}"
        assert d is None, f"input {i} {texts[i]!r}{pair} with {kw}:\n  {d}"


# ------------------------------------------------------------------- vocabularies
def edited_json(src: Path, dst_dir: Path, **normalizer: Any) -> Path:
    """A copy of ``src`` (tokenizer.json) with some `BertNormalizer` flags changed."""
    spec = json.loads(src.read_text(encoding="utf-8"))
    spec["normalizer"].update(normalizer)
    dst_dir.mkdir(parents=True, exist_ok=True)
    dst = dst_dir / "tokenizer.json"
    dst.write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
    return dst


def train_cased(data_dir: Path, out_dir: Path) -> Path:
    """A cased BERT WordPiece (no lowercasing, accents kept) trained on a slice of the shared data."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors, trainers
    from tokenizers.models import WordPiece

    hf = Tokenizer(WordPiece(unk_token="[UNK]", max_input_chars_per_word=100))
    hf.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=False, lowercase=False
    )
    hf.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    lines: list[str] = []
    for name in ("raw_text/wikitext2_valid.txt", "raw_text/wnut17_twitter.txt", "goemotions/dev.tsv"):
        lines += (data_dir / name).read_text(encoding="utf-8").split("\n")[:4000]
    hf.train_from_iterator(lines, trainers.WordPieceTrainer(vocab_size=3000, special_tokens=specials))
    cls, sep = hf.token_to_id("[CLS]"), hf.token_to_id("[SEP]")
    hf.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "tokenizer.json"
    hf.save(str(path))
    return path


def vocab_txt_only(model_dir: Path, out_dir: Path) -> tuple[fastbert.Tokenizer, Any]:
    """fastbert and transformers' BertTokenizerFast, both from vocab.txt + tokenizer_config.json alone."""
    from transformers import BertTokenizerFast

    out_dir.mkdir(parents=True, exist_ok=True)
    for name in ("vocab.txt", "tokenizer_config.json"):
        shutil.copy(model_dir / name, out_dir / name)
    # transformers 5 ignores `BertTokenizerFast(vocab_file=...)` (it builds a 5-token vocabulary);
    # `from_pretrained` on the folder reads vocab.txt and the flags of tokenizer_config.json.
    ref = BertTokenizerFast.from_pretrained(out_dir)
    assert ref.vocab_size > 1000, "transformers did not read vocab.txt"
    hf = ref.backend_tokenizer
    hf.no_truncation()
    hf.no_padding()
    return fastbert.Tokenizer.from_pretrained(out_dir), hf


VARIANTS = ("uncased", "cased", "vocab_txt", "no_strip_accents", "raw_flags")


class Variants(dict):
    """Name -> (fastbert, tokenizers); a short repr keeps hypothesis' failure reports readable."""

    def __repr__(self) -> str:
        return f"Variants({sorted(self)})"


@pytest.fixture(scope="session")
def variants(
    model_dir: Path,
    data_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
    hf_loader: Callable[[Path], Any],
) -> dict[str, tuple]:
    """(fastbert, tokenizers) for each vocabulary / flag set named in VARIANTS."""
    tmp = tmp_path_factory.mktemp("vocabs")
    src = model_dir / "tokenizer.json"
    out = Variants(uncased=(fastbert.Tokenizer.from_pretrained(model_dir), hf_loader(src)))
    cased = train_cased(data_dir, tmp / "cased")
    out["cased"] = (fastbert.Tokenizer.from_pretrained(cased.parent), hf_loader(cased))
    out["vocab_txt"] = vocab_txt_only(model_dir, tmp / "vocab_txt")
    p = edited_json(src, tmp / "no_strip_accents", strip_accents=False, lowercase=True)
    out["no_strip_accents"] = (fastbert.Tokenizer.from_pretrained(p.parent), hf_loader(p))
    p = edited_json(src, tmp / "raw_flags", handle_chinese_chars=False, clean_text=False)
    out["raw_flags"] = (fastbert.Tokenizer.from_pretrained(p.parent), hf_loader(p))
    for name, (tok, _) in out.items():
        assert tok.backend == "fastbert", f"{name}: fell back to tokenizers ({tok.fallback_reason})"
    return out


# ------------------------------------------------------------------ shared data
def data_lines(data_dir: Path) -> list[tuple[str, int, str]]:
    """(file, line number, line) for every distinct line of every file, where it first occurs.

    Lines are split at "\\n" only (``splitlines`` would also cut at \\x0b, \\x1c-\\x1e, \\x85 and
    U+2028, hiding them from the test). Encoding is a pure function of the line, so a line
    seen twice is compared once: about 306k distinct lines of 693k.
    """
    seen: dict[str, tuple[str, int, str]] = {}
    for path in sorted(p for p in data_dir.rglob("*") if p.is_file()):
        name = str(path.relative_to(data_dir))
        for n, line in enumerate(path.read_text(encoding="utf-8").split("\n")):
            seen.setdefault(line, (name, n + 1, line))
    return list(seen.values())


def tsv_pairs(data_dir: Path) -> list[tuple[str, str]]:
    """The sentence pairs of MRPC and STS-B (header names the two text columns)."""
    pairs = []
    for folder, cols in (("mrpc", ("sentence1", "sentence2")), ("stsb", ("sentence1", "sentence2"))):
        for path in sorted((data_dir / folder).glob("*.tsv")):
            rows = [r.split("\t") for r in path.read_text(encoding="utf-8").split("\n") if r]
            i, j = (rows[0].index(c) for c in cols)
            pairs += [(r[i], r[j]) for r in rows[1:]]
    return pairs


def conll_sentences(data_dir: Path) -> list[list[str]]:
    """Every CoNLL sentence (conll2003, wnut17) as its list of words (first column)."""
    sentences: list[list[str]] = []
    for path in sorted([*data_dir.glob("conll2003/*.txt"), *data_dir.glob("wnut17/*.conll")]):
        words: list[str] = []
        for line in path.read_text(encoding="utf-8").split("\n"):
            if line.strip():
                words.append(line.split("\t")[0] if "\t" in line else line.split(" ")[0])
            elif words:
                sentences.append(words)
                words = []
        if words:
            sentences.append(words)
    return sentences


@pytest.fixture(scope="session")
def all_lines(data_dir: Path) -> list[tuple[str, int, str]]:
    return data_lines(data_dir)


def count_mismatches(ours: list[Any], theirs: list[Any]) -> list[int]:
    assert len(ours) == len(theirs)
    return [i for i, (a, b) in enumerate(zip(ours, theirs, strict=True)) if view(a) != view(b)]


@pytest.mark.parametrize("variant", ["uncased", "cased"])
def test_every_data_line(variants, all_lines, variant):
    tok, hf = variants[variant]
    texts = [line for _, _, line in all_lines]
    bad = count_mismatches(tok.encode_batch(texts), hf_encode_batch(hf, texts))

    def describe(i: int) -> str:
        name, n, line = all_lines[i]
        return f"  {name}:{n} {line[:120]!r}\n  {first_difference(tok.encode(line), hf.encode(line))}"

    assert not bad, report(bad, len(texts), describe, f"data lines ({variant})")


def test_every_data_line_truncated(variants, all_lines):
    """Every line again, cut to 24 tokens with stride 6: half the files from the right, half from the left."""
    tok, hf = variants["uncased"]
    bad_total, total, messages = 0, 0, []
    for side in ("right", "left"):
        rows = [r for k, r in enumerate(all_lines) if (k % 2 == 0) == (side == "right")]
        texts = [line for _, _, line in rows]
        kw = {"max_length": 24, "truncation": "longest_first", "stride": 6, "truncation_side": side}
        bad = count_mismatches(tok.encode_batch(texts, **kw), hf_encode_batch(hf, texts, **kw))
        bad_total += len(bad)
        total += len(texts)
        messages += [f"  {rows[i][0]}:{rows[i][1]} ({side}) {rows[i][2][:120]!r}" for i in bad[:5]]
    assert bad_total == 0, f"{bad_total} of {total} truncated data lines differ; first ones:\n" + "\n".join(
        messages
    )


@pytest.mark.parametrize("variant", ["uncased", "cased"])
def test_data_pairs_and_presplit_words(variants, data_dir, variant):
    """MRPC/STS-B sentence pairs (untruncated and with each strategy) and CoNLL sentences as words."""
    tok, hf = variants[variant]
    pairs = tsv_pairs(data_dir)
    firsts, seconds = [a for a, _ in pairs], [b for _, b in pairs]
    sentences = conll_sentences(data_dir)
    assert len(pairs) > 10_000 and len(sentences) > 25_000
    failures = []

    def check(name: str, a: list, b: list | None, kw: dict) -> list[Any]:
        theirs = hf_encode_batch(hf, a, b, **kw)
        bad = count_mismatches(tok.encode_batch(a, b, **kw), theirs)
        if bad:
            i = bad[0]
            failures.append(
                f"{name}: {len(bad)} of {len(a)} differ, e.g. {a[i]!r} / {None if b is None else b[i]!r}"
            )
        return theirs

    untruncated = check("pairs", firsts, seconds, {})
    check("words", sentences, None, {"is_split_into_words": True})
    check("word pairs", sentences[:-1], sentences[1:], {"is_split_into_words": True})
    words_kw = {"max_length": 20, "stride": 5, "truncation": "longest_first", "truncation_side": "left"}
    check("words truncated", sentences, None, {"is_split_into_words": True, **words_kw})
    max_length = 48
    for k, strategy in enumerate(STRATEGIES):
        kw = {
            "max_length": max_length,
            "truncation": strategy,
            "stride": 4,
            "truncation_side": ("right", "left")[k % 2],
        }
        # `only_*` fails when the other sequence alone leaves no room: such pairs must fail on both sides.
        feasible, infeasible = [], []
        for i, e in enumerate(untruncated):
            lens = [e.sequence_ids.count(0), e.sequence_ids.count(1)]
            to_remove = sum(lens) + 3 - max_length
            # Room left in the sequence to cut (longest_first always leaves >= max_length // 2 - 2).
            room = {"only_first": lens[0], "only_second": lens[1]}.get(strategy, max_length) - to_remove
            (feasible if to_remove <= 0 or room > kw["stride"] else infeasible).append(i)
        check(f"pairs {strategy}", [firsts[i] for i in feasible], [seconds[i] for i in feasible], kw)
        for i in infeasible[:20]:
            assert_same_batch(tok, hf, [firsts[i]], [seconds[i]], **kw)
    assert not failures, "\n".join(failures)


# ---------------------------------------------------------------- generated text
def _chars(*ranges: tuple[int, int]) -> list[str]:
    return [chr(c) for lo, hi in ranges for c in range(lo, hi + 1)]


COMBINING = _chars(
    (0x300, 0x36F),
    (0x483, 0x489),
    (0x591, 0x5BD),
    (0x1AB0, 0x1AFF),
    (0x1DC0, 0x1DFF),
    (0x20D0, 0x20F0),
    (0xFE20, 0xFE2F),
    (0x1E2EC, 0x1E2EF),
    (0x0E31, 0x0E3A),
    (0x093C, 0x094D),
)
# Every CJK Unified Ideographs block and extension (A-I), compatibility blocks, and the edges
# of the ranges BERT surrounds with spaces (tokenizers starts Extension E at 0x2B920, not 0x2B820).
CJK_BLOCKS = [
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0x2CEB0, 0x2EBEF),
    (0x2EBF0, 0x2EE5F),
    (0x30000, 0x3134F),
    (0x31350, 0x323AF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
    (0x3000, 0x303F),
    (0x3040, 0x30FF),
    (0xAC00, 0xD7A3),
]
EMOJI = [
    *_chars(
        (0x1F300, 0x1F64F),
        (0x1F680, 0x1F6FF),
        (0x1F900, 0x1FAFF),
        (0x2600, 0x27BF),
        (0x1F1E6, 0x1F1FF),
        (0x1F3FB, 0x1F3FF),
    ),
    "\u200d",
    "\ufe0f",
    "\u20e3",
    "\U000e0067",
]
CONTROL_FORMAT = [
    *_chars(
        (0x0, 0x1F),
        (0x7F, 0x9F),
        (0x200B, 0x200F),
        (0x202A, 0x202E),
        (0x2060, 0x206F),
        (0xFFF9, 0xFFFB),
        (0xE0000, 0xE0002),
        (0xE0020, 0xE007F),
    ),
    "\u00ad",
    "\u0600",
    "\u061c",
    "\u06dd",
    "\u070f",
    "\u180e",
    "\ufeff",
    "\U000110bd",
    "\U0001bca0",
    "\U0001d173",
    "\ufffd",
    "\ufffe",
    "\uffff",
    "\ue000",
    "\U000f0000",
    "\U0010fffd",
]
WHITESPACE = [
    "\u00a0",
    "\u3000",
    "\u2028",
    "\u2029",
    "\x0b",
    "\x0c",
    "\x1c",
    "\x1d",
    "\x1e",
    "\x1f",
    "\x85",
    "\u1680",
    "\u2000",
    "\u2007",
    "\u200a",
    "\u202f",
    "\u205f",
    " ",
    "\t",
    "\n",
    "\r",
]
# Cased letters from many scripts and Unicode versions: lowercasing must match code point by code point.
CASED = _chars(
    (0x41, 0x5A),
    (0xC0, 0xDE),
    (0x100, 0x24F),
    (0x370, 0x3FF),
    (0x400, 0x52F),
    (0x531, 0x556),
    (0x10A0, 0x10CD),
    (0x13A0, 0x13F5),
    (0x1C80, 0x1CBF),
    (0x1E00, 0x1EFF),
    (0x1F00, 0x1FFF),
    (0x2126, 0x2184),
    (0x24B6, 0x24CF),
    (0x2C00, 0x2C7F),
    (0x2C80, 0x2CF3),
    (0xA640, 0xA69B),
    (0xA722, 0xA7FF),
    (0xAB70, 0xABBF),
    (0xFF21, 0xFF3A),
    (0x10400, 0x1044F),
    (0x104B0, 0x104D3),
    (0x10570, 0x105BC),
    (0x10C80, 0x10CB2),
    (0x10D50, 0x10D65),
    (0x118A0, 0x118BF),
    (0x16E40, 0x16E5F),
    (0x1E900, 0x1E921),
)
PUNCT = [
    *"!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
    *_chars(
        (0x2010, 0x2027),
        (0x3001, 0x3003),
        (0xFF01, 0xFF0F),
        (0xA1, 0xBF),
        (0x2E00, 0x2E5D),
        (0x1F10D, 0x1F10F),
    ),
]
SURROGATES = _chars((0xD800, 0xDFFF))
SPECIAL_TEXTS = [
    "[SEP]",
    "[CLS]",
    "[PAD]",
    "[MASK]",
    "[UNK]",
    "[sep]",
    "[SEP",
    "SEP]",
    "[[SEP]]",
    "[SEP][CLS]",
    "a[SEP]b",
    "[ SEP ]",
    "[MASK]s",
    "##",
    "##a",
    "[UNK]##",
]

CHAR = st.one_of(
    st.characters(codec=None),  # anything, any plane, unassigned included
    st.characters(min_codepoint=0, max_codepoint=0x7F),
    st.sampled_from(COMBINING),
    st.sampled_from(CJK_BLOCKS).flatmap(lambda r: st.integers(*r).map(chr)),
    st.sampled_from(EMOJI),
    st.sampled_from(CONTROL_FORMAT),
    st.sampled_from(WHITESPACE),
    st.sampled_from(CASED),
    st.sampled_from(PUNCT),
    st.sampled_from(SURROGATES),
)
# Words around max_input_chars_per_word (100): plain, accented (NFD grows, stripping shrinks),
# and letters that lowercase to two chars (U+0130) so only the normalized word is too long.
LONG_WORD = st.one_of(
    st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz"), min_size=95, max_size=130),
    st.text(st.sampled_from("aeioué\u0301ÀÉ"), min_size=90, max_size=120),
    st.text(st.sampled_from("a\u0130"), min_size=48, max_size=110),
    st.text(CHAR, min_size=95, max_size=110),
)
PIECE = st.one_of(
    st.text(CHAR, max_size=12),
    st.sampled_from(SPECIAL_TEXTS),
    st.sampled_from([" ", "  ", "\t", "\n", " \u00a0 ", "\r\n"]),
    st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz"), min_size=1, max_size=10),
)
TEXT = st.one_of(
    st.lists(PIECE, max_size=8).map("".join), st.lists(st.one_of(PIECE, LONG_WORD), max_size=4).map("".join)
)
WORDS = st.lists(TEXT.filter(lambda w: len(w) < 60), min_size=1, max_size=6)
HYPOTHESIS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@HYPOTHESIS
@given(text=TEXT, pair=st.none() | TEXT, add_special_tokens=st.booleans())
def test_generated_text(variants, text, pair, add_special_tokens):
    tok, hf = variants["uncased"]
    assert_same_batch(
        tok, hf, [text], None if pair is None else [pair], add_special_tokens=add_special_tokens
    )


@HYPOTHESIS
@given(words=WORDS, pair=st.none() | WORDS)
def test_generated_presplit_words(variants, words, pair):
    tok, hf = variants["uncased"]
    assert_same_batch(tok, hf, [words], None if pair is None else [pair], is_split_into_words=True)


@pytest.mark.parametrize("variant", [v for v in VARIANTS if v != "uncased"])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=TEXT, pair=st.none() | TEXT)
def test_generated_text_other_vocabularies(variants, variant, text, pair):
    tok, hf = variants[variant]
    assert_same_batch(tok, hf, [text], None if pair is None else [pair])


@st.composite
def truncation_cases(draw: st.DrawFn) -> tuple[list, list | None, dict]:
    split = draw(st.booleans())
    one = WORDS if split else TEXT
    pair = draw(st.none() | one)
    text = draw(one)
    add = draw(st.booleans())
    n_special = (3 if pair is not None else 2) if add else 0
    # max_length below the special-token count is excluded: see the module docstring.
    max_length = draw(st.integers(n_special, n_special + 24))
    kw = {
        "is_split_into_words": split,
        "add_special_tokens": add,
        "max_length": max_length,
        "truncation": draw(st.sampled_from(STRATEGIES)),
        "stride": draw(st.integers(0, 8)),
        "truncation_side": draw(st.sampled_from(["right", "left"])),
    }
    return [text], None if pair is None else [pair], kw


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=truncation_cases())
def test_generated_truncation(variants, case):
    texts, pairs, kw = case
    tok, hf = variants["uncased"]
    assert_same_batch(tok, hf, texts, pairs, **kw)


def test_max_length_below_special_tokens_is_an_error(variants):
    tok, _ = variants["uncased"]
    with pytest.raises(ValueError, match="special tokens"):
        tok.encode("some words here", max_length=1, truncation=True)


# ------------------------------------------------------------ every code point
# Planes 0-3 and 14 hold every code point assigned in any Unicode version so far; planes 4-13
# are unassigned and 15-16 private use, whose properties no version changes.
SWEEP = [
    c for lo, hi in ((0, 0x323AF), (0xE0000, 0xE01EF)) for c in range(lo, hi + 1) if not 0xD800 <= c <= 0xDFFF
]


@pytest.mark.parametrize(
    "flags",
    [
        {"lowercase": True, "strip_accents": True},
        {"lowercase": True, "strip_accents": False},
        {"lowercase": False, "strip_accents": True},
        {"lowercase": False, "strip_accents": False, "clean_text": False, "handle_chinese_chars": False},
    ],
    ids=["uncased", "lowercase_only", "strip_only", "raw"],
)
def test_every_code_point(flags, tmp_path):
    """Each code point alone as a word, over a vocabulary of every character `tokenizers` can emit.

    With the MiniLM vocabulary two different normalizations of a rare character both end as
    [UNK]; here every output character of tokenizers' BertNormalizer is a token, so any
    difference in lowercasing, accent stripping, cleaning or CJK handling (e.g. a Unicode
    version difference in `char::to_lowercase`) changes an id or an offset.
    """
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece

    normalizer = normalizers.BertNormalizer(**flags)
    chars: set[str] = set()
    for i in range(0, len(SWEEP), 4096):
        chars.update(normalizer.normalize_str("".join(map(chr, SWEEP[i : i + 4096]))))
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {t: i for i, t in enumerate(specials + sorted(chars - set(specials)))}
    hf = Tokenizer(WordPiece(vocab, unk_token="[UNK]"))
    hf.normalizer = normalizer
    hf.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    hf.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 2), ("[SEP]", 3)],
    )
    hf.add_special_tokens(specials)
    hf.save(str(tmp_path / "tokenizer.json"))
    tok = fastbert.Tokenizer.from_pretrained(tmp_path)
    assert tok.backend == "fastbert", tok.fallback_reason
    lines = [" ".join(map(chr, SWEEP[i : i + 64])) for i in range(0, len(SWEEP), 64)]
    bad = count_mismatches(tok.encode_batch(lines), hf_encode_batch(hf, lines))

    def describe(i: int) -> str:
        return f"  U+{SWEEP[64 * i]:04X}..: {first_difference(tok.encode(lines[i]), hf.encode(lines[i]))}"

    assert not bad, report(bad, len(lines), describe, f"lines of 64 code points ({flags})")


# -------------------------------------------------------- tok(...) vs transformers
@pytest.fixture(scope="session")
def hf_fast(model_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir)


@st.composite
def call_cases(draw: st.DrawFn) -> tuple[list, list | None, dict]:
    """A batch (surrogates included: transformers gets them as U+FFFD) and every option of ``tok(...)``."""
    n = draw(st.integers(1, 4))
    split = draw(st.booleans())
    one = WORDS if split else TEXT
    texts = draw(st.lists(one, min_size=n, max_size=n))
    pairs = draw(st.none() | st.lists(one, min_size=n, max_size=n))
    padding = draw(st.sampled_from([True, "longest", "max_length"]))
    truncation = draw(st.sampled_from([False, True, *STRATEGIES]))
    add = draw(st.booleans())
    n_special = (3 if pairs is not None else 2) if add else 0
    max_length = draw(st.integers(n_special + 1, n_special + 30))
    multiple = draw(st.sampled_from([None, None, 8]))
    if truncation and multiple:
        # transformers refuses to truncate to a length that is not a multiple of
        # pad_to_multiple_of (an argument check of its own, not a tokenizers result).
        max_length = -(-max_length // multiple) * multiple
    kw = {
        "is_split_into_words": split,
        "add_special_tokens": add,
        # transformers warns (an error here) when max_length would be ignored.
        "max_length": max_length if truncation or padding == "max_length" else None,
        "padding": padding,
        "pad_to_multiple_of": multiple,
        "truncation": truncation,
        "stride": draw(st.integers(0, 6)) if truncation else 0,
        "return_offsets_mapping": draw(st.booleans()),
        "return_special_tokens_mask": draw(st.booleans()),
        "return_overflowing_tokens": draw(st.booleans()) if truncation else False,
        "padding_side": draw(st.sampled_from(["right", "left"])),
        "truncation_side": draw(st.sampled_from(["right", "left"])),
    }
    return texts, pairs, kw


PAD_VALUES = {"input_ids": 0, "token_type_ids": 0, "attention_mask": 0, "special_tokens_mask": 1}


class Padded(dict):
    """transformers' unpadded rows padded into arrays, with the `word_ids(row)` of a BatchEncoding."""

    def __init__(self, arrays: dict, words: list[list]) -> None:
        super().__init__(arrays)
        self.words = words

    def word_ids(self, row: int) -> list:
        return self.words[row]


def pad_like_fastbert(unpadded: Any, kw: dict) -> Padded:
    rows = len(unpadded["input_ids"])
    longest = max(len(r) for r in unpadded["input_ids"])
    cols = max(longest, kw["max_length"] or 0) if kw["padding"] == "max_length" else longest
    if kw["pad_to_multiple_of"]:
        cols = -(-cols // kw["pad_to_multiple_of"]) * kw["pad_to_multiple_of"]
    out: dict[str, np.ndarray] = {}
    for key, values in unpadded.items():
        if key == "overflow_to_sample_mapping":
            out[key] = np.asarray(values, dtype=np.int64)
            continue
        shape = (rows, cols, 2) if key == "offset_mapping" else (rows, cols)
        out[key] = np.full(shape, PAD_VALUES.get(key, 0), dtype=np.int64)
        for r, row in enumerate(values):
            n = len(row)
            where = slice(0, n) if kw["padding_side"] == "right" else slice(cols - n, cols)
            if n:
                out[key][r, where] = row
    words = []
    for r in range(rows):
        w = unpadded.word_ids(r)
        pad = [None] * (cols - len(w))
        words.append(w + pad if kw["padding_side"] == "right" else pad + w)
    return Padded(out, words)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=call_cases(), return_tensors=st.sampled_from(["np", "pt"]))
def test_call_matches_transformers(variants, hf_fast, case, return_tensors):
    texts, pairs, kw = case
    tok, _ = variants["uncased"]
    ref_kw = dict(kw)
    hf_fast.padding_side = ref_kw.pop("padding_side")
    hf_fast.truncation_side = ref_kw.pop("truncation_side")
    try:
        expected = hf_fast(hf_safe(texts), hf_safe(pairs), return_tensors="np", **ref_kw)
    except BaseException as e:  # tokenizers' PanicException is a BaseException
        if not isinstance(e, Exception) and type(e).__name__ != "PanicException":
            raise
        with pytest.raises(ValueError):
            tok(texts, pairs, return_tensors=return_tensors, return_word_ids=True, **kw)
        return
    unpadded = hf_fast(hf_safe(texts), hf_safe(pairs), **{**ref_kw, "padding": False})
    longest = max(len(r) for r in unpadded["input_ids"])
    if expected["input_ids"].dtype == object or (
        kw["padding"] == "max_length" and longest > kw["max_length"]
    ):
        # A row longer than transformers' padding target: transformers leaves it longer (a ragged
        # object array, or a width that ignores pad_to_multiple_of). That target is max_length
        # (padding="max_length", no truncation) or the longest *sample* (padding=True: an overflow
        # window can be longer, when tokenizers cuts a pair member to 0 tokens and moves it whole
        # into the window). fastbert pads every row, windows included, to the longest row (and to
        # max_length, rounded up to pad_to_multiple_of); the reference is transformers' own rows,
        # padded that way.
        expected = pad_like_fastbert(unpadded, kw)
    got = tok(texts, pairs, return_tensors=return_tensors, return_word_ids=True, **kw)
    word_ids = np.asarray(got.pop("word_ids"))
    got = {k: np.asarray(v) for k, v in got.items()}
    assert sorted(got) == sorted(expected.keys())
    for key, want in expected.items():
        assert got[key].dtype == np.int64, key
        if key == "offset_mapping" and want.size == 0:
            # No tokens at all: numpy cannot see transformers' empty lists of pairs as (rows, 0, 2).
            want = want.reshape(*want.shape[:2], 2)
        np.testing.assert_array_equal(got[key], want, err_msg=f"{key} with {kw}")
    rows = len(expected["input_ids"])
    want_words = [[-1 if w is None else w for w in expected.word_ids(r)] for r in range(rows)]
    np.testing.assert_array_equal(word_ids, np.array(want_words, dtype=np.int64).reshape(word_ids.shape))


def test_call_overflow_rows_on_data(data_dir, hf_fast, variants):
    """Overflow rows and their sample mapping over real pairs, stride and both sides."""
    tok, _ = variants["uncased"]
    pairs = tsv_pairs(data_dir)[:3000]
    a, b = [p[0] for p in pairs], [p[1] for p in pairs]
    for side in ("right", "left"):
        hf_fast.truncation_side = side
        hf_fast.padding_side = "right"
        kw = {
            "max_length": 40,
            "truncation": "longest_first",
            "stride": 3,
            "padding": "max_length",
            "return_overflowing_tokens": True,
            "return_offsets_mapping": True,
            "return_special_tokens_mask": True,
        }
        want = hf_fast(a, b, return_tensors="np", **kw)
        got = tok(a, b, truncation_side=side, **kw)
        assert sorted(got) == sorted(want.keys())
        for key in want:
            np.testing.assert_array_equal(got[key], want[key], err_msg=f"{key} ({side})")
