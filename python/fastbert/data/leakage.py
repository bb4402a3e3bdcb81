"""Train/dev leakage: training examples that (nearly) duplicate evaluation examples.

A dev example that also sits in the training data measures memory, not generalisation,
and flatters every metric computed on it. `fastbert.finetune` runs :func:`check_leakage`
once the data is loaded: `fastbert.find_duplicates` over the two splits (character
5-grams, 128 permutations, estimated Jaccard ≥ ``FinetuneConfig.leakage_threshold``), then
what ``FinetuneConfig.leakage`` says:

- ``"warn"`` (default): log a warning naming the first few pairs and train as given;
- ``"drop"``: drop the training examples that duplicate a dev example (dev stays whole,
  so its metrics remain comparable with other runs on it);
- ``"refuse"``: raise `fastbert.errors.LeakageError` before any training;
- ``"off"``: skip the check.

What was found is returned as a JSON-ready dict that `finetune` keeps in
``FineTunedModel.data_info["leakage"]``, and so in the saved ``fastbert.json``.
"""

from __future__ import annotations

import logging
from typing import Any, get_args

import numpy as np

from fastbert.config import Leakage
from fastbert.data.duplicates import find_duplicates
from fastbert.data.examples import Examples
from fastbert.errors import LeakageError

__all__ = ["check_leakage"]

log = logging.getLogger("fastbert")

LEAKAGE_MODES: tuple[str, ...] = get_args(Leakage)
#: Pairs named in the warning or error, and kept in the record.
SHOWN = 5


def example_text(ex: Examples, i: int) -> str:
    """The text of example ``i`` as duplicates are judged: words joined for token tasks,
    the pair's two texts together for pair tasks."""
    text = ex.texts[i]
    if not isinstance(text, str):
        text = " ".join(text)
    if ex.pairs is not None:
        text = f"{text}\n{ex.pairs[i]}"
    return text


def row_of(ex: Examples, i: int) -> str:
    """``"line 17"``: example ``i``'s row in its source, for messages that name the source once."""
    return f"{ex.row_unit} {int(ex.rows[i])}"


def check_leakage(
    train: Examples, dev: Examples, mode: str, threshold: float
) -> tuple[Examples, dict[str, Any] | None]:
    """``(train, record)``: ``train`` without the leaked examples under ``mode="drop"``,
    as given otherwise; ``record`` is None when ``mode="off"``."""
    if mode not in LEAKAGE_MODES:
        raise ValueError(f"leakage must be one of {', '.join(LEAKAGE_MODES)}, not {mode!r}")
    if mode == "off":
        return train, None
    report = find_duplicates(
        {
            "train": [example_text(train, i) for i in range(len(train))],
            "dev": [example_text(dev, i) for i in range(len(dev))],
        },
        threshold=threshold,
    )
    leaked_train = report.leaked("train", "dev")
    leaked_dev = report.leaked("dev", "train")
    record: dict[str, Any] = {
        "mode": mode,
        "threshold": threshold,
        "method": f"MinHash, {report.unit} {report.ngram}-grams, {report.num_perm} permutations",
        "train_examples_duplicating_dev": len(leaked_train),
        "dev_examples_duplicated_in_train": len(leaked_dev),
        "pairs": len(report.pairs),
        "examples": [
            {"train": train.where(a), "dev": dev.where(b), "estimated_jaccard": j}
            for _, a, _, b, j in report.pairs[:SHOWN]
        ],
        "dropped": 0,
    }
    if not leaked_dev:
        return train, record

    # Each side's source is named once: repeating a long path per pair buried the row numbers.
    shown = "; ".join(
        f"train {row_of(train, a)} ≈ dev {row_of(dev, b)} ({j:.2f})" for _, a, _, b, j in report.pairs[:SHOWN]
    )
    found = (
        f"{len(leaked_dev)} of {len(dev)} dev examples duplicate {len(leaked_train)} training examples "
        f"(estimated Jaccard ≥ {threshold:g}; train: {train.source}, dev: {dev.source}), e.g. {shown}"
    )
    if mode == "refuse":
        raise LeakageError(
            f"{found}. Remove them, or set leakage to drop (drop them from the training data), warn or off "
            "(--set leakage=drop on the command line)"
        )
    if mode == "drop":
        if len(leaked_train) == len(train):
            raise LeakageError(f"{found}; dropping them would leave no training data")
        keep = np.setdiff1d(np.arange(len(train)), np.asarray(leaked_train, dtype=np.int64))
        record["dropped"] = len(leaked_train)
        log.warning("%s; dropped those %d training examples (leakage drop)", found, len(leaked_train))
        return train.subset(keep), record
    # Words that read the same to a Python caller and on the command line (no keyword repr).
    log.warning(
        "%s. To drop them from the training data set leakage to drop (--set leakage=drop on the "
        "command line); refuse stops instead",
        found,
    )
    return train, record
