"""Data in: files, data frames and lists → :class:`Examples`, the one shape training and evaluation read.

Accepted ``data`` for :func:`load_examples`:

- a path: ``.csv`` (standard quoting), ``.tsv`` (header row, **no quoting**: a ``"`` is a literal
  character, as in every ``*.tsv`` of ``shared/data``), ``.jsonl``/``.ndjson`` (one JSON object a
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

Label ids. With ``label_names`` given (the training set's), they fix the mapping and an unknown
label is an error naming it. Otherwise the names are the distinct labels *sorted*: integers
numerically (``2 < 10``; labels read from text files that are all integers count as integers),
strings lexicographically; a ``datasets`` ``ClassLabel`` keeps its own order. Integer labels
against non-numeric ``label_names`` are ids into them. For ``task="token"`` BIO tags are ordered
``O, B-t, I-t, ...`` by sorted type ``t``, both ``B-``/``I-`` of every type seen included (the order
``fastbert.align.bio_labels`` uses); other tag sets are sorted. Multi-label values are lists, or
strings split on the first of ``,`` ``;`` ``|`` that occurs in the column (``admiration,joy``).

Every problem with the data raises :class:`DataError` (a ``ValueError``) naming the source and
the line (1-based, as an editor shows it) or row; a missing file raises ``FileNotFoundError``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

__all__ = [
    "LABEL_COLUMNS",
    "PAIR_COLUMNS",
    "TASKS",
    "TEXT_COLUMNS",
    "DataError",
    "Examples",
    "Task",
    "data_fingerprint",
    "load_examples",
    "read_label_names",
    "stratified_split",
]

Task = Literal["classification", "pair", "multilabel", "regression", "token", "mlm"]
TASKS: tuple[str, ...] = ("classification", "pair", "multilabel", "regression", "token", "mlm")

#: Column names tried in order (case-insensitive) when no column is given, per role and task.
TEXT_COLUMNS: dict[str, tuple[str, ...]] = {
    "default": (
        "text", "sentence", "sentence1", "text1", "text_a", "question", "question1", "query",
        "review", "content", "document", "utterance", "tweet", "comment", "body", "input", "prompt",
    ),
    "pair": (
        "sentence1", "text1", "text_a", "question1", "premise", "query", "question", "text", "sentence",
        "anchor",
    ),
    "token": ("tokens", "words", "token", "word", "text", "sentence"),
}  # fmt: skip
PAIR_COLUMNS: tuple[str, ...] = (
    "sentence2", "text2", "text_b", "text_pair", "question2", "hypothesis", "passage", "context",
    "answer", "response", "positive",
)  # fmt: skip
LABEL_COLUMNS: dict[str, tuple[str, ...]] = {
    "default": (
        "label", "labels", "target", "intent", "class", "category", "y", "gold_label", "sentiment",
        "emotion", "score", "rating", "level",
    ),
    "multilabel": ("labels", "label", "emotions", "tags", "categories", "topics", "target", "y"),
    "regression": (
        "score", "label", "labels", "target", "similarity", "similarity_score", "relatedness_score",
        "rating", "y",
    ),
    "token": ("tags", "ner_tags", "labels", "label", "tag", "ner", "pos_tags"),
}  # fmt: skip

_SEQUENCE_TASKS = ("classification", "pair")
_INT = re.compile(r"[+-]?\d+")
_BINARY_MAGIC = (
    (b"PAR1", "Parquet"),
    (b"PK\x03\x04", "zip (or .xlsx/.docx)"),
    (b"\x1f\x8b", "gzip"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"SQLite format 3\x00", "SQLite"),
    (b"\x89PNG", "PNG"),
)


class DataError(ValueError):
    """The data cannot be used as given; the message names the source and the line, row or column."""


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
    texts: list[str] | list[list[str]]
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


# ---------------------------------------------------------------- tables
@dataclass
class _Table:
    """Raw records as columns. ``names`` are strings, or positions (ints) for headerless tuples."""

    source: str
    unit: str
    names: list[Any]
    columns: dict[Any, list[Any]]
    rows: list[int]
    #: ``ClassLabel`` names of ``datasets`` columns: ``{column: names}``.
    class_names: dict[Any, list[str]]

    def where(self, i: int) -> str:
        return f"{self.source}, {self.unit} {self.rows[i]}"


def _table(names: list[Any], records: list[list[Any]], rows: list[int], source: str, unit: str) -> _Table:
    columns = {name: [r[k] for r in records] for k, name in enumerate(names)}
    return _Table(source, unit, names, columns, rows, {})


def _check_header(names: list[str], source: str, unit: str) -> None:
    seen: dict[str, int] = {}
    for k, name in enumerate(names):
        key = name.strip().lower()
        if key in seen:
            raise DataError(
                f"{source}, {unit} 1: column {name!r} appears twice (columns {seen[key] + 1} and {k + 1})"
            )
        seen[key] = k


# ---------------------------------------------------------------- reading files
def _decode(raw: bytes, source: str) -> str:
    """UTF-8 text of a file; binary content and bad bytes raise with the line they are on."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DataError(f"{source}: the file is UTF-16 encoded; save it as UTF-8")
    for magic, kind in _BINARY_MAGIC:
        if raw.startswith(magic):
            raise DataError(f"{source}: binary content (this looks like a {kind} file), not text")
    nul = raw.find(b"\x00")
    if nul >= 0:
        if nul < 8192:
            raise DataError(f"{source}: binary content (NUL bytes), not a text file")
        line = raw.count(b"\n", 0, nul) + 1
        raise DataError(f"{source}, line {line}: NUL byte in a text file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        col = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise DataError(
            f"{source}, line {line}: not valid UTF-8 (byte 0x{raw[e.start]:02x} at byte {col} of the line); "
            "save the file as UTF-8"
        ) from None
    return text.removeprefix("\ufeff")


