"""Typed stub of ``fastbert._core``, the compiled PyO3 module (``rust/py/src``).

``tests/test_stub.py`` checks it against the compiled module: the same names,
the same methods per class, and the same parameter names, kinds and defaults
wherever the module carries a ``__text_signature__``. Arrays are C-contiguous
numpy arrays; shapes are given as ``(rows, cols)`` etc. in the docstrings.
"""

from collections.abc import Sequence
from os import PathLike
from pathlib import Path
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

__version__: Final[str]

_Inputs = Sequence[str] | Sequence[Sequence[str]]
_I64 = NDArray[np.int64]
_F32 = NDArray[np.float32]

class UnsupportedTokenizerError(ValueError):
    """The tokenizer is valid but is not BERT WordPiece as fastbert implements it."""

class InternalError(RuntimeError):
    """A bug inside fastbert's Rust core (a caught panic)."""

class Encoding:
    """The tokens of one input, with everything alignment and chunking need."""

    @property
    def ids(self) -> list[int]: ...
    @property
    def type_ids(self) -> list[int]: ...
    @property
    def tokens(self) -> list[str]: ...
    @property
    def offsets(self) -> list[tuple[int, int]]:
        """``(start, end)`` character offsets into the input (into the word, for pre-split input)."""
    @property
    def word_ids(self) -> list[int | None]: ...
    @property
    def sequence_ids(self) -> list[int | None]: ...
    @property
    def special_tokens_mask(self) -> list[int]: ...
    @property
    def attention_mask(self) -> list[int]: ...
    @property
    def overflowing(self) -> list[Encoding]: ...
    def __len__(self) -> int: ...
    def __repr__(self) -> str: ...

class WordPieceTokenizer:
    """BERT WordPiece tokenizer with Hugging Face ``tokenizers`` parity."""

    @staticmethod
    def from_file(path: str | PathLike[str]) -> WordPieceTokenizer:
        """Load from a model folder, a ``tokenizer.json`` or a ``vocab.txt``.

        Raises ``FileNotFoundError`` (missing), ``ValueError`` (corrupt, naming the
        file) or :class:`UnsupportedTokenizerError` (valid but not BERT WordPiece).
        """
    @property
    def vocab_size(self) -> int: ...
    @property
    def unk_token_id(self) -> int: ...
    @property
    def pad_token_id(self) -> int: ...
    @property
    def source(self) -> Path:
        """The file the vocabulary was read from."""
    @property
    def normalizer(self) -> tuple[bool, bool, bool, bool] | None:
        """``(clean_text, handle_chinese_chars, strip_accents, lowercase)``, or None without a normalizer."""
    @property
    def added_tokens(self) -> list[tuple[str, int, bool]]:
        """``(content, id, special)`` for every added token."""
    def token_to_id(self, token: str) -> int | None: ...
    def id_to_token(self, id: int) -> str | None: ...
    def get_vocab(self) -> list[str]:
        """Every token, indexed by id."""
    def num_special_tokens_to_add(self, is_pair: bool) -> int: ...
    def encode_batch(
        self,
        inputs: _Inputs,
        pairs: _Inputs | None = None,
        *,
        is_split_into_words: bool = False,
        add_special_tokens: bool = True,
        max_length: int | None = None,
        truncation: str | None = None,
        stride: int = 0,
        truncation_side: str = "right",
        num_threads: int | None = None,
    ) -> list[Encoding]:
        """Encode in parallel with the GIL released. ``truncation`` is None,
        "longest_first", "only_first" or "only_second"."""
    def batch_arrays(
        self,
        inputs: _Inputs,
        pairs: _Inputs | None = None,
        *,
        is_split_into_words: bool = False,
        add_special_tokens: bool = True,
        max_length: int | None = None,
        truncation: str | None = None,
        stride: int = 0,
        truncation_side: str = "right",
        padding: str = "longest",
        pad_to_multiple_of: int | None = None,
        padding_side: str = "right",
        return_offsets_mapping: bool = False,
        return_special_tokens_mask: bool = False,
        return_word_ids: bool = False,
        return_sequence_ids: bool = False,
        return_overflowing_tokens: bool = False,
        num_threads: int | None = None,
    ) -> dict[str, _I64]:
        """Encode and pad in one call: int64 arrays named as in ``transformers``
        (``input_ids`` etc. ``(rows, cols)``, ``offset_mapping`` ``(rows, cols, 2)``).
        ``padding`` is "longest", "max_length" or "do_not_pad"."""

class DedupIndex:
    """A streaming duplicate index (``fastbert.dedup`` wraps it): ``start_split()``, then
    ``add(texts)`` in batches, split after split, then ``finish()``. Keeps fingerprints,
    never text. ``unit`` is "word" or "char"."""

    def __new__(cls, threshold: float, num_perm: int, ngram: int, unit: str) -> DedupIndex: ...
    @property
    def banding(self) -> tuple[int, int]:
        """``(bands, rows)`` of the LSH banding chosen for the threshold."""
    @property
    def documents(self) -> int: ...
    @property
    def splits(self) -> int: ...
    def start_split(self) -> None: ...
    def add(self, texts: Sequence[str], *, num_threads: int | None = None) -> None:
        """Fingerprint ``texts`` in parallel (GIL released) into the current split."""
    def finish(self, *, num_threads: int | None = None) -> dict[str, Any]:
        """Every duplicate so far. Documents are numbered across splits in the order added.
        Arrays: ``cluster_offsets`` (clusters + 1,) uint64 and ``cluster_docs`` uint32
        (cluster k is ``cluster_docs[cluster_offsets[k]:cluster_offsets[k + 1]]``);
        cross-split pairs ``pair_a``, ``pair_b``, ``pair_matches`` (pairs,) uint32;
        ``split_starts`` (splits,) uint32; ``empty`` (splits,) uint64. Counts: ``distinct``,
        ``compared``, ``near_pairs``."""

