"""A slow, readable duplicate finder in pure Python: the specification of ``fastbert.text.dedup``.

The Rust core (``rust/core/src/dedup``) must give exactly what these functions give:
the same normalised words, the same exact-duplicate hash, the same shingle hashes and
the same MinHash signatures, bit for bit (``tests/test_dedup.py`` compares them on real
and generated text). Beside that, :func:`shingle_set` and :func:`jaccard` give the true
Jaccard similarity the estimates are judged against.

Steps, for one document:

1. **Normalise**: lowercase each character (Python's ``str.lower`` of that one character,
   the full Unicode mapping; final sigma ``ς`` becomes ``σ``); words are the maximal runs of characters whose general
   category is a letter, mark or number (L*, M*, N*); everything else separates words.
2. **Exact hash**: each word's UTF-8 hashed with FNV-1a then MurmurHash3's finaliser;
   the sequence of word hashes folded into one 64-bit hash.
3. **Shingles**: ``n`` consecutive words (their hashes), or ``n`` consecutive characters
   of the words joined by single spaces (their code points); a document with fewer than
   ``n`` units is one shingle. Each shingle is folded into 64 bits, of which the high 32
   are its key.
4. **MinHash** (Broder, 1997): permutation ``i`` maps key ``x`` to
   ``((a_i * x + b_i) mod 2**64) >> 32`` (Dietzfelbinger's multiply-add-shift), with
   ``a_i, b_i`` drawn from SplitMix64 seeded with ``PERMUTATION_SEED``; the signature
   is each permutation's minimum over the shingles.

The categories come from Python's ``unicodedata`` here and from the ``unicode_categories``
tables in Rust; lowercasing from each language's own tables. They agree on every
character assigned in both Unicode versions, which is what the comparison tests draw.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from typing import Literal, TypeVar

Unit = Literal["word", "char"]
T = TypeVar("T")

MASK64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
EXACT_SEED = 0x65786163745F7631  # "exact_v1"
WORD_SEED = 0x776F72645F763100  # "word_v1"
CHAR_SEED = 0x636861725F763100  # "char_v1"
PERMUTATION_SEED = 0x6661737462657274  # "fastbert"
U32_MAX = (1 << 32) - 1


# ----------------------------------------------------------------------- hashing
def fmix64(h: int) -> int:
    """MurmurHash3's 64-bit finaliser."""
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & MASK64
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & MASK64
    h ^= h >> 33
    return h


def fold(seed: int, items: Iterable[int]) -> int:
    """A polynomial in GOLDEN over ``items`` started at ``seed``, then :func:`fmix64`."""
    h = seed
    for x in items:
        h = (h * GOLDEN + x) & MASK64
    return fmix64(h)


def bytes_hash(data: bytes) -> int:
    """FNV-1a over ``data``, then :func:`fmix64`."""
    h = FNV_OFFSET
    for b in data:
        h = ((h ^ b) * FNV_PRIME) & MASK64
    return fmix64(h)


def splitmix64(seed: int, count: int) -> list[int]:
    """The first ``count`` outputs of SplitMix64 (Steele, Lea & Flood, 2014)."""
    out = []
    state = seed
    for _ in range(count):
        state = (state + GOLDEN) & MASK64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        out.append(z ^ (z >> 31))
    return out


# ----------------------------------------------------------------------- text
def is_word_char(c: str) -> bool:
    return unicodedata.category(c)[0] in "LMN"


def normalized_words(text: str) -> list[str]:
    """The words of ``text`` after lowercasing, as step 1 defines them."""
    words: list[str] = []
    current: list[str] = []
    for c in text:
        for lower in c.lower():
            lower = "σ" if lower == "ς" else lower  # final sigma is a positional form of σ
            if is_word_char(lower):
                current.append(lower)
            elif current:
                words.append("".join(current))
                current = []
    if current:
        words.append("".join(current))
    return words


def normalize(text: str) -> str:
    """The normalised text: the words joined by single spaces."""
    return " ".join(normalized_words(text))


def word_hash(word: str) -> int:
    # Lone surrogates cannot be UTF-8; the Rust side never sees them (the bindings
    # replace each with U+FFFD, which is a symbol and so never part of a word).
    return bytes_hash(word.encode("utf-8"))


def exact_hash(text: str) -> int:
    return fold(EXACT_SEED, (word_hash(w) for w in normalized_words(text)))


def shingle_units(text: str, unit: Unit) -> tuple[int, list[int]]:
    """(seed, units): word hashes or code points of the normalised text."""
    words = normalized_words(text)
    if unit == "word":
        return WORD_SEED, [word_hash(w) for w in words]
    if unit == "char":
        return CHAR_SEED, [ord(c) for c in " ".join(words)]
    raise ValueError(f"unit must be 'word' or 'char', not {unit!r}")


def windows(units: Sequence[T], n: int) -> list[Sequence[T]]:
    """Every run of ``n`` consecutive units; all of them when there are fewer."""
    if not units:
        return []
    width = max(1, min(n, len(units)))
    return [units[i : i + width] for i in range(len(units) - width + 1)]


def shingle_keys(text: str, unit: Unit, n: int) -> list[int]:
    """The 32-bit key of every shingle, in order, repeats included."""
    seed, units = shingle_units(text, unit)
    return [fold(seed, w) >> 32 for w in windows(units, n)]


def shingle_set(text: str, unit: Unit, n: int) -> set[tuple[str, ...]] | set[str]:
    """The shingles themselves (word tuples or substrings), for true Jaccard similarity."""
    words = normalized_words(text)
    if unit == "word":
        return {tuple(w) for w in windows(words, n)}
    return {"".join(w) for w in windows(" ".join(words), n)}


def jaccard(a: set, b: set) -> float:
    """|A ∩ B| / |A ∪ B|; 0 when both are empty."""
    union = len(a | b)
    return len(a & b) / union if union else 0.0


# ----------------------------------------------------------------------- MinHash
def permutations(num_perm: int) -> list[tuple[int, int]]:
    """``(a_i, b_i)`` of each permutation, drawn in that order from SplitMix64."""
    stream = splitmix64(PERMUTATION_SEED, 2 * num_perm)
    return [(stream[2 * i], stream[2 * i + 1]) for i in range(num_perm)]


def signature(text: str, num_perm: int, n: int, unit: Unit) -> list[int]:
    """Each permutation's minimum over the shingle keys (2**32 - 1 when there are none)."""
    keys = shingle_keys(text, unit, n)
    return [
        min((((a * x + b) & MASK64) >> 32 for x in keys), default=U32_MAX) for a, b in permutations(num_perm)
    ]


def estimated_jaccard(sig_a: Sequence[int], sig_b: Sequence[int]) -> float:
    """The fraction of permutations on which two signatures agree, compared as the index stores
    them: their low 16 bits (two different values agree by chance with probability 2⁻¹⁶)."""
    return sum((x & 0xFFFF) == (y & 0xFFFF) for x, y in zip(sig_a, sig_b, strict=True)) / len(sig_a)
