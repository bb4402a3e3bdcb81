"""Label alignment for token classification, both ways, in one Rust pass over numpy arrays.

Training (labels to tokens):

- :func:`word_labels_to_token_labels`: one label per word → one label per token.
- :func:`tokenize_and_align`: tokenize pre-split words and align their labels in one go.
- :func:`spans_to_bio`: character spans ``(start, end, label)`` → BIO token labels.

Prediction (tokens back to words and text):

- :func:`token_to_word_predictions`: token logits (or label ids) → one label and score per word.
- :func:`token_to_entities`: token logits (or label ids) → entities with character offsets.

Shapes: ``word_ids`` is ``(rows, cols)`` int64 with -1 for special and padding tokens,
``offsets`` is ``(rows, cols, 2)``, logits are ``(rows, cols, classes)``; exactly what
``fastbert.Tokenizer.__call__`` returns with ``return_word_ids=True`` and
``return_offsets_mapping=True``. Rows are samples, or overflowing windows of
samples (then pass ``row_to_sample``, i.e. ``overflow_to_sample_mapping``).

Every fast function has a slow, readable reference in `fastbert.text.align_reference`, written
with plain Python loops; ``tests/test_align.py`` compares the two on generated inputs.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any, Literal, overload

import numpy as np

import fastbert._core as _core
from fastbert.conversions import as_numpy

IGNORE_INDEX = -100
"""The label PyTorch's ``cross_entropy`` skips by default."""

Strategy = Literal["first", "all"]
Aggregation = Literal["none", "first", "average", "max"]
Span = tuple[int, int, "int | str"]

__all__ = [
    "IGNORE_INDEX",
    "b_to_i_map",
    "bio_labels",
    "spans_to_bio",
    "token_to_entities",
    "token_to_word_predictions",
    "tokenize_and_align",
    "word_labels_to_token_labels",
]


# ---------------------------------------------------------------- helpers
def _int64(x: Any, name: str, ndim: int) -> np.ndarray:
    a = as_numpy(x)
    if a.size == 0:
        a = a.astype(np.int64)
    if a.dtype.kind not in "iub":
        raise TypeError(f"{name} must hold integers, not {a.dtype}")
    if a.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {a.shape}")
    return np.ascontiguousarray(a, dtype=np.int64)


def _rows2d(word_ids: Any) -> tuple[np.ndarray, bool]:
    """``word_ids`` as ``(rows, cols)``; True when a single ``(cols,)`` row was given."""
    a = as_numpy(word_ids)
    single = a.ndim == 1
    return _int64(a[None, :] if single else a, "word_ids", 2), single