def _lines(text: str) -> list[str]:
    """Lines without their ``\\n`` / ``\\r\\n`` endings; no empty last line for a final newline."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


def _read_tsv(text: str, source: str) -> _Table:
    """Tab-separated with a header row and no quoting: fields are split on TAB and nothing else."""
    lines = _lines(text)
    if not lines:
        raise DataError(f"{source}: the file is empty")
    names = lines[0].split("\t")
    _check_header(names, source, "line")
    records, rows = [], []
    for ln, line in enumerate(lines[1:], 2):
        if not line:
            continue
        fields = line.split("\t")
        if len(fields) != len(names):
            raise DataError(
                f"{source}, line {ln}: {len(fields)} tab-separated fields, but the header has {len(names)} "
                f"({', '.join(names)}); TSV fields cannot contain tabs"
            )
        records.append(fields)
        rows.append(ln)
    return _table(names, records, rows, source, "line")


def _read_csv(text: str, source: str) -> _Table:
    """Comma-separated with a header row and standard ``"`` quoting (fields may span lines)."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    names: list[str] | None = None
    records, rows = [], []
    last = 0
    try:
        for fields in reader:
            start, last = last + 1, reader.line_num
            if not fields:
                continue
            if names is None:
                names = fields
                _check_header(names, source, "line")
                continue
            if len(fields) != len(names):
                raise DataError(
                    f"{source}, line {start}: {len(fields)} fields, but the header has {len(names)} "
                    f"({', '.join(names)})"
                )
            records.append(fields)
            rows.append(start)
    except csv.Error as e:
        raise DataError(f"{source}, line {reader.line_num}: malformed CSV ({e})") from None
    if names is None:
        raise DataError(f"{source}: the file is empty")
    return _table(names, records, rows, source, "line")


def _read_jsonl(text: str, source: str) -> _Table:
    """One JSON object a line; a ``.json`` file may instead hold one array of objects."""
    objects: list[tuple[int, Any]] = []
    unit = "line"
    if text.lstrip().startswith("["):
        try:
            array = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(
                f"{source}, line {e.lineno}: not valid JSON ({e.msg}, column {e.colno})"
            ) from None
        objects = list(enumerate(array, 1))
        unit = "record"
    else:
        for ln, line in enumerate(_lines(text), 1):
            if not line.strip():
                continue
            try:
                objects.append((ln, json.loads(line)))
            except json.JSONDecodeError as e:
                raise DataError(f"{source}, line {ln}: not valid JSON ({e.msg}, column {e.colno})") from None
    names: dict[str, None] = {}
    for n, obj in objects:
        if not isinstance(obj, dict):
            raise DataError(f"{source}, {unit} {n}: expected a JSON object, got {type(obj).__name__}")
        names.update(dict.fromkeys(obj))
    cols = list(names)
    records = [[obj.get(c) for c in cols] for _, obj in objects]
    return _table(cols, records, [n for n, _ in objects], source, unit)


