"""Slow, readable Python versions of `fastbert.text.chunk`'s window merging, on lists.

``tests/test_chunk.py`` compares them with the Rust functions on generated inputs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["merge_token_predictions", "merge_windows"]


def _first_best(keys: list[tuple[Any, ...]]) -> int:
    """The index of the largest key (each key ends with ``-index``, so ties go to the lowest)."""
    return max(range(len(keys)), key=keys.__getitem__)


def merge_windows(
    window_to_sample: Sequence[int], predictions: Any, strategy: str, num_samples: int, num_classes: int
) -> tuple[list[int], list[list[float]]]:
    per_sample: list[list[Any]] = [[] for _ in range(num_samples)]
    for w, s in enumerate(window_to_sample):
        per_sample[s].append(predictions[w])
    labels, scores = [], []
    for windows in per_sample:
        if not windows:
            labels.append(-1)
            scores.append([math.nan] * num_classes)
            continue
        if strategy == "mean":
            means = [sum(float(w[k]) for w in windows) / len(windows) for k in range(num_classes)]
            labels.append(_first_best([(m, -k) for k, m in enumerate(means)]))
            scores.append(means)
            continue
        is_logits = not isinstance(windows[0], int | np.integer)
        votes = [0] * num_classes
        sums = [0.0] * num_classes
        for w in windows:
            if is_logits:
                votes[_first_best([(w[k], -k) for k in range(num_classes)])] += 1
                for k in range(num_classes):
                    sums[k] += float(w[k])
            else:
                votes[int(w)] += 1
        labels.append(_first_best([(votes[k], sums[k], -k) for k in range(num_classes)]))
        scores.append([v / len(windows) for v in votes])
    return labels, scores


def merge_token_predictions(chunks: Mapping[str, Any], predictions: Any, strategy: str) -> list[list[Any]]:
    """Per text, per token, the merged value (a list, or a float for ``mean``)."""
    starts = list(chunks["window_token_start"])
    ends = list(chunks["window_token_end"])
    mapping = list(chunks["window_to_sample"])
    index = chunks["source_token_index"]
    out: list[list[Any]] = []
    for s, n in enumerate(chunks["sample_num_tokens"]):
        windows = [w for w in range(len(mapping)) if mapping[w] == s]
        tokens = []
        for p in range(n):
            holding = [(w, list(index[w]).index(p)) for w in windows if p in list(index[w])]
            if strategy == "mean":
                values = [np.asarray(predictions[w][c], dtype=np.float64) for w, c in holding]
                tokens.append(sum(values) / len(values))
                continue
            # `_check_is_max_context` of google-research/bert run_squad.py.
            best_score, best = None, None
            for w, c in holding:
                length = ends[w] - starts[w]
                end = starts[w] + length - 1
                score = min(p - starts[w], end - p) + 0.01 * length
                if best_score is None or score > best_score:
                    best_score, best = score, (w, c)
            assert best is not None
            tokens.append(predictions[best[0]][best[1]])
        out.append(tokens)
    return out