def _ragged(per_sample: Sequence[Sequence[int]], name: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample int sequences → one flat int64 array and ``(samples + 1,)`` offsets."""
    lengths = np.fromiter((len(s) for s in per_sample), dtype=np.int64, count=len(per_sample))
    offsets = np.zeros(len(per_sample) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    if int(offsets[-1]) == 0:
        return np.zeros(0, dtype=np.int64), offsets
    try:
        # One pass over all values: far cheaper than an array per sample.
        flat = np.fromiter(itertools.chain.from_iterable(per_sample), dtype=np.int64, count=int(offsets[-1]))
    except (TypeError, ValueError):
        flat = np.concatenate([as_numpy(s).reshape(-1) for s in per_sample if len(s)])
        if flat.dtype.kind not in "iub":
            raise TypeError(f"{name} must hold integers, not {flat.dtype}") from None
        flat = np.ascontiguousarray(flat, dtype=np.int64)
    return flat, offsets


def bio_labels(label_names: Sequence[str]) -> list[str]:
    """The label list :func:`spans_to_bio` uses: ``["O", "B-t0", "I-t0", "B-t1", ...]``.

    ``B-t`` has id ``2 * k + 1`` and ``I-t`` id ``2 * k + 2`` for ``t = label_names[k]``.
    """
    out = ["O"]
    for name in label_names:
        out += [f"B-{name}", f"I-{name}"]
    return out


def b_to_i_map(labels: Sequence[str] | Mapping[int, str]) -> dict[int, int]:
    """``{id of B-x: id of I-x}`` for every ``B-x`` whose ``I-x`` is also a label.

    ``labels`` is a label list (index = id) or an ``id2label`` mapping.
    """
    id2label = dict(labels) if isinstance(labels, Mapping) else dict(enumerate(labels))
    label2id = {name: i for i, name in id2label.items()}
    return {
        i: label2id["I-" + name[2:]]
        for i, name in id2label.items()
        if name.startswith("B-") and "I-" + name[2:] in label2id
    }


# ------------------------------------------------------- word labels → tokens
def word_labels_to_token_labels(
    word_ids: Any,
    word_labels: Sequence[Sequence[int]],
    *,
    strategy: Strategy = "first",
    b_to_i: Mapping[int, int] | None = None,
    ignore_index: int = IGNORE_INDEX,
    row_to_sample: Any = None,
) -> np.ndarray:
    """Spread one label per word over the word's tokens.

    Args:
        word_ids: int ``(rows, cols)`` (or ``(cols,)``), -1 for special and padding tokens.
        word_labels: per sample, one int label per word (``word_labels[s][w]``).
        strategy: ``"first"``: a word's first token carries its label, the others get
            ``ignore_index``. ``"all"``: every token carries it, continuation tokens
            mapped through ``b_to_i`` (``B-x`` id → ``I-x`` id; see :func:`b_to_i_map`).
        b_to_i: for ``"all"``; labels not in it are copied unchanged.
        ignore_index: the label of special, padding and (``"first"``) continuation tokens.
        row_to_sample: ``(rows,)`` sample of each row (``overflow_to_sample_mapping``);
            default: row ``r`` is sample ``r``.

    Returns:
        int64 labels shaped like ``word_ids``.

    A token starts a word when its word id differs from the previous token's, as in
    Hugging Face's ``word_ids()`` loop; so the first token of an overflowing window
    that starts mid-word is labelled too. Nothing here reads the tokens themselves,
    so every vocabulary works alike: BERT's ``##`` continuations, and SentencePiece
    (XLM-R, DeBERTa) or byte-level BPE (RoBERTa, ModernBERT) words whose first token
    is a bare ``▁`` or ``Ġ``: that token is the word's first and carries its label,
    as with ``transformers``. For pair inputs (whose word ids restart in the second
    text), set the other text's word ids to -1 first.

    Raises ``ValueError`` naming the sample, row and column when a word id has no label.
    """
    ids, single = _rows2d(word_ids)
    flat, offsets = _ragged(word_labels, "word_labels")
    mapping = None if row_to_sample is None else _int64(row_to_sample, "row_to_sample", 1)
    pairs = [(int(b), int(i)) for b, i in (b_to_i or {}).items()]
    out = _core.word_labels_to_token_labels(ids, flat, offsets, mapping, strategy, pairs, ignore_index)
    return out[0] if single else out


def tokenize_and_align(
    tok: Any,
    words: Sequence[Sequence[str]],
    labels: Sequence[Sequence[int]],
    *,
    strategy: Strategy = "first",
    b_to_i: Mapping[int, int] | None = None,
    max_length: int | None = None,
    truncation: bool | str = False,
    padding: bool | str = True,
    stride: int = 0,
    return_overflowing_tokens: bool = False,
    return_tensors: Literal["np", "pt"] = "np",
    ignore_index: int = IGNORE_INDEX,
    num_threads: int | None = None,
) -> dict[str, Any]:
    """Tokenize pre-split ``words`` and align their word ``labels`` to the tokens.

    Calls ``tok(words, is_split_into_words=True, return_word_ids=True, ...)`` and then
    :func:`word_labels_to_token_labels` (one Rust call). Every word is encoded as it is
    after a space in running text (``"Ġword"``, ``"▁word"``), the first one included:
    what ``transformers`` gives with ``add_prefix_space=True``, which RoBERTa requires
    for pre-split words (see `fastbert.text.fallback.words_spec`). Returns ``tok``'s arrays plus
    ``labels`` ``(rows, cols)``; ``word_ids`` and (with overflow)
    ``overflow_to_sample_mapping`` stay in the dict, so drop them before ``model(**batch)``.

    Args:
        tok: a :class:`fastbert.Tokenizer`.
        words: per sample, its list of words.
        labels: per sample, one int label per word (same lengths as ``words``).
        Others: as in :func:`word_labels_to_token_labels` and ``Tokenizer.__call__``.
    """
    if isinstance(words, str) or (len(words) and isinstance(words[0], str)):
        raise TypeError("words must be a list of word lists (one list per sample)")
    if len(words) != len(labels):
        raise ValueError(f"got {len(words)} samples of words but {len(labels)} of labels")
    for i, (w, lab) in enumerate(zip(words, labels, strict=True)):
        if len(w) != len(lab):
            raise ValueError(f"sample {i}: {len(w)} words but {len(lab)} labels")
    enc = tok(
        list(words),
        is_split_into_words=True,
        return_word_ids=True,
        padding=padding,
        truncation=truncation,
        max_length=max_length,
        stride=stride,
        return_overflowing_tokens=return_overflowing_tokens,
        return_tensors="np",
        num_threads=num_threads,
    )
    enc["labels"] = word_labels_to_token_labels(
        enc["word_ids"],
        labels,
        strategy=strategy,
        b_to_i=b_to_i,
        ignore_index=ignore_index,
        row_to_sample=enc.get("overflow_to_sample_mapping"),
    )
    if return_tensors == "pt":
        import torch

        return {k: torch.from_numpy(v) for k, v in enc.items()}
    if return_tensors != "np":
        raise ValueError(f"return_tensors must be 'np' or 'pt', not {return_tensors!r}")
    return enc


# ------------------------------------------------------------ spans → BIO
def spans_to_bio(
    offsets: Any,
    spans: Sequence[Sequence[Span]],
    label_names: Sequence[str],
    *,
    word_ids: Any = None,
    row_to_sample: Any = None,
    ignore_index: int = IGNORE_INDEX,
) -> np.ndarray:
    """Character-span annotations → BIO token labels.

    Args:
        offsets: int ``(rows, cols, 2)`` (or ``(cols, 2)``) character offsets of each
            token into its sample's text (``offset_mapping`` of a text, not of pre-split words).
        spans: per sample, ``(start, end, label)`` with ``end`` exclusive and ``label`` a
            name in ``label_names`` or its index.
        label_names: entity types; the label ids are those of :func:`bio_labels`
            (``O`` = 0, ``B-label_names[k]`` = ``2k+1``, ``I-...`` = ``2k+2``).
        word_ids: optional ``(rows, cols)``; tokens with word id -1 are special. Without
            it, tokens with an empty offset span (start == end) are taken as special: in
            BERT WordPiece and SentencePiece only special and padding tokens have one, but
            RoBERTa's post-processor (``trim_offsets``) trims a byte-level token of spaces
            alone (``"Ġ"``, e.g. before a second space or a character with no merge) to an
            empty span, so such a token would get ``ignore_index`` rather than ``O`` or
            ``I-``. Pass ``word_ids`` (``tok(..., return_word_ids=True)``) with such tokenizers.
        row_to_sample: ``(rows,)``, as in :func:`word_labels_to_token_labels`.
        ignore_index: the label of special and padding tokens.

    Returns:
        int64 ``(rows, cols)`` labels.

    A token is inside a span when their character ranges overlap. The first token of
    a span in a row gets ``B-``, later ones ``I-``. Overlapping (or nested) spans raise
    ``ValueError`` naming both, since BIO cannot express them. Spans that do not
    overlap but fall inside one token give that token to the earlier span.

    Offsets are the tokenizer's own, as ``transformers`` gives them, and some include the
    space before a word: DeBERTa-v3's SentencePiece (``"▁New"`` covers ``" New"``) and
    ModernBERT's byte-level BPE (``"ĠNew"``). A bare ``"▁"`` that starts a word there covers
    only that space, so a span starting at the word leaves it ``O`` and gives ``B-`` to the
    word's second token; decode such labels token by token (:func:`token_to_entities` with
    ``aggregation="none"``), or label words (:func:`tokenize_and_align`) when predictions
    are read per word.
    """
    off = as_numpy(offsets)
    single = off.ndim == 2
    off = _int64(off[None] if single else off, "offsets", 3)
    if off.shape[-1] != 2:
        raise ValueError(f"offsets must be (rows, cols, 2), got shape {off.shape}")
    index = {name: k for k, name in enumerate(label_names)}
    triples: list[list[tuple[int, int, int]]] = []
    for s, sample_spans in enumerate(spans):
        row = []
        for j, span in enumerate(sample_spans):
            start, end, label = span
            if isinstance(label, str):
                if label not in index:
                    raise ValueError(f"sample {s}, span {j}: label {label!r} is not in label_names")
                label = index[label]
            row.append((int(start), int(end), int(label)))
        triples.append(row)
    flat = np.array([t for row in triples for t in row], dtype=np.int64).reshape(-1, 3)
    counts = np.zeros(len(triples) + 1, dtype=np.int64)
    np.cumsum([len(row) for row in triples], out=counts[1:])
    wid = None if word_ids is None else _rows2d(word_ids)[0]
    mapping = None if row_to_sample is None else _int64(row_to_sample, "row_to_sample", 1)
    out = _core.spans_to_bio(off, flat, counts, len(label_names), wid, mapping, ignore_index)
    return out[0] if single else out


# ------------------------------------------------------ predictions → words
def _predictions(
    values: Any, word_ids: np.ndarray, single: bool
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(logits float32 (rows, cols, classes), None)`` or ``(None, ids int64 (rows, cols))``."""
    a = as_numpy(values)
    if single:
        a = a[None]
    if a.dtype.kind == "f" and a.ndim == 3:
        return np.ascontiguousarray(a, dtype=np.float32), None
    if a.dtype.kind in "iu" and a.ndim == 2:
        return None, np.ascontiguousarray(a, dtype=np.int64)
    raise ValueError(
        f"predictions must be float logits shaped {(*word_ids.shape, 'classes')} or int label ids "
        f"shaped {word_ids.shape}, got {a.dtype} {a.shape if not single else a.shape[1:]}"
    )


