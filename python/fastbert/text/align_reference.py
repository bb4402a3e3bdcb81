"""Slow, readable Python versions of `fastbert.text.align`'s Rust functions, on lists.

They do the floating-point work in the same order with ``math.exp``, so results match the Rust
core bit for bit; ``tests/test_align.py`` compares the two on generated inputs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from fastbert.text.align import IGNORE_INDEX

__all__ = [
    "entities",
    "spans_to_bio",
    "word_labels_to_token_labels",
    "word_predictions",
]


def word_labels_to_token_labels(
    word_ids: list[list[int]],
    word_labels: Sequence[Sequence[int]],
    strategy: str = "first",
    b_to_i: Mapping[int, int] | None = None,
    ignore_index: int = IGNORE_INDEX,
    row_to_sample: Sequence[int] | None = None,
) -> list[list[int]]:
    b_to_i = b_to_i or {}
    out = []
    for r, row in enumerate(word_ids):
        labels = word_labels[r if row_to_sample is None else row_to_sample[r]]
        row_out = []
        previous = None
        for w in row:
            if w == -1:
                row_out.append(ignore_index)
                previous = None
                continue
            label = labels[w]
            if w != previous:
                row_out.append(label)
            elif strategy == "first":
                row_out.append(ignore_index)
            else:
                row_out.append(b_to_i.get(label, label))
            previous = w
        out.append(row_out)
    return out


def spans_to_bio(
    offsets: list[list[tuple[int, int]]],
    spans: Sequence[Sequence[tuple[int, int, int]]],
    word_ids: list[list[int]] | None = None,
    row_to_sample: Sequence[int] | None = None,
    ignore_index: int = IGNORE_INDEX,
) -> list[list[int]]:
    out = []
    for r, row in enumerate(offsets):
        sample_spans = sorted(spans[r if row_to_sample is None else row_to_sample[r]], key=lambda s: s[0])
        row_out = []
        previous = None
        for c, (start, end) in enumerate(row):
            special = word_ids[r][c] == -1 if word_ids is not None else start >= end
            if special:
                row_out.append(ignore_index)
                continue
            hit = None
            for k, (s, e, _label) in enumerate(sample_spans):
                if start < e and s < end:
                    hit = k
                    break
            if hit is None:
                row_out.append(0)
            else:
                label = sample_spans[hit][2]
                row_out.append(2 * label + (2 if previous == hit else 1))
            previous = hit
        out.append(row_out)
    return out


def softmax(logits: Sequence[float]) -> list[float]:
    top = max(float(x) for x in logits)
    exps = [math.exp(float(x) - top) for x in logits]
    total = 0.0
    for e in exps:
        total += e
    return [e / total for e in exps]


def argmax(values: Sequence[float]) -> tuple[int, float]:
    best = 0
    for k in range(1, len(values)):
        if values[k] > values[best]:
            best = k
    return best, values[best]


def aggregate(token_preds: list[Any], aggregation: str, is_logits: bool) -> tuple[int, float]:
    """One word's (label, score) from its tokens' logits (or ids), in token order."""
    if not is_logits:
        return int(token_preds[0]), math.nan
    probs = [softmax(t) for t in token_preds]
    if aggregation in ("first", "none"):
        return argmax(probs[0])
    if aggregation == "average":
        sums = [0.0] * len(probs[0])
        for p in probs:
            for k in range(len(p)):
                sums[k] += p[k]
        return argmax([s / len(probs) for s in sums])
    best = (-1, -math.inf)
    for p in probs:
        k, v = argmax(p)
        if v > best[1]:
            best = (k, v)
    return best


def word_predictions(
    word_ids: list[list[int]], preds: list[list[Any]], aggregation: str, is_logits: bool
) -> tuple[list[list[int]], list[list[float]]]:
    words = max((w for row in word_ids for w in row), default=-1) + 1
    labels, scores = [], []
    for row, row_preds in zip(word_ids, preds, strict=True):
        per_word: dict[int, list[Any]] = {}
        for w, p in zip(row, row_preds, strict=True):
            if w != -1:
                per_word.setdefault(w, []).append(p)
        row_labels, row_scores = [-1] * words, [math.nan] * words
        for w, tokens in per_word.items():
            row_labels[w], row_scores[w] = aggregate(tokens, aggregation, is_logits)
        labels.append(row_labels)
        scores.append(row_scores)
    return labels, scores


def entities(
    offsets: list[list[tuple[int, int]]],
    word_ids: list[list[int]],
    preds: list[list[Any]],
    id2label: Sequence[str],
    aggregation: str,
    is_logits: bool,
) -> list[list[dict[str, Any]]]:
    """Entities per row as dicts with ``label``, ``start``, ``end``, ``word_start``, ``word_end``, ``score``."""
    out = []
    for row_off, row_w, row_p in zip(offsets, word_ids, preds, strict=True):
        # Units: (label, score, word, start, end), or None for a break.
        units: list[tuple[int, float, int, int, int] | None] = []
        if aggregation == "none":
            for (s, e), w, p in zip(row_off, row_w, row_p, strict=True):
                if w == -1:
                    units.append(None)
                else:
                    label, score = aggregate([p], "first", is_logits)
                    units.append((label, score, w, s, e))
        else:
            tokens: dict[int, list[tuple[tuple[int, int], Any]]] = {}
            for o, w, p in zip(row_off, row_w, row_p, strict=True):
                if w != -1:
                    tokens.setdefault(w, []).append(((int(o[0]), int(o[1])), p))
            for w in sorted(tokens):
                label, score = aggregate([p for _, p in tokens[w]], aggregation, is_logits)
                start = min(o[0] for o, _ in tokens[w])
                end = max(o[1] for o, _ in tokens[w])
                units.append((label, score, w, start, end))
        out.append(bio_decode(units, id2label))
    return out


def bio_decode(
    units: list[tuple[int, float, int, int, int] | None], id2label: Sequence[str]
) -> list[dict[str, Any]]:
    """BIO-decode ``(label, score, word, start, end)`` units; ``None`` is a break."""
    entities: list[dict[str, Any]] = []
    members: list[tuple[int, float, int, int, int]] = []
    entity_type = ""
    for unit in [*units, None]:
        name = "O" if unit is None else id2label[unit[0]]
        prefixed = len(name) > 2 and name[:2] in ("B-", "I-", "S-", "E-", "U-", "L-")
        begin = prefixed and name[0] in "BSU"
        kind = name[2:] if prefixed else name
        if unit is not None and name != "O" and not begin and members and kind == entity_type:
            members.append(unit)
            continue
        if members:
            total = 0.0
            for m in members:
                total += m[1]
            entities.append(
                {
                    "label": entity_type,
                    "start": members[0][3],
                    "end": max(m[4] for m in members),
                    "word_start": members[0][2],
                    "word_end": members[-1][2] + 1,
                    "score": total / len(members),
                }
            )
        members, entity_type = [], ""
        if unit is not None and name != "O":
            members, entity_type = [unit], kind
    return entities