def minhash_signatures(
    texts: Sequence[str],
    num_perm: int,
    ngram: int,
    unit: str,
    *,
    num_threads: int | None = None,
) -> tuple[NDArray[np.uint64], NDArray[np.uint32], NDArray[np.bool_]]:
    """``(exact, signatures, empty)``: the exact-duplicate hash ``(n,)``, MinHash signatures
    ``(n, num_perm)`` and whether each text has no words ``(n,)``."""

def dropout_scale(n: int, p: float, seed: int, *, num_threads: int | None = None) -> NDArray[np.float32]:
    """``(n,)`` dropout scales for ``seed``: 0 where dropped (probability ``p``, in [0, 1)),
    ``1 / (1 - p)`` elsewhere; see ``fastbert_core::dropout``."""

def _panic_for_test() -> None:
    """Panic inside the core; always raises :class:`InternalError`."""

def _is_forked_child() -> bool:
    """Whether this process is a fork of the one that built the thread pools."""

def word_labels_to_token_labels(
    word_ids: _I64,
    labels: _I64,
    label_offsets: _I64,
    row_to_sample: _I64 | None,
    strategy: str,
    b_to_i: Sequence[tuple[int, int]],
    ignore_index: int,
) -> _I64:
    """Word labels → token labels ``(rows, cols)``. ``word_ids``: ``(rows, cols)``;
    sample i's word labels are ``labels[label_offsets[i]:label_offsets[i + 1]]``."""

def spans_to_bio(
    offsets: _I64,
    spans: _I64,
    span_offsets: _I64,
    num_types: int,
    word_ids: _I64 | None,
    row_to_sample: _I64 | None,
    ignore_index: int,
) -> _I64:
    """Character spans ``(n, 3)`` = (start, end, type) → BIO token labels ``(rows, cols)``.
    ``offsets``: ``(rows, cols, 2)``."""

def word_predictions(
    word_ids: _I64,
    logits: _F32 | None,
    ids: _I64 | None,
    aggregation: str,
) -> tuple[_I64, _F32]:
    """Token predictions (exactly one of ``logits (rows, cols, classes)`` and
    ``ids (rows, cols)``) → ``(labels, scores)``, both ``(rows, words)``."""

def token_entities(
    offsets: _I64,
    word_ids: _I64,
    logits: _F32 | None,
    ids: _I64 | None,
    tags: Sequence[tuple[int, int]],
    aggregation: str,
) -> dict[str, NDArray[Any]]:
    """Token predictions → entities as 1-D arrays ``row``, ``type``, ``start``, ``end``,
    ``word_start``, ``word_end`` (int64) and ``score`` (float32). ``tags[label]`` is
    ``(kind, type)`` with kind 0 = outside, 1 = begin, 2 = inside."""

def chunk_batch(
    tokenizer: WordPieceTokenizer,
    inputs: _Inputs,
    pairs: _Inputs | None = None,
    *,
    is_split_into_words: bool = False,
    max_length: int,
    stride: int = 0,
    truncation_side: str = "right",
    padding: str = "longest",
    pad_to_multiple_of: int | None = None,
    padding_side: str = "right",
    return_offsets_mapping: bool = True,
    return_special_tokens_mask: bool = False,
    return_word_ids: bool = True,
    num_threads: int | None = None,
) -> dict[str, _I64]:
    """Sliding windows: the arrays of ``batch_arrays(..., return_overflowing_tokens=True)``
    plus ``window_to_sample``, ``window_token_start``, ``window_token_end`` (windows,),
    ``source_token_index`` (windows, cols) and ``sample_num_tokens`` (samples,)."""

def vote_windows(
    window_to_sample: _I64,
    num_samples: int,
    preds: _I64,
    classes: int,
    logits: _F32 | None = None,
) -> tuple[_I64, _F32]:
    """Window predictions → sample predictions by majority vote:
    ``(labels (samples,), fractions (samples, classes))``."""

def mean_windows(
    window_to_sample: _I64,
    num_samples: int,
    logits: _F32,
) -> tuple[_I64, _F32]:
    """Window logits ``(windows, classes)`` → ``(labels (samples,), mean logits (samples, classes))``."""

def merge_tokens(
    source_token_index: _I64,
    window_to_sample: _I64,
    window_token_start: _I64,
    window_token_end: _I64,
    sample_num_tokens: _I64,
    values_f32: NDArray[np.float32] | None,
    values_i64: _I64 | None,
    strategy: str,
    fill_i64: int = -1,
) -> NDArray[Any]:
    """Window-token predictions ``(windows, cols, ...)`` → source-token predictions
    ``(samples, max_tokens, ...)``. Exactly one of ``values_f32`` / ``values_i64``;
    ``strategy`` is "max_context" or (float only) "mean"."""