def _read_conll(text: str, source: str) -> _Table:
    """CoNLL: ``TOKEN ... TAG`` a line (TAB- or space-separated), blank line between sentences."""
    sentences: list[list[Any]] = []
    rows: list[int] = []
    words: list[str] = []
    tags: list[str] = []
    for ln, line in enumerate(_lines(text), 1):
        if not line.strip():  # a whitespace-only line (e.g. a lone TAB) also ends a sentence
            parts = []
        elif "\t" in line:
            parts = [p.strip(" ") for p in line.split("\t")]
        else:
            parts = [p for p in line.split(" ") if p]
        if not parts or parts[0] == "-DOCSTART-":
            if words:
                sentences.append([words, tags])
                words, tags = [], []
            continue
        if len(parts) < 2 or not parts[-1]:
            raise DataError(
                f"{source}, line {ln}: expected a token and its tag (last column), separated by a "
                f"tab or a space; got {line!r}"
            )
        if not words:
            rows.append(ln)
        words.append(parts[0])
        tags.append(parts[-1])
    if words:
        sentences.append([words, tags])
    return _table(["tokens", "tags"], sentences, rows, source, "line")


def _read_lines(text: str, source: str) -> _Table:
    """Plain text for MLM: every non-blank line is one text."""
    records, rows = [], []
    for ln, line in enumerate(_lines(text), 1):
        if line.strip():
            records.append([line])
            rows.append(ln)
    return _table(["text"], records, rows, source, "line")


def _read_parquet(path: Path, source: str) -> _Table:
    with open(path, "rb") as f:
        if f.read(4) != b"PAR1":
            raise DataError(f"{source}: not a Parquet file (no PAR1 magic bytes)")
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError(f"reading {source} needs pyarrow: pip install pyarrow") from None
    try:
        columns = pq.read_table(path).to_pydict()
    except Exception as e:  # pyarrow raises several types for damaged files
        raise DataError(f"{source}: cannot read the Parquet file ({e})") from None
    names = list(columns)
    n = len(columns[names[0]]) if names else 0
    return _Table(source, "row", names, columns, list(range(1, n + 1)), {})


_DELIMITED = {".csv": _read_csv, ".tsv": _read_tsv, ".tab": _read_tsv}
_JSON = (".jsonl", ".ndjson", ".json")
_PARQUET = (".parquet", ".pq")


def _read_file(data: str | os.PathLike, task: str) -> _Table:
    source = os.fspath(data)
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"data file not found: {source}")
    if path.is_dir():
        raise DataError(f"{source} is a folder; pass one file (e.g. {source}/train.tsv)")
    ext = path.suffix.lower()
    if ext in _PARQUET:
        return _read_parquet(path, source)
    known = (*_DELIMITED, *_JSON, *_PARQUET)
    if ext not in known and task not in ("token", "mlm"):
        raise DataError(
            f"{source}: unsupported file type {ext or '(no extension)'!r}; use one of "
            f"{', '.join(known)} (CoNLL files are read for task='token', plain .txt for task='mlm')"
        )
    if task == "mlm" and ext not in known and ext != ".txt":
        raise DataError(f"{source}: unsupported file type {ext or '(no extension)'!r} for task='mlm'")
    text = _decode(path.read_bytes(), source)
    if ext in _DELIMITED:
        return _DELIMITED[ext](text, source)
    if ext in _JSON:
        return _read_jsonl(text, source)
    return _read_conll(text, source) if task == "token" else _read_lines(text, source)


# ---------------------------------------------------------------- in-memory inputs
def _class_label_names(feature: Any) -> list[str] | None:
    """Names of a ``datasets.ClassLabel``, or of the ``ClassLabel`` inside a sequence feature."""
    for f in (feature, getattr(feature, "feature", None)):
        names = getattr(f, "names", None)
        if isinstance(names, list) and names and all(isinstance(x, str) for x in names):
            return names
    return None


