"""A slow, readable BERT WordPiece tokenizer in pure Python.

It is the specification the Rust core is tested against (tests/test_reference.py),
written to be read rather than run fast: BERT's ``BasicTokenizer`` +
``WordpieceTokenizer`` (Devlin et al., 2019) as Hugging Face ``tokenizers``
implements them (``BertNormalizer``, ``BertPreTokenizer``, greedy longest match
first), with character offsets into the original text.

Two places where Python's own Unicode tables could disagree with the Rust crates
that both ``tokenizers`` and fastbert use (general categories of unassigned code
points, and the Unicode version of ``str.lower``) make this a reference for
assigned characters only; the tests draw from those.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass


def is_whitespace(c: str) -> bool:
    # Rust's char::is_whitespace is Unicode White_Space; Python's isspace() adds
    # U+001C..U+001F, which are not White_Space, so list the property explicitly.
    return c in "\t\n\r" or c in _WHITE_SPACE


_WHITE_SPACE = frozenset(
    "\u0009\u000a\u000b\u000c\u000d\u0020\u0085\u00a0\u1680"
    "\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)


def is_control(c: str) -> bool:
    """General category C* (control, format, unassigned, private use), minus tab/newline/CR."""
    if c in "\t\n\r":
        return False
    return unicodedata.category(c).startswith("C")


def is_chinese_char(c: str) -> bool:
    cp = ord(c)
    return (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0x20000 <= cp <= 0x2A6DF
        or 0x2A700 <= cp <= 0x2B73F
        or 0x2B740 <= cp <= 0x2B81F
        or 0x2B920 <= cp <= 0x2CEAF
        or 0xF900 <= cp <= 0xFAFF
        or 0x2F800 <= cp <= 0x2FA1F
    )


def is_punctuation(c: str) -> bool:
    cp = ord(c)
    ascii_punct = 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126
    return ascii_punct or unicodedata.category(c).startswith("P")


@dataclass(frozen=True)
class Flags:
    clean_text: bool = True
    handle_chinese_chars: bool = True
    strip_accents: bool = True
    lowercase: bool = True


def normalize(text: str, flags: Flags) -> list[tuple[str, int]]:
    """Normalized characters, each with the index of the original character it came from."""
    chars: list[tuple[str, int]] = []
    for i, c in enumerate(text):
        if flags.clean_text:
            if c in "\x00\ufffd" or is_control(c):
                continue
            if is_whitespace(c):
                c = " "
        if flags.handle_chinese_chars and is_chinese_char(c):
            chars += [(" ", i), (c, i), (" ", i)]
        else:
            chars.append((c, i))
    if flags.strip_accents:
        # NFD per character, then canonical reordering is irrelevant once the
        # non-spacing marks (the reordered ones, in practice) are dropped.
        chars = [
            (d, i)
            for c, i in chars
            for d in unicodedata.normalize("NFD", c)
            if unicodedata.category(d) != "Mn"
        ]
    if flags.lowercase:
        chars = [(lc, i) for c, i in chars for lc in c.lower()]
    return chars


def pre_tokenize(chars: list[tuple[str, int]]) -> list[list[tuple[str, int]]]:
    """Split on whitespace (dropped) and punctuation (kept, one char per word)."""
    words: list[list[tuple[str, int]]] = []
    current: list[tuple[str, int]] = []
    for c, i in chars:
        if is_whitespace(c):
            if current:
                words.append(current)
            current = []
        elif is_punctuation(c):
            if current:
                words.append(current)
            words.append([(c, i)])
            current = []
        else:
            current.append((c, i))
    if current:
        words.append(current)
    return words


def wordpiece(
    word: str, vocab: Mapping[str, int], unk: str, prefix: str = "##", max_chars: int = 100
) -> list[tuple[str, int, int]]:
    """Greedy longest-match-first; ``(token, start, end)`` in characters of ``word``."""
    if len(word) > max_chars:
        return [(unk, 0, len(word))]
    pieces = []
    start = 0
    while start < len(word):
        end = len(word)
        while end > start:
            candidate = word[start:end] if start == 0 else prefix + word[start:end]
            if candidate in vocab:
                pieces.append((candidate, start, end))
                break
            end -= 1
        else:
            return [(unk, 0, len(word))]
        start = end
    return pieces


def encode(
    text: str, vocab: Mapping[str, int], flags: Flags, unk: str = "[UNK]"
) -> list[tuple[int, int, int, int]]:
    """``(id, start, end, word_index)`` per token, offsets in characters of ``text``.

    No special tokens and no added-token matching: this is the model's view of plain text.
    """
    out = []
    for w, word in enumerate(pre_tokenize(normalize(text, flags))):
        s = "".join(c for c, _ in word)
        for token, start, end in wordpiece(s, vocab, unk):
            sources = [i for _, i in word[start:end]]
            out.append((vocab[token], min(sources), max(sources) + 1, w))
    return out