@overload
def token_to_word_predictions(
    word_ids: Any,
    logits: Any,
    aggregation: Literal["first", "average", "max"] = ...,
    *,
    return_scores: Literal[False] = ...,
) -> np.ndarray: ...


@overload
def token_to_word_predictions(
    word_ids: Any,
    logits: Any,
    aggregation: Literal["first", "average", "max"] = ...,
    *,
    return_scores: Literal[True],
) -> tuple[np.ndarray, np.ndarray]: ...


def token_to_word_predictions(
    word_ids: Any,
    logits: Any,
    aggregation: Literal["first", "average", "max"] = "first",
    *,
    return_scores: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """One prediction per word from token predictions.

    Args:
        word_ids: int ``(rows, cols)`` (or ``(cols,)``), -1 for no word.
        logits: float ``(rows, cols, classes)`` logits, or int ``(rows, cols)`` label ids.
        aggregation: how a word's tokens combine (Hugging Face pipeline semantics, on
            softmax probabilities): ``"first"`` the first token's best class;
            ``"average"`` the best class of the mean probability vector; ``"max"`` the
            best class of the token whose best probability is highest. Label ids
            allow only ``"first"``.
        return_scores: also return the chosen class's probability.

    Returns:
        int64 ``(rows, words)`` labels, ``words`` = largest word id + 1; -1 where a word
        is absent from a row (e.g. truncated away). With ``return_scores``, also float32
        ``(rows, words)`` probabilities (NaN where absent, or for label ids).
    """
    ids, single = _rows2d(word_ids)
    lg, lab = _predictions(logits, ids, single)
    labels, scores = _core.word_predictions(ids, lg, lab, aggregation)
    if single:
        labels, scores = labels[0], scores[0]
    return (labels, scores) if return_scores else labels


def _tags(id2label: Sequence[str] | Mapping[int, str]) -> tuple[list[tuple[int, int]], list[str]]:
    """Per label id ``(kind, type index)`` (kind 0 = O, 1 = begin, 2 = inside) and the type names.

    ``B-``/``S-``/``U-`` begin an entity, ``I-``/``E-``/``L-`` continue one (so BIOES and
    BILOU decode too), ``O`` is outside, and a bare name is an inside tag (as in
    Hugging Face's pipeline).
    """
    table = dict(id2label) if isinstance(id2label, Mapping) else dict(enumerate(id2label))
    n = max(table, default=-1) + 1
    types: list[str] = []
    tags: list[tuple[int, int]] = []
    for i in range(n):
        name = table.get(i, "O")
        if name == "O":
            tags.append((0, 0))
            continue
        kind, entity = 2, name
        if len(name) > 2 and name[1] == "-" and name[0] in "BIESUL":
            kind = 1 if name[0] in "BSU" else 2
            entity = name[2:]
        if entity not in types:
            types.append(entity)
        tags.append((kind, types.index(entity)))
    return tags, types


def token_to_entities(
    offsets: Any,
    word_ids: Any,
    logits_or_ids: Any,
    id2label: Sequence[str] | Mapping[int, str],
    aggregation: Aggregation = "first",
    text: Sequence[str] | str | None = None,
    *,
    row_to_sample: Any = None,
) -> list[list[dict[str, Any]]]:
    """Decode token predictions into entities with character offsets.

    Args:
        offsets: int ``(rows, cols, 2)`` (or ``(cols, 2)``) character offsets.
        word_ids: int ``(rows, cols)`` (or ``(cols,)``), -1 for special and padding tokens.
        logits_or_ids: float ``(rows, cols, classes)`` logits or int ``(rows, cols)`` label ids.
        id2label: label names by id (a list or a mapping), BIO (or BIOES / BILOU) tags.
        aggregation: ``"none"`` decodes token by token (a special token ends an entity);
            ``"first"``/``"average"``/``"max"`` first aggregate each word's tokens as
            :func:`token_to_word_predictions` does, then decode word by word.
        text: per row (or per sample, with ``row_to_sample``) the source text; adds
            ``"text"`` to every entity. A single str is allowed for a single row.
        row_to_sample: ``(rows,)`` sample of each row, for picking ``text``.

    Returns:
        Per row, a list of ``{"label", "start", "end", "score", "word_start", "word_end"}``
        (plus ``"text"``): ``start..end`` from the first token's start to the last
        token's end (character offsets snap to token, or word, boundaries);
        ``word_start..word_end`` the word ids it covers; ``score`` the mean softmax
        probability of its tokens or words (NaN for label ids).

    Decoding: ``B-x`` starts an entity; ``I-x`` continues an ``x`` entity or else
    starts one (Hugging Face's lenient rule); ``O`` ends it. With tokenizers whose
    offsets include the space before a word (DeBERTa-v3, ModernBERT; see
    :func:`spans_to_bio`), ``start`` (and ``"text"``) can begin with that space, as in
    ``transformers``' pipeline.
    """
    ids, single = _rows2d(word_ids)
    off = as_numpy(offsets)
    off = _int64(off[None] if single else off, "offsets", 3)
    if off.shape != (*ids.shape, 2):
        raise ValueError(f"offsets shape {off.shape} does not match word_ids shape {ids.shape} + (2,)")
    lg, lab = _predictions(logits_or_ids, ids, single)
    tags, types = _tags(id2label)
    found = _core.token_entities(off, ids, lg, lab, tags, aggregation)
    texts: Sequence[str] | None = [text] if isinstance(text, str) else text
    mapping = None if row_to_sample is None else _int64(row_to_sample, "row_to_sample", 1)
    out: list[list[dict[str, Any]]] = [[] for _ in range(ids.shape[0])]
    for row, t, start, end, ws, we, score in zip(
        found["row"].tolist(),
        found["type"].tolist(),
        found["start"].tolist(),
        found["end"].tolist(),
        found["word_start"].tolist(),
        found["word_end"].tolist(),
        found["score"].tolist(),
        strict=True,
    ):
        entity: dict[str, Any] = {
            "label": types[t],
            "start": start,
            "end": end,
            "score": score,
            "word_start": ws,
            "word_end": we,
        }
        if texts is not None:
            source = texts[row if mapping is None else int(mapping[row])]
            entity["text"] = source[start:end]
        out[row].append(entity)
    return out