def _from_records(records: list[Any], source: str, task: str) -> _Table:
    first = records[0]
    if isinstance(first, dict):
        names: dict[Any, None] = {}
        for i, r in enumerate(records, 1):
            if not isinstance(r, dict):
                raise DataError(f"{source}, row {i}: expected a dict like row 1, got {type(r).__name__}")
            names.update(dict.fromkeys(r))
        cols = list(names)
        rows = [[r.get(c) for c in cols] for r in records]
        return _table([str(c) for c in cols], rows, list(range(1, len(records) + 1)), source, "row")
    if isinstance(first, str):
        if task != "mlm":
            raise DataError(
                f"{source}: a list of strings has no labels; for task={task!r} pass (text, label) tuples "
                "or dicts"
            )
        return _table(["text"], [[r] for r in records], list(range(1, len(records) + 1)), source, "row")
    if isinstance(first, (tuple, list)):
        width = len(first)
        for i, r in enumerate(records, 1):
            if not isinstance(r, (tuple, list)) or len(r) != width:
                got = f"{len(r)} fields" if isinstance(r, (tuple, list)) else type(r).__name__
                raise DataError(f"{source}, row {i}: expected {width} fields like row 1, got {got}")
        return _table(
            list(range(width)), [list(r) for r in records], list(range(1, len(records) + 1)), source, "row"
        )
    raise DataError(f"{source}: expected dicts or tuples as examples, got {type(first).__name__}")


def _to_table(data: Any, task: str) -> _Table:
    if isinstance(data, (str, os.PathLike)):
        return _read_file(data, task)
    if isinstance(data, dict):
        if data and all(isinstance(v, (list, tuple, np.ndarray)) for v in data.values()):  # columns
            lengths = {len(v) for v in data.values()}
            if len(lengths) != 1:
                raise DataError(f"<dict>: columns have different lengths {sorted(lengths)}")
            names = [str(k) for k in data]
            cols = {str(k): list(v) for k, v in data.items()}
            return _Table("<dict>", "row", names, cols, list(range(1, lengths.pop() + 1)), {})
        raise DataError(
            "<dict>: expected a dict of columns (name -> list of values); for a DatasetDict or a dict "
            "of splits pass one split, e.g. data['train']"
        )
    if hasattr(data, "features") and hasattr(data, "column_names"):  # datasets.Dataset
        if hasattr(data, "__getitem__") and hasattr(data, "__len__"):
            ds = data.with_format(None) if hasattr(data, "with_format") else data
            cols = dict(ds[:]) if len(ds) else {c: [] for c in data.column_names}
        else:  # IterableDataset
            records = list(data)
            cols = {c: [r.get(c) for r in records] for c in data.column_names}
        names = list(cols)
        class_names = {c: n for c in names if (n := _class_label_names(data.features.get(c))) is not None}
        n = len(cols[names[0]]) if names else 0
        return _Table("<Dataset>", "row", names, cols, list(range(1, n + 1)), class_names)
    if hasattr(data, "iloc") and hasattr(data, "columns"):  # pandas.DataFrame
        names = [str(c) for c in data.columns]
        if len(set(names)) != len(names):
            raise DataError(f"<DataFrame>: duplicate column names {names}")
        cols = {str(c): data[c].tolist() for c in data.columns}
        return _Table("<DataFrame>", "row", names, cols, list(range(1, len(data) + 1)), {})
    if hasattr(data, "to_pydict") and hasattr(data, "column_names"):  # pyarrow.Table
        cols = data.to_pydict()
        return _Table("<Table>", "row", list(cols), cols, list(range(1, data.num_rows + 1)), {})
    if isinstance(data, (list, tuple)):
        if not data:
            raise DataError("<list>: no examples")
        return _from_records(list(data), "<list>", task)
    raise DataError(
        f"unsupported data of type {type(data).__name__}: pass a .csv/.tsv/.jsonl/.parquet/CoNLL path, a "
        "pandas DataFrame, a datasets.Dataset, or a list of dicts or tuples"
    )


