"""Sliding windows over long texts, and merging window predictions back.

:func:`chunk_texts` cuts each text into windows of at most ``max_length`` tokens
(special tokens included) overlapping by ``stride`` tokens: the same windows as
Hugging Face ``tokenizers``' ``enable_truncation(max_length, stride=stride)`` with
``Encoding.overflowing`` (and ``transformers``' ``return_overflowing_tokens=True``),
because the Rust core runs the same truncation. Each window also says which text it
came from and which of the text's tokens it holds, so predictions can be merged:

- :func:`merge_windows`: one prediction per window → one per text (``"vote"`` or ``"mean"``).
- :func:`merge_token_predictions`: one prediction per window token → one per text token
  (``"max_context"``, as in BERT's SQuAD code, or ``"mean"``).

>>> chunks = chunk_texts(tok, long_texts, max_length=128, stride=32)     # doctest: +SKIP
>>> logits = model(chunks["input_ids"], ...)                             # doctest: +SKIP
>>> per_token = merge_token_predictions(chunks, logits)                  # doctest: +SKIP
>>> offsets = merge_token_predictions(chunks, chunks["offset_mapping"])  # doctest: +SKIP

Tokens are counted in the text's full token sequence without special tokens: token
``p`` of text ``s`` is the ``p``-th token of ``tok.encode(texts[s], add_special_tokens=False)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

import fastbert._core as _core
from fastbert.conversions import as_numpy
from fastbert.text.fallback import TokenizersBackend, pad_encodings

__all__ = ["LAYOUT_KEYS", "chunk_texts", "merge_token_predictions", "merge_windows", "window_ranges"]

#: The arrays of `chunk_texts`' result that say which text and tokens each window holds:
#: what `merge_token_predictions` reads.
LAYOUT_KEYS = (
    "source_token_index",
    "window_to_sample",
    "window_token_start",
    "window_token_end",
    "sample_num_tokens",
)


def _int64(x: Any, name: str) -> np.ndarray:
    a = as_numpy(x)
    if a.size and a.dtype.kind not in "iub":
        raise TypeError(f"{name} must hold integers, not {a.dtype}")
    return np.ascontiguousarray(a, dtype=np.int64)


def chunk_texts(
    tok: Any,
    texts: Sequence[str] | Sequence[Sequence[str]],
    *,
    max_length: int,
    stride: int = 0,
    pairs: Sequence[str] | Sequence[Sequence[str]] | None = None,
    is_split_into_words: bool = False,
    padding: bool | Literal["longest", "max_length"] = "longest",
    pad_to_multiple_of: int | None = None,
    truncation_side: Literal["right", "left"] = "right",
    padding_side: Literal["right", "left"] = "right",
    return_offsets_mapping: bool = True,
    return_word_ids: bool = True,
    return_special_tokens_mask: bool = False,
    return_tensors: Literal["np", "pt"] = "np",
    num_threads: int | None = None,
) -> dict[str, Any]:
    """Cut texts into overlapping windows of at most ``max_length`` tokens.

    Args:
        tok: a :class:`fastbert.Tokenizer` (either backend: on the ``tokenizers``
            fallback, ``tokenizers`` cuts the windows and Python adds the layout).
        texts: the texts (or, with ``is_split_into_words``, their word lists).
        max_length: tokens per window, special tokens included.
        stride: tokens shared by consecutive windows (must be < ``max_length`` minus
            the special tokens).
        pairs: optional long second texts, one per text. Then the pair is what is
            windowed and ``texts[i]`` (e.g. a question) is repeated whole in every
            window (truncation ``only_second``); token ranges count the pair's tokens.
        padding: ``"longest"`` (or True) or ``"max_length"``.
        truncation_side: ``"left"`` windows from the end, as ``tokenizers`` does.
        Others: as in ``Tokenizer.__call__``.

    Returns:
        A dict of int64 arrays, one row per window (each text's windows in order):
        ``input_ids``, ``token_type_ids``, ``attention_mask`` ``(windows, cols)``;
        ``offset_mapping`` ``(windows, cols, 2)``, ``word_ids``, ``special_tokens_mask``
        when asked; ``overflow_to_sample_mapping`` = ``window_to_sample`` ``(windows,)``;
        ``window_token_start``, ``window_token_end`` ``(windows,)``: the window holds
        the text's tokens ``start..end``; ``source_token_index`` ``(windows, cols)``:
        each column's token position in its text, -1 for special, padding and
        (with pairs) first-text tokens; ``sample_num_tokens`` ``(texts,)``.
    """
    if isinstance(texts, str):
        raise TypeError("texts must be a list of texts, not a single str")
    pad = "longest" if padding is True or padding == "longest" else padding
    if pad not in ("longest", "max_length"):
        raise ValueError(f"padding must be True, 'longest' or 'max_length', not {padding!r}")
    options: dict[str, Any] = {
        "is_split_into_words": is_split_into_words,
        "max_length": max_length,
        "stride": stride,
        "truncation_side": truncation_side,
        "padding": pad,
        "pad_to_multiple_of": pad_to_multiple_of,
        "padding_side": padding_side,
        "return_offsets_mapping": return_offsets_mapping,
        "return_special_tokens_mask": return_special_tokens_mask,
        "return_word_ids": return_word_ids,
    }
    # A `fastbert.text.Tokenizer`, or the Rust core's own WordPieceTokenizer.
    core = getattr(tok, "wordpiece", tok)
    if core is None:
        texts, pairs = list(texts), list(pairs) if pairs is not None else None
        out = _chunk_with_tokenizers(tok.fallback, texts, pairs, **options)
    else:
        out = _core.chunk_batch(core, texts, pairs, **options, num_threads=num_threads)
    if return_tensors == "pt":
        import torch

        return {k: torch.from_numpy(v) for k, v in out.items()}
    if return_tensors != "np":
        raise ValueError(f"return_tensors must be 'np' or 'pt', not {return_tensors!r}")
    return dict(out)


def _chunk_with_tokenizers(
    tok: TokenizersBackend,
    texts: list[Any],
    pairs: list[Any] | None,
    *,
    is_split_into_words: bool,
    max_length: int,
    stride: int,
    truncation_side: str,
    padding: str,
    pad_to_multiple_of: int | None,
    padding_side: str,
    return_offsets_mapping: bool,
    return_special_tokens_mask: bool,
    return_word_ids: bool,
) -> dict[str, np.ndarray]:
    """:func:`chunk_texts` on the ``tokenizers`` fallback (a model that is not WordPiece).

    ``tokenizers`` cuts the windows (its own truncation with ``stride``, so they are its
    overflowing windows by construction) and pads them as ``Tokenizer.__call__`` does.
    Each window's token range comes from the arithmetic of ``Encoding::truncate``
    (:func:`window_ranges`, tested against ``tokenizers``), and is checked
    against the window's ids, so a range that does not hold what the window holds is an
    error, never a silent misplacement of predictions.
    """
    added = tok.num_special_tokens_to_add(pairs is not None)
    if max_length <= added:
        raise ValueError(
            f"max_length ({max_length}) must be larger than the {added} special tokens of each window"
        )

    def whole(inputs: list[Any]) -> list[Any]:
        return tok.encode_batch(inputs, None, is_split_into_words, False, None, None, 0, "right")

    # The windows slide over the pair's tokens when there is a pair, else over the text's.
    target = 1 if pairs is not None else 0
    full = whole(pairs if pairs is not None else texts)
    first_lengths = [len(e.ids) for e in whole(texts)] if pairs is not None else [0] * len(texts)
    rooms = [max_length - added - n for n in first_lengths]
    for s, (f, room) in enumerate(zip(full, rooms, strict=True)):
        # tokenizers panics on this (and prints its backtrace); say it as the Rust path does.
        if len(f.ids) > room > 0 and stride >= room:
            raise ValueError(
                f"text {s}: stride ({stride}) must be smaller than the room left for tokens ({room}; "
                "max_length minus the special tokens)"
            )
    strategy = "only_second" if pairs is not None else "longest_first"
    encodings = tok.encode_batch(
        texts, pairs, is_split_into_words, True, max_length, strategy, stride, truncation_side
    )
    out = pad_encodings(
        encodings,
        padding,
        max_length,
        pad_to_multiple_of,
        tok.pad_id,
        padding_side,
        return_offsets_mapping,
        return_special_tokens_mask,
        return_word_ids,
        True,
    )
    cols = out["input_ids"].shape[1]
    mapping, starts, ends = [], [], []
    source = np.full((len(out["input_ids"]), cols), -1, dtype=np.int64)
    row = 0
    for s, e in enumerate(encodings):
        n = len(full[s].ids)
        windows = [e, *e.overflowing]
        ranges = window_ranges(n, rooms[s], stride, truncation_side)
        if len(ranges) != len(windows):
            raise ValueError(
                f"text {s}: {len(windows)} windows but {len(ranges)} token ranges; please report this"
            )
        for w, (a, b) in zip(windows, ranges, strict=True):
            cells = [k for k, seq in enumerate(w.sequence_ids) if seq == target]
            if [w.ids[k] for k in cells] != full[s].ids[a:b]:
                raise ValueError(f"text {s}: window {row} does not hold tokens {a}..{b}; please report this")
            shift = 0 if padding_side == "right" else cols - len(w.ids)
            source[row, [shift + k for k in cells]] = np.arange(a, b)
            mapping.append(s)
            starts.append(a)
            ends.append(b)
            row += 1
    out["window_to_sample"] = np.array(mapping, dtype=np.int64)
    out["window_token_start"] = np.array(starts, dtype=np.int64)
    out["window_token_end"] = np.array(ends, dtype=np.int64)
    out["source_token_index"] = source
    out["sample_num_tokens"] = np.array([len(f.ids) for f in full], dtype=np.int64)
    return out


def merge_windows(
    window_to_sample: Any,
    predictions: Any,
    *,
    strategy: Literal["vote", "mean"] = "mean",
    num_samples: int | None = None,
    num_classes: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One prediction per text from one prediction per window (sequence classification).

    Args:
        window_to_sample: int ``(windows,)``, e.g. ``chunks["window_to_sample"]``.
        predictions: float ``(windows, classes)`` logits, or (``"vote"`` only) int
            ``(windows,)`` class ids.
        strategy: ``"vote"``: the class most windows predict (their argmax); ties go to
            the class with the larger summed logits, then to the lowest id.
            ``"mean"``: the argmax of the mean logits.
        num_samples: number of texts (default: largest sample index + 1).
        num_classes: for int predictions (default: largest id + 1).

    Returns:
        ``(labels, scores)``: int64 ``(samples,)`` (-1 for a text without windows) and
        float32 ``(samples, classes)``: the fraction of votes per class (``"vote"``) or
        the mean logits (``"mean"``); NaN for a text without windows.
    """
    mapping = _int64(window_to_sample, "window_to_sample").reshape(-1)
    if num_samples is None:
        num_samples = int(mapping.max()) + 1 if mapping.size else 0
    p = as_numpy(predictions)
    is_logits = p.dtype.kind == "f"
    if is_logits and p.ndim != 2:
        raise ValueError(f"logits must be (windows, classes), got shape {p.shape}")
    if not is_logits and p.ndim != 1:
        raise ValueError(f"class ids must be (windows,), got shape {p.shape}")
    if strategy == "mean":
        if not is_logits:
            raise ValueError("strategy 'mean' needs float logits (windows, classes), not class ids")
        return _core.mean_windows(mapping, num_samples, np.ascontiguousarray(p, dtype=np.float32))
    if strategy != "vote":
        raise ValueError(f"strategy must be 'vote' or 'mean', not {strategy!r}")
    if is_logits:
        logits = np.ascontiguousarray(p, dtype=np.float32)
        classes = logits.shape[1]
        ids = np.ascontiguousarray(np.argmax(logits, axis=1) if len(logits) else np.zeros(0), dtype=np.int64)
        return _core.vote_windows(mapping, num_samples, ids, classes, logits)
    ids = _int64(p, "predictions")
    classes = num_classes if num_classes is not None else (int(ids.max()) + 1 if ids.size else 0)
    return _core.vote_windows(mapping, num_samples, ids, classes, None)


def merge_token_predictions(
    chunks: Mapping[str, Any],
    predictions: Any,
    *,
    strategy: Literal["max_context", "mean"] = "max_context",
    fill_value: int = -1,
) -> np.ndarray:
    """One prediction per text token from the predictions of every window token.

    Args:
        chunks: the dict :func:`chunk_texts` returned (its ``source_token_index``,
            ``window_to_sample``, ``window_token_start``, ``window_token_end`` and
            ``sample_num_tokens`` are used).
        predictions: ``(windows, cols, ...)``, float (logits) or int (label ids, or any
            per-token int data such as ``chunks["offset_mapping"]``).
        strategy: ``"max_context"``: each token takes its values from the window where
            ``min(left context, right context) + 0.01 * window length`` is largest, the
            earliest on ties (BERT's ``run_squad.py``); ``"mean"`` (float only): the mean
            over all windows holding the token.
        fill_value: for int predictions, the value past each text's last token.

    Returns:
        ``(samples, max_tokens, ...)`` with the predictions' dtype (float32 or int64);
        ``max_tokens`` = ``max(sample_num_tokens)``; positions past a text's length hold
        NaN (float) or ``fill_value`` (int).
    """
    index, mapping, starts, ends, counts = (_int64(chunks[k], k) for k in LAYOUT_KEYS)
    p = as_numpy(predictions)
    if p.dtype.kind == "f":
        floats = np.ascontiguousarray(p, dtype=np.float32)
        return _core.merge_tokens(index, mapping, starts, ends, counts, floats, None, strategy)
    values = _int64(p, "predictions")
    return _core.merge_tokens(index, mapping, starts, ends, counts, None, values, strategy, fill_value)


def window_ranges(num_tokens: int, room: int, stride: int, side: str = "right") -> list[tuple[int, int]]:
    """The token ranges of ``tokenizers``' overflowing windows (``Encoding::truncate``),
    for a sequence of ``num_tokens`` tokens and ``room`` tokens per window.

    Written from that function's arithmetic and tested against ``tokenizers``; the fallback
    path places each window's predictions by it."""
    if room >= num_tokens:
        return [(0, num_tokens)]
    step = room - stride
    ranges = []
    if side == "right":
        for start in range(0, num_tokens, step):
            stop = min(start + room, num_tokens)
            ranges.append((start, stop))
            if stop == num_tokens:
                break
    else:
        for last in range(num_tokens - 1, -1, -step):
            stop = last + 1
            start = max(stop - room, 0)
            ranges.append((start, stop))
            if start == 0:
                break
    return ranges
