"""Data in: files, data frames and lists → :class:`Examples`, the one shape training and evaluation read.

Accepted ``data`` for :func:`load_examples`:

- a path: ``.csv`` (standard quoting), ``.tsv`` (header row, **no quoting**: a ``"`` is a literal
  character, the common layout of research data sets), ``.jsonl``/``.ndjson`` (one JSON object a
  line; ``.json`` may also hold one array of objects), ``.parquet``/``.pq`` (needs ``pyarrow``);
  for ``task="token"`` any other extension (``.conll``, ``.txt``, ``.bio``, ...) is read as CoNLL:
  one token a line, its tag in the last column (TAB- or space-separated), a blank line between
  sentences, ``-DOCSTART-`` lines skipped; for ``task="mlm"`` a ``.txt`` file is one text a line.
- a pandas ``DataFrame``, a ``datasets.Dataset`` (``ClassLabel`` names are kept), a
  ``pyarrow.Table``, a dict of columns;
- a list of dicts (one per example), of tuples/lists by position: ``(text, label)``,
  ``(text, pair, label)`` for ``task="pair"``, ``(text, score)`` or ``(text, pair, score)`` for
  ``task="regression"``, ``(words, tags)`` for ``task="token"``; for ``task="mlm"`` also a plain
  list of strings.

Columns are found by name (case-insensitive; see ``TEXT_COLUMNS``, ``PAIR_COLUMNS`` and
``LABEL_COLUMNS``) unless ``text_column``, ``text_pair_column`` or ``label_column`` say otherwise
(a name, or a position). ``task="pair"`` needs a second text; ``task="regression"`` takes one
when the data has such a column (STS-B's ``sentence2``): ``Examples.pairs`` is then set and the
model should encode ``(text, pair)``. Token tasks take words and tags as lists (or as
whitespace-separated strings in a CSV/TSV cell).

Label names and ids: see `fastbert.data.labels`. Every problem with the data raises
`fastbert.errors.DataError` (a ``ValueError``) naming the source and the line (1-based, as an
editor shows it) or row; a missing file raises ``FileNotFoundError``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fastbert.config import TASKS, Task
from fastbert.data.columns import find_columns
from fastbert.data.labels import (
    LabelMap,
    class_value,
    float_value,
    is_missing,
    multilabel_delimiter,
    multilabel_values,
    text_value,
    translate_class_labels,
    words_value,
)
from fastbert.data.readers import Table, decode_text, read_table, split_lines
from fastbert.errors import DataError

__all__ = ["Examples", "data_fingerprint", "load_examples", "read_label_names"]

log = logging.getLogger("fastbert")


# ---------------------------------------------------------------- the result
@dataclass
class Examples:
    """Loaded examples, one entry per example in every per-example field.

    ``labels`` by task: classification/pair ``(n,)`` int64 ids; multilabel ``(n, C)`` float32 of
    0/1; regression ``(n,)`` float32; token a list of ``(words,)`` int64 arrays (word-level tag
    ids); mlm ``None``. ``label_names[i]`` names id ``i`` (``None`` for regression and mlm).
    ``rows`` holds each example's 1-based line number in ``source`` (``row_unit="line"``), or its
    1-based position in a data frame, list or Parquet file (``row_unit="row"``).
    """

    #: One string per example; for ``task="token"`` one list of words per sentence.
    texts: list[Any]
    #: The second text of each pair (``task="pair"``), else ``None``.
    pairs: list[str] | None
    labels: Any
    label_names: list[str] | None
    #: The file path as given, or ``"<DataFrame>"``, ``"<list>"``, ... for messages.
    source: str
    rows: np.ndarray
    #: What ``rows`` counts: ``"line"`` (text files) or ``"row"``.
    row_unit: str = "row"

    def __len__(self) -> int:
        return len(self.texts)

    def where(self, i: int) -> str:
        """``"train.tsv, line 17"``: where example ``i`` came from, for messages."""
        return f"{self.source}, {self.row_unit} {int(self.rows[i])}"

    def first_label(self) -> str | None:
        """``"train.tsv, line 2: 'pos'"``: the first example's (first) label, for messages; None
        without label names."""
        if self.label_names is None or self.labels is None or not len(self):
            return None
        first = self.labels[0]
        if isinstance(first, np.ndarray) and first.dtype.kind == "f":  # multilabel: a 0/1 row
            ids = np.flatnonzero(first > 0.5)
            if not ids.size:
                return None
            label_id = int(ids[0])
        else:
            label_id = int(np.asarray(first).reshape(-1)[0])
        return f"{self.where(0)}: {self.label_names[label_id]!r}"

    def subset(self, indices: Sequence[int] | np.ndarray) -> Examples:
        """The examples at ``indices``, in that order, with the same label names and source."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        take = idx.tolist()
        labels = self.labels
        if isinstance(labels, np.ndarray):
            labels = labels[idx]
        elif isinstance(labels, list):
            labels = [labels[i] for i in take]
        return Examples(
            texts=[self.texts[i] for i in take],
            pairs=None if self.pairs is None else [self.pairs[i] for i in take],
            labels=labels,
            label_names=None if self.label_names is None else list(self.label_names),
            source=self.source,
            rows=self.rows[idx],
            row_unit=self.row_unit,
        )

    def with_label_names(self, names: Sequence[str]) -> Examples:
        """These examples with label ids into ``names`` (the training set's), matched by name.

        A label not among ``names`` raises `DataError` naming its example. Examples without
        label names (regression, MLM) come back unchanged."""
        if self.label_names is None or list(self.label_names) == list(names):
            return self
        index = {name: i for i, name in enumerate(names)}
        missing = [n for n in self.label_names if n not in index]
        used = self._used_label_ids()
        for old, name in enumerate(self.label_names):
            if name in missing and old in used:
                raise DataError(
                    f"{self.where(used[old])}: label {name!r} is not one of the {len(names)} labels known: "
                    + ", ".join(names[:30])
                    + (", ..." if len(names) > 30 else "")
                )
        new_id = np.array([index.get(n, -1) for n in self.label_names], dtype=np.int64)
        labels = self.labels
        if isinstance(labels, list):  # token: word tag ids per sentence
            labels = [new_id[np.asarray(a, dtype=np.int64)] for a in labels]
        elif labels.ndim == 2:  # multilabel: one 0/1 column per label
            moved = np.zeros((labels.shape[0], len(names)), dtype=labels.dtype)
            keep = new_id >= 0
            moved[:, new_id[keep]] = labels[:, keep]
            labels = moved
        else:
            labels = new_id[labels]
        return Examples(self.texts, self.pairs, labels, list(names), self.source, self.rows, self.row_unit)

    def _used_label_ids(self) -> dict[int, int]:
        """Label id → the first example that uses it."""
        first: dict[int, int] = {}
        labels = self.labels
        for i in range(len(self)):
            if isinstance(labels, list):
                ids = np.unique(np.asarray(labels[i])).tolist()
            elif labels.ndim == 2:
                ids = np.flatnonzero(labels[i] > 0.5).tolist()
            else:
                ids = [int(labels[i])]
            for k in ids:
                first.setdefault(int(k), i)
        return first