# ---------------------------------------------------------------- columns
def _pick(table: _Table, role: str, given: Any, candidates: Sequence[str], param: str, taken: set) -> Any:
    """The column for ``role``: the one the caller named, else the first candidate present."""
    names = table.names
    if given is not None:
        if isinstance(given, int) and not isinstance(given, bool) and 0 <= given < len(names):
            return names[given]
        for name in names:
            if name == given:
                return name
        for name in names:
            if (
                isinstance(name, str)
                and isinstance(given, str)
                and name.strip().lower() == given.strip().lower()
            ):
                return name
        raise DataError(f"{table.source}: no column {given!r} ({param}); the columns are {names}")
    lowered = {n.strip().lower(): n for n in names if isinstance(n, str) and n not in taken}
    for cand in candidates:
        if cand in lowered:
            return lowered[cand]
    raise DataError(
        f"{table.source}: cannot tell which column is the {role}; looked for {', '.join(candidates)}; "
        f"the columns are {names}. Pass {param}='...'"
    )


def _columns(table: _Table, task: str, text_column: Any, pair_column: Any, label_column: Any) -> tuple:
    """(text, pair or None, label or None) column keys of ``table``.

    ``task="pair"`` needs a second text; ``task="regression"`` takes one when the data has it
    (STS-B style pair regression), and the model should then encode ``(text, pair)``.
    """
    positional = bool(table.names) and all(isinstance(n, int) for n in table.names)
    if pair_column is not None and task not in ("pair", "regression"):
        raise DataError(
            f"text_pair_column is used with task='pair' or 'regression', not task={task!r} "
            "(sentence-pair classification is task='pair')"
        )
    if positional:  # headerless tuples: (text, label), (text, pair, label), (words, tags), (text, ...)
        width = len(table.names)
        layouts = {
            "pair": ("(text, pair, label)", (3,)),
            "regression": ("(text, score) or (text, pair, score)", (2, 3)),
            "token": ("(words, tags)", (2,)),
            "mlm": ("(text,)", range(1, 1 << 30)),
        }
        layout, widths = layouts.get(task, ("(text, label)", (2,)))
        explicit = text_column is not None and (task == "mlm" or label_column is not None)
        if width not in widths and not explicit:
            raise DataError(
                f"{table.source}: tuples of {width} fields, but task={task!r} expects {layout}; "
                "or pass text_column / label_column as positions"
            )
        text = 0 if text_column is None else _pick(table, "text", text_column, (), "text_column", set())
        pair = label = None
        if pair_column is not None:
            pair = _pick(table, "pair", pair_column, (), "text_pair_column", set())
        elif task == "pair" or (task == "regression" and width == 3 and not explicit):
            pair = 1
        if task != "mlm":
            label = (
                width - 1
                if label_column is None
                else _pick(table, "label", label_column, (), "label_column", set())
            )
        return text, pair, label
    texts = TEXT_COLUMNS.get(task, TEXT_COLUMNS["default"])
    labels = LABEL_COLUMNS.get(task, LABEL_COLUMNS["default"])
    taken: set = set()
    label = None
    if task != "mlm":
        label = _pick(table, "label", label_column, labels, "label_column", taken)
        taken.add(label)
    pair = None
    if task == "pair" or pair_column is not None:
        pair = _pick(table, "second text", pair_column, PAIR_COLUMNS, "text_pair_column", taken)
    elif task == "regression":
        present = {n.strip().lower(): n for n in table.names if isinstance(n, str) and n not in taken}
        pair = next((present[c] for c in PAIR_COLUMNS if c in present), None)
    if pair is not None:
        taken.add(pair)
    text = _pick(table, "text", text_column, texts, "text_column", taken)
    if text in (label, pair):
        raise DataError(f"{table.source}: column {text!r} cannot be both the text and the label/pair")
    return text, pair, label


# ---------------------------------------------------------------- values
def _missing(v: Any) -> bool:
    if v is None:
        return True
    if isinstance(v, (float, np.floating)):
        return bool(np.isnan(v))
    return type(v).__name__ in ("NAType", "NaTType")


def _text(v: Any, where: str, column: Any) -> str:
    if _missing(v):
        raise DataError(f"{where}: missing text in column {column!r}")
    if not isinstance(v, str):
        raise DataError(f"{where}: text in column {column!r} must be a string, got {type(v).__name__} {v!r}")
    if not v.strip():
        raise DataError(f"{where}: empty text in column {column!r}")
    return v


