"""``fastbert predict``: a saved model's predictions, one per input line or table row."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from fastbert.cli.common import (
    CliError,
    Command,
    UsageError,
    atomic_output,
    existing_file,
    load_model,
    positive,
    progress,
    read_lines,
)
from fastbert.data.readers import TABLE_SUFFIXES
from fastbert.data.unlabelled import texts_from_lines, texts_from_table
from fastbert.errors import DataError

__all__ = ["COMMAND", "read_predict_inputs"]

PREDICT_FORMATS = ("jsonl", "tsv")
#: Texts handed to the model per call while predicting: one progress-bar step.
PREDICT_CHUNK = 1024


def read_predict_inputs(
    path: str | None, task: str, text_column: str | None, pair_column: str | None
) -> tuple[list[Any], list[str] | None]:
    """What `fastbert predict` predicts on: (texts, pairs or None).

    Tables (CSV/TSV/JSONL/Parquet) are read by their columns (`fastbert.data.unlabelled`).
    Anything else is text, one example a line: ``text<TAB>pair`` for pair models (and
    optionally for regression), whitespace-separated words for token models; for token models
    a file that is neither ``.txt`` nor stdin is CoNLL.
    """
    suffix = "" if path in (None, "-") else Path(path).suffix.lower()
    if path is not None and path != "-":
        existing_file(path, "--input")
    try:
        if path is not None and suffix in TABLE_SUFFIXES:
            return texts_from_table(path, task, text_column, pair_column)
        name, lines = read_lines(path)
        return texts_from_lines(name, lines, task, conll=suffix not in ("", ".txt"))
    except (DataError, FileNotFoundError) as e:
        raise CliError.of(e) from None


def _predict_records(ft: Any, texts: list[Any], pairs: list[str] | None, batch_size: int) -> list[dict]:
    """One dict per example: the prediction and, where it has one, its probability."""
    import numpy as np

    from fastbert.data.labels import label_values
    from fastbert.evaluation.thresholds import decide

    task = ft.task
    names = label_values(ft.label_names or [])  # integer labels are written as numbers
    if task == "token":
        out: list[dict] = []
        todo = [i for i, w in enumerate(texts) if w]
        tags = ft.predict([texts[i] for i in todo], batch_size=batch_size) if todo else []
        by_index = dict(zip(todo, tags, strict=True))
        for i, words in enumerate(texts):
            out.append({"words": list(words), "tags": by_index.get(i, [])})
        return out
    if pairs is None:
        base = [{"text": t} for t in texts]
    else:
        base = [{"text": t, "pair": p} for t, p in zip(texts, pairs, strict=True)]
    if task == "regression":
        scores = ft.predict(texts, pairs, batch_size=batch_size)
        return [{**b, "score": float(s)} for b, s in zip(base, scores, strict=True)]
    probs = np.asarray(ft.predict_proba(texts, pairs, batch_size=batch_size))
    # The dev-tuned cuts (a binary model's, or one per label), else argmax and 0.5.
    chosen = decide(task, probs, ft.thresholds)
    if task == "multilabel":
        return [
            {
                **b,
                "labels": [names[j] for j in np.flatnonzero(picked)],
                "probabilities": [round(float(row[j]), 6) for j in np.flatnonzero(picked)],
            }
            for b, row, picked in zip(base, probs, chosen, strict=True)
        ]
    return [
        {**b, "label": names[int(k)], "probability": round(float(row[k]), 6)}
        for b, k, row in zip(base, chosen, probs, strict=True)
    ]


def _render_predictions(records: list[dict], fmt: str) -> bytes:
    lines = []
    for r in records:
        if fmt == "jsonl":
            lines.append(json.dumps(r, ensure_ascii=False, separators=(",", ":")))
        elif "tags" in r:
            lines.append(" ".join(r["tags"]))
        elif "labels" in r:
            lines.append(",".join(r["labels"]))
        elif "score" in r:
            lines.append(repr(r["score"]))
        else:
            lines.append(f"{r['label']}\t{r['probability']:.6f}")
    return "".join(line + "\n" for line in lines).encode("utf-8")


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model_dir", metavar="DIR", help="a folder saved by fastbert finetune")
    p.add_argument(
        "--input",
        "-i",
        metavar="FILE",
        help="text, one example a line (pair models: text<TAB>pair; token models: words separated by "
        "spaces, or a CoNLL file); or a CSV/TSV/JSONL/Parquet table (default: stdin)",
    )
    p.add_argument(
        "--output", "-o", metavar="FILE", help="write here instead of stdout (replaced only on success)"
    )
    p.add_argument(
        "--format",
        choices=PREDICT_FORMATS,
        default="jsonl",
        help="jsonl: one JSON object per example with the text and the prediction; tsv: the prediction "
        "alone (label<TAB>probability, labels joined by commas, a score, or tags), one line per example "
        "(default: jsonl)",
    )
    p.add_argument("--text-column", metavar="NAME", help="tables: the text column (default: as trained)")
    p.add_argument("--text-pair-column", metavar="NAME", help="tables: the second text column")
    p.add_argument("--batch-size", type=positive, default=64, metavar="N", help="default 64")
    p.add_argument("--device", default="auto", metavar="DEV", help="auto, cpu, cuda, ... (default auto)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _run(args: argparse.Namespace) -> int:
    if args.input is None and sys.stdin.isatty():
        raise UsageError("no input: give --input FILE, or pipe text into stdin")
    ft = load_model(args.model_dir, args.device)
    if ft.task == "mlm":
        raise CliError(
            f"{args.model_dir}: an MLM model has nothing to predict; fine-tune it for a task first"
        )
    texts, pairs = read_predict_inputs(
        args.input,
        ft.task,
        args.text_column or ft.config.text_column,
        args.text_pair_column or ft.config.text_pair_column,
    )
    bar = progress(len(texts), "text", not args.no_progress)
    try:
        with atomic_output(args.output) as out:
            for start in range(0, len(texts), PREDICT_CHUNK):
                chunk = texts[start : start + PREDICT_CHUNK]
                chunk_pairs = None if pairs is None else pairs[start : start + PREDICT_CHUNK]
                records = _predict_records(ft, chunk, chunk_pairs, args.batch_size)
                out.write(_render_predictions(records, args.format))
                if bar is not None:
                    bar.update(len(chunk))
    finally:
        if bar is not None:
            bar.close()
    return 0


COMMAND = Command(
    name="predict",
    help="predict with a saved model, one prediction per input line or row",
    add_arguments=_add_arguments,
    run=_run,
)
