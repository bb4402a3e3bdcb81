"""Examples → `Features`: every text tokenized once (Rust, all cores) under the long-text policy."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from fastbert.config import FinetuneConfig
from fastbert.data.examples import Examples
from fastbert.features.arrays import Features
from fastbert.features.long_text import featurize_long
from fastbert.text.align import b_to_i_map, tokenize_and_align
from fastbert.text.tokenizer import Tokenizer

__all__ = ["featurize", "text_lengths"]

#: Texts tokenized per call when measuring lengths.
_LENGTH_CHUNK = 256


def featurize(tok: Tokenizer, ex: Examples, cfg: FinetuneConfig) -> Features:
    """Tokenize every example once (Rust, all cores) into padded int32 arrays.

    Texts longer than ``max_length`` are cut by ``cfg.long_text``: truncated here, or kept at
    both ends or cut into windows (`fastbert.features.long_text`)."""
    if cfg.long_text != "truncate":
        return featurize_long(tok, ex, cfg)
    task = cfg.task
    if task == "token":
        word_labels: list[Any] = (
            ex.labels if ex.labels is not None else [np.zeros(len(w), dtype=np.int64) for w in ex.texts]
        )
        b_to_i = b_to_i_map(ex.label_names) if cfg.label_strategy == "all" and ex.label_names else None
        out = tokenize_and_align(
            tok,
            ex.texts,
            word_labels,
            strategy=cfg.label_strategy,
            b_to_i=b_to_i,
            max_length=cfg.max_length,
            truncation=True,
            padding=True,
        )
        return Features(
            input_ids=out["input_ids"].astype(np.int32),
            token_type_ids=out["token_type_ids"].astype(np.int32),
            lengths=out["attention_mask"].sum(1).astype(np.int64),
            labels=out["labels"].astype(np.int64) if ex.labels is not None else None,
            word_ids=out["word_ids"].astype(np.int32),
        )
    out = tok(
        list(ex.texts),
        list(ex.pairs) if ex.pairs is not None else None,
        truncation=True,
        max_length=cfg.max_length,
        padding=True,
        return_word_ids=task == "mlm",
    )
    labels = None
    if ex.labels is not None and task != "mlm":
        labels = np.asarray(ex.labels)
    return Features(
        input_ids=out["input_ids"].astype(np.int32),
        token_type_ids=out["token_type_ids"].astype(np.int32),
        lengths=out["attention_mask"].sum(1).astype(np.int64),
        labels=labels,
        word_ids=out["word_ids"].astype(np.int32) if "word_ids" in out else None,
    )


def text_lengths(
    tok: Tokenizer, texts: Sequence[Any], pairs: Sequence[str] | None, *, split_into_words: bool
) -> np.ndarray:
    """``(n,)`` tokens per example *before* truncation, special tokens included.

    Slicing by this length shows what truncation costs (`fastbert.evaluation.slices`): texts
    longer than ``max_length`` land in the buckets past it. Tokenized in chunks, so that padding
    stays bounded on long texts.
    """
    out = []
    for start in range(0, len(texts), _LENGTH_CHUNK):
        part = list(texts[start : start + _LENGTH_CHUNK])
        part_pairs = None if pairs is None else list(pairs[start : start + _LENGTH_CHUNK])
        enc = tok(part, part_pairs, padding=True, is_split_into_words=split_into_words)
        out.append(enc["attention_mask"].sum(1))
    return np.concatenate(out).astype(np.int64) if out else np.zeros(0, dtype=np.int64)