def _words(v: Any, where: str, column: Any) -> list[str]:
    if _missing(v):
        raise DataError(f"{where}: missing words in column {column!r}")
    if isinstance(v, str):
        v = v.split()
    if not isinstance(v, (list, tuple, np.ndarray)):
        raise DataError(f"{where}: column {column!r} must hold a list of words, got {type(v).__name__}")
    words = list(v)
    if not words:
        raise DataError(f"{where}: empty sentence (no words) in column {column!r}")
    for k, w in enumerate(words):
        if not isinstance(w, str):
            raise DataError(f"{where}: word {k + 1} must be a string, got {type(w).__name__} {w!r}")
        if not w.strip():
            raise DataError(f"{where}: word {k + 1} is empty or whitespace (it would get no tokens)")
    return words


def _class_value(v: Any, where: str) -> int | str:
    """A class label as an ``int`` or a stripped ``str``; integer strings become ``int``."""
    if _missing(v):
        raise DataError(f"{where}: missing label")
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        if math.isfinite(v) and float(v).is_integer():
            return int(v)
        raise DataError(
            f"{where}: label {v!r} is not a class (for real-valued targets use task='regression')"
        )
    if isinstance(v, str):
        s = v.strip()
        if not s:
            raise DataError(f"{where}: empty label")
        return int(s) if _INT.fullmatch(s) else s
    raise DataError(f"{where}: unsupported label {v!r} of type {type(v).__name__}")


def _float_value(v: Any, where: str) -> float:
    if _missing(v) or (isinstance(v, str) and not v.strip()):
        raise DataError(f"{where}: missing target value")
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, str, np.integer, np.floating)):
        raise DataError(f"{where}: target {v!r} is not a number")
    try:
        x = float(v)
    except ValueError:
        raise DataError(f"{where}: target {v!r} is not a number") from None
    if not math.isfinite(x):
        raise DataError(f"{where}: target {v!r} is not finite")
    return x


def _sort_key(v: int | str) -> tuple[int, Any]:
    return (0, v) if isinstance(v, int) else (1, v)