# ---------------------------------------------------------------- load
def load_examples(
    data: Any,
    task: Task,
    *,
    text_column: str | int | None = None,
    text_pair_column: str | int | None = None,
    label_column: str | int | None = None,
    label_names: Sequence[str] | None = None,
    split: str = "train",
    numbered_labels: bool = True,
    names_from: str | None = None,
) -> Examples:
    """Read ``data`` (see the module docstring for what it can be) as :class:`Examples` for ``task``.

    ``label_names``: the training set's names, fixing id ↔ name for evaluation data (a label not
    among them raises); ``None`` derives them from the data, sorted. Integer labels against
    non-numeric ``label_names`` are ids into them, unless ``numbered_labels=False`` (dev or test
    data scored against a model trained on names), which refuses them naming ``names_from``. Loaded `Examples` come back
    as they are, their ids mapped to ``label_names`` when given. ``split``: ``"train"``
    rejects a classification set with a single class; any other name (``"dev"``, ``"test"``)
    does not. Raises :class:`DataError` naming the source and line/row of the first problem.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, not {task!r}")
    if isinstance(data, Examples):
        return data if label_names is None else data.with_label_names(label_names)
    if label_names is not None and task in ("regression", "mlm"):
        raise ValueError(f"label_names has no meaning for task={task!r}")
    table = read_table(data, task)
    n = len(table.rows)
    if n == 0:
        raise DataError(f"{table.source}: no examples")
    text_col, pair_col, label_col = find_columns(table, task, text_column, text_pair_column, label_column)
    where = table.where
    col = table.columns

    if task == "token":
        texts: list[Any] = [words_value(v, where(i), text_col) for i, v in enumerate(col[text_col])]
    else:
        texts = [text_value(v, where(i), text_col) for i, v in enumerate(col[text_col])]
    pairs = (
        None if pair_col is None else [text_value(v, where(i), pair_col) for i, v in enumerate(col[pair_col])]
    )

    labels: Any = None
    names: list[str] | None = None
    if task == "regression":
        labels = np.array([float_value(v, where(i)) for i, v in enumerate(col[label_col])], dtype=np.float32)
    elif task != "mlm":
        raw = translate_class_labels(col[label_col], table.class_names.get(label_col))
        declared = table.class_names.get(label_col)
        mapping = LabelMap(
            label_names if label_names is not None else declared,
            "tag" if task == "token" else "label",
            given=label_names is not None,
            numbered=numbered_labels,
            names_from=names_from,
        )
        if task == "token":
            values = []
            for i, (words, v) in enumerate(zip(texts, raw, strict=True)):
                if is_missing(v):
                    raise DataError(f"{where(i)}: missing tags in column {label_col!r}")
                tags = v.split() if isinstance(v, str) else v
                if not isinstance(tags, (list, tuple, np.ndarray)):
                    raise DataError(f"{where(i)}: column {label_col!r} must hold a list of tags")
                if len(tags) != len(words):
                    raise DataError(f"{where(i)}: {len(words)} words but {len(tags)} tags")
                values.append([class_value(t, where(i)) for t in tags])
        elif task == "multilabel":
            delimiter = multilabel_delimiter(raw)
            values = [multilabel_values(v, where(i), delimiter) for i, v in enumerate(raw)]
        else:
            values = [[class_value(v, where(i))] for i, v in enumerate(raw)]
        first_seen: dict[int | str, str] = {}
        for i, vs in enumerate(values):
            for v in vs:
                if v not in first_seen:
                    first_seen[v] = where(i)
        mapping.derive(first_seen, task)
        names = mapping.names
        ids = [[mapping.id(v, where(i)) for v in vs] for i, vs in enumerate(values)]
        if task == "token":
            labels = [np.array(x, dtype=np.int64) for x in ids]
            _warn_about_loose_inside_tags(table, values)
        elif task == "multilabel":
            labels = np.zeros((n, len(names)), dtype=np.float32)
            for i, x in enumerate(ids):
                labels[i, x] = 1.0
        else:
            labels = np.array([x[0] for x in ids], dtype=np.int64)
            present = np.unique(labels)
            if split == "train" and present.size < 2:
                raise DataError(
                    f"{table.source}: every training example has label {names[int(present[0])]!r}; "
                    f"task={task!r} needs at least two classes (check label_column)"
                )
    return Examples(
        texts=texts,
        pairs=pairs,
        labels=labels,
        label_names=names,
        source=table.source,
        rows=np.asarray(table.rows, dtype=np.int64),
        row_unit=table.unit,
    )


def _warn_about_loose_inside_tags(table: Table, tags: list[list[int | str]]) -> None:
    """In IOB2 data (it has ``B-`` tags), warn about ``I-X`` tags that do not follow ``B-X`` or
    ``I-X``, with their count and the first one's place. Entity scores read them as conlleval
    does (the start of an entity), so the data is used as it is; the warning says it may be wrong."""
    if not any(isinstance(t, str) and t.startswith("B-") for sentence in tags for t in sentence):
        return
    loose: list[tuple[int, int, str, str]] = []
    for i, sentence in enumerate(tags):
        previous = "O"
        for k, tag in enumerate(sentence):
            name = str(tag)
            if name.startswith("I-") and previous not in (f"B-{name[2:]}", name):
                loose.append((i, k, previous, name))
            previous = name
    if loose:
        i, k, previous, name = loose[0]
        after = "at the start of a sentence" if k == 0 else f"after {previous!r}"
        log.warning(
            f"{len(loose)} I- tags do not continue an entity of their type; the first: "
            f"{table.where_word(i, k)} ({name!r} {after}). Entity scores read each as the start of an "
            "entity (as conlleval does); in IOB2 an entity starts with B-"
        )


def read_label_names(path: str | os.PathLike) -> list[str]:
    """Label names from a text file, one a line in id order (blank lines skipped), e.g. ``labels.txt``."""
    source = os.fspath(path)
    if not Path(source).is_file():
        raise FileNotFoundError(f"label file not found: {source}")
    text = decode_text(Path(source).read_bytes(), source)
    names = [ln.strip() for ln in split_lines(text) if ln.strip()]
    if not names:
        raise DataError(f"{source}: no label names")
    if len(set(names)) != len(names):
        raise DataError(f"{source}: duplicate label names")
    return names


# ---------------------------------------------------------------- fingerprint
def data_fingerprint(ex: Examples) -> str:
    """SHA-256 (hex) of the texts, pairs, labels and label names: equal data, equal fingerprint.

    Independent of ``source`` and ``rows``, of the Python and numpy versions and of the byte order.
    """
    h = hashlib.sha256(b"fastbert-examples-v1")

    def put(tag: bytes, payload: bytes) -> None:
        h.update(tag + len(payload).to_bytes(8, "little"))
        h.update(payload)

    def put_json(tag: bytes, obj: Any) -> None:
        put(tag, json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))

    def put_array(tag: bytes, a: np.ndarray) -> None:
        a = np.ascontiguousarray(a)
        little = a.astype(a.dtype.newbyteorder("<"), copy=False)
        put(tag, f"{little.dtype.str}{list(a.shape)}".encode() + little.tobytes())

    put_json(b"texts", ex.texts)
    put_json(b"pairs", ex.pairs)
    put_json(b"names", ex.label_names)
    labels = ex.labels
    if labels is None:
        put(b"nolabels", b"")
    elif isinstance(labels, list):
        put_array(b"lengths", np.array([len(a) for a in labels], dtype=np.int64))
        put_array(b"tags", np.concatenate(labels).astype(np.int64) if labels else np.zeros(0, np.int64))
    else:
        put_array(b"labels", np.asarray(labels))
    return h.hexdigest()