def _is_float(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _is_bio(values: Iterable[int | str]) -> bool:
    return all(isinstance(v, str) and (v == "O" or (v[:2] in ("B-", "I-") and len(v) > 2)) for v in values)


def _names_from_data(first_seen: dict[int | str, str], task: str) -> list[str]:
    """Sorted label names (ints numerically, strings lexicographically; BIO order for tags)."""
    values = list(first_seen)
    if len({type(v) for v in values}) > 1:
        num = next(v for v in values if isinstance(v, int))
        word = next(v for v in values if isinstance(v, str))
        raise DataError(
            f"labels mix numbers and names: {num!r} ({first_seen[num]}) and {word!r} ({first_seen[word]}); "
            "use one kind, or pass label_names"
            + ("; for real-valued targets use task='regression'" if _is_float(word) else "")
        )
    if task == "token" and _is_bio(values):
        types = sorted({str(v)[2:] for v in values if v != "O"})
        return ["O", *[f"{p}-{t}" for t in types for p in ("B", "I")]]
    return [str(v) for v in sorted(values, key=_sort_key)]


class _LabelMap:
    """Label values (``int | str``) → ids, fixed by given names or derived from the data."""

    def __init__(self, label_names: Sequence[str] | None, what: str, given: bool) -> None:
        self.what = what  # "label" or "tag", for messages
        self.given = given  # names came from the caller (else from a ClassLabel or the data)
        self.names: list[str] = []
        if label_names is not None:
            names = [str(n) for n in label_names]
            if not names:
                raise ValueError("label_names is empty")
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup:
                raise ValueError(f"label_names has duplicates: {dup}")
            self._set(names)
        self.fixed = label_names is not None

    def _set(self, names: list[str]) -> None:
        self.names = names
        # Integer labels match integer-like names by value ("1" == "01"); against other names they are ids.
        self.numeric = all(_INT.fullmatch(n.strip()) for n in names)
        self.by_name = {n: i for i, n in enumerate(names)}
        self.by_int = {int(n): i for i, n in enumerate(names)} if self.numeric else {}

    def derive(self, first_seen: dict[int | str, str], task: str) -> None:
        """Names from the data (``first_seen``: value → where it first occurs), unless fixed."""
        if not self.fixed:
            self._set(_names_from_data(first_seen, task))

    def id(self, v: int | str, where: str) -> int:
        if isinstance(v, int) and not self.numeric:
            if 0 <= v < len(self.names):
                return v
            i = None
        else:
            i = self.by_int.get(v) if isinstance(v, int) else self.by_name.get(v)
        if i is None:
            shown = ", ".join(self.names[:30]) + (", ..." if len(self.names) > 30 else "")
            if isinstance(v, int) and not self.numeric:
                raise DataError(
                    f"{where}: {self.what} id {v} is out of range for the {len(self.names)} names ({shown})"
                )
            origin = "in label_names (the training set's)" if self.given else "known"
            raise DataError(
                f"{where}: {self.what} {v!r} is not one of the {len(self.names)} {self.what}s {origin}: {shown}"
            )
        return i


def _multilabel_delimiter(values: list[Any]) -> str | None:
    for d in (",", ";", "|"):
        if any(isinstance(v, str) and d in v for v in values):
            return d
    return None


def _multilabel_values(v: Any, where: str, delimiter: str | None) -> list[int | str]:
    if isinstance(v, str):
        if not v.strip():
            raise DataError(f"{where}: empty labels (an example with no labels is written as [] in JSON)")
        parts = v.split(delimiter) if delimiter else [v]
        if any(not p.strip() for p in parts):
            raise DataError(f"{where}: empty label in {v!r}")
        return [_class_value(p, where) for p in parts]
    if isinstance(v, (list, tuple, np.ndarray)):
        return [_class_value(x, where) for x in v]
    return [_class_value(v, where)]


def _translate_class_labels(values: list[Any], names: list[str] | None) -> list[Any]:
    """``datasets`` ``ClassLabel`` ids → their names, so that given ``label_names`` match by name."""
    if names is None:
        return values

    def conv(x: Any) -> Any:
        if isinstance(x, (list, tuple)):
            return [conv(y) for y in x]
        if isinstance(x, (int, np.integer)) and not isinstance(x, bool) and 0 <= x < len(names):
            return names[x]
        return x

    return [conv(x) for x in values]


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
) -> Examples:
    """Read ``data`` (see the module docstring for what it can be) as :class:`Examples` for ``task``.

    ``label_names``: the training set's names, fixing id ↔ name for evaluation data (a label not
    among them raises); ``None`` derives them from the data, sorted. ``split``: ``"train"``
    rejects a classification set with a single class; any other name (``"dev"``, ``"test"``)
    does not. Raises :class:`DataError` naming the source and line/row of the first problem.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, not {task!r}")
    if isinstance(data, Examples):
        return data
    if label_names is not None and task in ("regression", "mlm"):
        raise ValueError(f"label_names has no meaning for task={task!r}")
    table = _to_table(data, task)
    n = len(table.rows)
    if n == 0:
        raise DataError(f"{table.source}: no examples")
    text_col, pair_col, label_col = _columns(table, task, text_column, text_pair_column, label_column)
    where = table.where
    col = table.columns

    if task == "token":
        texts: list[Any] = [_words(v, where(i), text_col) for i, v in enumerate(col[text_col])]
    else:
        texts = [_text(v, where(i), text_col) for i, v in enumerate(col[text_col])]
    pairs = None if pair_col is None else [_text(v, where(i), pair_col) for i, v in enumerate(col[pair_col])]

    labels: Any = None
    names: list[str] | None = None
    if task == "regression":
        labels = np.array([_float_value(v, where(i)) for i, v in enumerate(col[label_col])], dtype=np.float32)
    elif task != "mlm":
        raw = _translate_class_labels(col[label_col], table.class_names.get(label_col))
        declared = table.class_names.get(label_col)
        mapping = _LabelMap(
            label_names if label_names is not None else declared,
            "tag" if task == "token" else "label",
            given=label_names is not None,
        )
        if task == "token":
            values = []
            for i, (words, v) in enumerate(zip(texts, raw, strict=True)):
                if _missing(v):
                    raise DataError(f"{where(i)}: missing tags in column {label_col!r}")
                tags = v.split() if isinstance(v, str) else v
                if not isinstance(tags, (list, tuple, np.ndarray)):
                    raise DataError(f"{where(i)}: column {label_col!r} must hold a list of tags")
                if len(tags) != len(words):
                    raise DataError(f"{where(i)}: {len(words)} words but {len(tags)} tags")
                values.append([_class_value(t, where(i)) for t in tags])
        elif task == "multilabel":
            delimiter = _multilabel_delimiter(raw)
            values = [_multilabel_values(v, where(i), delimiter) for i, v in enumerate(raw)]
        else:
            values = [[_class_value(v, where(i))] for i, v in enumerate(raw)]
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


def read_label_names(path: str | os.PathLike) -> list[str]:
    """Label names from a text file, one a line in id order (blank lines skipped), e.g. ``labels.txt``."""
    source = os.fspath(path)
    if not Path(source).is_file():
        raise FileNotFoundError(f"label file not found: {source}")
    text = _decode(Path(source).read_bytes(), source)
    names = [ln.strip() for ln in _lines(text) if ln.strip()]
    if not names:
        raise DataError(f"{source}: no label names")
    if len(set(names)) != len(names):
        raise DataError(f"{source}: duplicate label names")
    return names


# ---------------------------------------------------------------- split
def _strata(ex: Examples) -> np.ndarray:
    """A group id per example that the dev split keeps in proportion.

    classification/pair: the class; multi-label: the example's rarest label (-1 for none);
    regression: one of up to 10 quantile bins of the target; token: the sentence's rarest tag;
    mlm: one group.
    """
    n = len(ex)
    labels = ex.labels
    if labels is None:
        return np.zeros(n, dtype=np.int64)
    if isinstance(labels, list):  # token
        counts = np.bincount(np.concatenate(labels), minlength=len(ex.label_names or ()))
        return np.array([int(a[np.argmin(counts[a])]) for a in labels], dtype=np.int64)
    if labels.ndim == 2:  # multilabel
        freq = labels.sum(axis=0)
        masked = np.where(labels > 0, freq[None, :], np.inf)
        rarest = np.argmin(masked, axis=1)
        return np.where(labels.any(axis=1), rarest, -1).astype(np.int64)
    if labels.dtype.kind == "f":  # regression
        bins = min(10, max(1, n // 10))
        edges = np.quantile(labels, np.linspace(0, 1, bins + 1)[1:-1])
        return np.searchsorted(edges, labels, side="right").astype(np.int64)
    return labels.astype(np.int64)


def stratified_split(ex: Examples, dev_fraction: float = 0.1, seed: int = 0) -> tuple[Examples, Examples]:
    """Split off ``round(n · dev_fraction)`` examples as a dev set, each stratum in proportion.

    Strata: see ``_strata`` (classes; rarest label; target quantile bins; rarest tag). Each
    stratum gives the floor or the ceiling of its proportional share (largest remainders first,
    random tie-break) and keeps at least one example in train; so dev can be a little smaller
    than asked when there are single-example strata (and takes one example when all are). Both parts keep the original order, ``rows`` and ``label_names``.
    Deterministic for a given ``seed``.
    """
    if not 0 < dev_fraction < 1:
        raise ValueError(f"dev_fraction must be in (0, 1), not {dev_fraction!r}")
    n = len(ex)
    if n < 2:
        raise DataError(f"{ex.source}: {n} example(s) cannot be split into train and dev")
    rng = np.random.default_rng(seed)
    groups = _strata(ex)
    uniq, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    n_dev = min(n - 1, max(1, round(n * dev_fraction)))
    exact = counts * (n_dev / n)
    quota = np.floor(exact).astype(np.int64)  # < counts, as n_dev < n
    # Each stratum gets floor or ceil of its share, and keeps one example in train.
    room = np.minimum(counts - 1, np.ceil(exact).astype(np.int64)) - quota
    order = np.lexsort((rng.random(uniq.size), -(exact - np.floor(exact))))
    short = n_dev - int(quota.sum())
    for g in order:
        if short <= 0:
            break
        if room[g] > 0:
            quota[g] += 1
            room[g] -= 1
            short -= 1
    dev_mask = np.zeros(n, dtype=bool)
    for g in range(uniq.size):
        members = np.flatnonzero(inverse == g)
        if quota[g]:
            dev_mask[rng.choice(members, size=int(quota[g]), replace=False)] = True
    if not dev_mask.any():  # every stratum a singleton: take one example anyway
        dev_mask[rng.integers(n)] = True
    return ex.subset(np.flatnonzero(~dev_mask)), ex.subset(np.flatnonzero(dev_mask))


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
