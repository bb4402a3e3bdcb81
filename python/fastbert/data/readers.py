"""Reading data into a `Table`: raw records as columns, with the line or row each came from.

Files: ``.csv`` (standard quoting), ``.tsv`` (header row, **no quoting**: a ``"`` is a literal
character), ``.jsonl``/``.ndjson`` (one JSON object a line; ``.json`` may also hold one array of
objects), ``.parquet``/``.pq`` (needs ``pyarrow``); for ``task="token"`` any other extension is
CoNLL, for ``task="mlm"`` a ``.txt`` file is one text a line. In memory: a pandas ``DataFrame``,
a ``datasets.Dataset`` (``ClassLabel`` names are kept), a ``pyarrow.Table``, a dict of columns,
or a list of dicts or tuples.

Which column is the text or the label is `fastbert.data.columns`' job; turning values into
examples is `fastbert.data.examples`'. Every problem raises `fastbert.errors.DataError` naming
the source and the line (1-based, as an editor shows it) or row.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fastbert.errors import DataError

__all__ = [
    "TABLE_SUFFIXES",
    "Table",
    "decode_utf8",
    "read_conll",
    "read_table",
    "split_lines",
]

BINARY_MAGIC = (
    (b"PAR1", "Parquet"),
    (b"PK\x03\x04", "zip (or .xlsx/.docx)"),
    (b"\x1f\x8b", "gzip"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"SQLite format 3\x00", "SQLite"),
    (b"\x89PNG", "PNG"),
)


# ---------------------------------------------------------------- tables
@dataclass
class Table:
    """Raw records as columns. ``names`` are strings, or positions (ints) for headerless tuples."""

    source: str
    unit: str
    names: list[Any]
    columns: dict[Any, list[Any]]
    rows: list[int]
    #: ``ClassLabel`` names of ``datasets`` columns: ``{column: names}``.
    class_names: dict[Any, list[str]]
    #: CoNLL: each record is a sentence whose words stand on consecutive lines from ``rows[i]``.
    word_per_line: bool = False

    def where(self, i: int) -> str:
        return f"{self.source}, {self.unit} {self.rows[i]}"

    def where_word(self, i: int, k: int) -> str:
        """Where word ``k`` of record ``i`` is: its own line in CoNLL, else the record's place."""
        if self.word_per_line:
            return f"{self.source}, line {self.rows[i] + k}"
        return f"{self.where(i)}, word {k + 1}"


def make_table(names: list[Any], records: list[list[Any]], rows: list[int], source: str, unit: str) -> Table:
    columns = {name: [r[k] for r in records] for k, name in enumerate(names)}
    return Table(source, unit, names, columns, rows, {})


def check_header(names: list[str], source: str, unit: str) -> None:
    seen: dict[str, int] = {}
    for k, name in enumerate(names):
        key = name.strip().lower()
        if key in seen:
            raise DataError(
                f"{source}, {unit} 1: column {name!r} appears twice (columns {seen[key] + 1} and {k + 1})"
            )
        seen[key] = k


# ---------------------------------------------------------------- reading files
def decode_text(raw: bytes, source: str) -> str:
    """UTF-8 text of a file; binary content and bad bytes raise with the line they are on."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DataError(f"{source}: the file is UTF-16 encoded; save it as UTF-8")
    for magic, kind in BINARY_MAGIC:
        if raw.startswith(magic):
            raise DataError(f"{source}: binary content (this looks like a {kind} file), not text")
    nul = raw.find(b"\x00")
    if nul >= 0:
        if nul < 8192:
            raise DataError(f"{source}: binary content (NUL bytes), not a text file")
        line = raw.count(b"\n", 0, nul) + 1
        raise DataError(f"{source}, line {line}: NUL byte in a text file")
    return decode_utf8(raw, source).removeprefix("\ufeff")


def decode_utf8(raw: bytes, source: str, *, first_line: int = 1) -> str:
    """``raw`` as UTF-8; a bad byte raises `DataError` naming its line (``raw`` starts at line
    ``first_line``) and its byte in the line, as an editor counts them (1-based)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = first_line + raw.count(b"\n", 0, e.start)
        col = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise DataError(
            f"{source}, line {line}: not valid UTF-8 (byte 0x{raw[e.start]:02x} at byte {col} of the line); "
            "save the file as UTF-8"
        ) from None


def split_lines(text: str) -> list[str]:
    """Lines without their ``\\n`` / ``\\r\\n`` endings; no empty last line for a final newline."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


def _check_width(fields: list[str], names: list[str], where: str, what: str, hint: str = "") -> None:
    if len(fields) != len(names):
        raise DataError(
            f"{where}: {len(fields)} {what}, but the header has {len(names)} ({', '.join(names)}){hint}"
        )


def read_tsv(text: str, source: str) -> Table:
    """Tab-separated with a header row and no quoting: fields are split on TAB and nothing else."""
    lines = split_lines(text)
    if not lines:
        raise DataError(f"{source}: the file is empty")
    names = lines[0].split("\t")
    check_header(names, source, "line")
    records, rows = [], []
    for ln, line in enumerate(lines[1:], 2):
        if not line:
            continue
        fields = line.split("\t")
        _check_width(
            fields, names, f"{source}, line {ln}", "tab-separated fields", "; TSV fields cannot contain tabs"
        )
        records.append(fields)
        rows.append(ln)
    return make_table(names, records, rows, source, "line")


def read_csv(text: str, source: str) -> Table:
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
                check_header(names, source, "line")
                continue
            _check_width(fields, names, f"{source}, line {start}", "fields")
            records.append(fields)
            rows.append(start)
    except csv.Error as e:
        raise DataError(f"{source}, line {reader.line_num}: malformed CSV ({e})") from None
    if names is None:
        raise DataError(f"{source}: the file is empty")
    return make_table(names, records, rows, source, "line")


def read_jsonl(text: str, source: str) -> Table:
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
        for ln, line in enumerate(split_lines(text), 1):
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
    return make_table(cols, records, [n for n, _ in objects], source, unit)


def read_conll(text: str, source: str, *, tags_required: bool = True) -> Table:
    """CoNLL: ``TOKEN ... TAG`` a line (TAB- or space-separated), blank line between sentences,
    ``-DOCSTART-`` lines skipped. Columns ``tokens`` and ``tags``.

    ``tags_required=False`` (text to predict on) reads the first column alone, tags or not, and
    gives the column ``tokens`` only."""
    sentences: list[list[Any]] = []
    rows: list[int] = []
    words: list[str] = []
    tags: list[str] = []
    for ln, line in enumerate(split_lines(text), 1):
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
        if tags_required and (len(parts) < 2 or not parts[-1]):
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
    if not tags_required:
        table = make_table(["tokens"], [[s[0]] for s in sentences], rows, source, "line")
    else:
        table = make_table(["tokens", "tags"], sentences, rows, source, "line")
    table.word_per_line = True
    return table


def read_text_lines(text: str, source: str) -> Table:
    """Plain text for MLM: every non-blank line is one text."""
    records, rows = [], []
    for ln, line in enumerate(split_lines(text), 1):
        if line.strip():
            records.append([line])
            rows.append(ln)
    return make_table(["text"], records, rows, source, "line")


def read_parquet(path: Path, source: str) -> Table:
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
    return Table(source, "row", names, columns, list(range(1, n + 1)), {})


_DELIMITED = {".csv": read_csv, ".tsv": read_tsv, ".tab": read_tsv}
_JSON = (".jsonl", ".ndjson", ".json")
_PARQUET = (".parquet", ".pq")
#: Extensions read as tables; anything else is plain text, or CoNLL for token tasks.
TABLE_SUFFIXES = (*_DELIMITED, *_JSON, *_PARQUET)


def check_data_file(path: Path, source: str) -> None:
    """A missing ``path`` raises ``FileNotFoundError``, a folder `DataError`; both name ``source``."""
    if not path.exists():
        raise FileNotFoundError(f"{source}: no such file")
    if path.is_dir():
        raise DataError(f"{source} is a folder; pass one file (e.g. {Path(source, 'train.tsv')})")


def read_file(data: str | os.PathLike, task: str) -> Table:
    source = os.fspath(data)
    path = Path(source)
    check_data_file(path, source)
    ext = path.suffix.lower()
    if ext in _PARQUET:
        return read_parquet(path, source)
    known = TABLE_SUFFIXES
    if ext not in known and task not in ("token", "mlm"):
        raise DataError(
            f"{source}: unsupported file type {ext or '(no extension)'!r}; use one of "
            f"{', '.join(known)} (CoNLL files are read for task='token', plain .txt for task='mlm')"
        )
    if task == "mlm" and ext not in known and ext != ".txt":
        raise DataError(f"{source}: unsupported file type {ext or '(no extension)'!r} for task='mlm'")
    text = decode_text(path.read_bytes(), source)
    if ext in _DELIMITED:
        return _DELIMITED[ext](text, source)
    if ext in _JSON:
        return read_jsonl(text, source)
    return read_conll(text, source) if task == "token" else read_text_lines(text, source)


# ---------------------------------------------------------------- in-memory inputs
def class_label_names(feature: Any) -> list[str] | None:
    """Names of a ``datasets.ClassLabel``, or of the ``ClassLabel`` inside a sequence feature."""
    for f in (feature, getattr(feature, "feature", None)):
        names = getattr(f, "names", None)
        if isinstance(names, list) and names and all(isinstance(x, str) for x in names):
            return names
    return None


def from_records(records: list[Any], source: str, task: str) -> Table:
    first = records[0]
    if isinstance(first, dict):
        names: dict[Any, None] = {}
        for i, r in enumerate(records, 1):
            if not isinstance(r, dict):
                raise DataError(f"{source}, row {i}: expected a dict like row 1, got {type(r).__name__}")
            names.update(dict.fromkeys(r))
        cols = list(names)
        rows = [[r.get(c) for c in cols] for r in records]
        return make_table([str(c) for c in cols], rows, list(range(1, len(records) + 1)), source, "row")
    if isinstance(first, str):
        if task != "mlm":
            raise DataError(
                f"{source}: a list of strings has no labels; for task={task!r} pass (text, label) tuples "
                "or dicts"
            )
        return make_table(["text"], [[r] for r in records], list(range(1, len(records) + 1)), source, "row")
    if isinstance(first, (tuple, list)):
        width = len(first)
        for i, r in enumerate(records, 1):
            if not isinstance(r, (tuple, list)) or len(r) != width:
                got = f"{len(r)} fields" if isinstance(r, (tuple, list)) else type(r).__name__
                raise DataError(f"{source}, row {i}: expected {width} fields like row 1, got {got}")
        return make_table(
            list(range(width)), [list(r) for r in records], list(range(1, len(records) + 1)), source, "row"
        )
    raise DataError(f"{source}: expected dicts or tuples as examples, got {type(first).__name__}")


def read_table(data: Any, task: str) -> Table:
    """``data`` (a path or an in-memory input; see the module docstring) as a `Table`."""
    if isinstance(data, (str, os.PathLike)):
        return read_file(data, task)
    if isinstance(data, dict):
        if data and all(isinstance(v, (list, tuple, np.ndarray)) for v in data.values()):  # columns
            lengths = {len(v) for v in data.values()}
            if len(lengths) != 1:
                raise DataError(f"<dict>: columns have different lengths {sorted(lengths)}")
            names = [str(k) for k in data]
            cols = {str(k): list(v) for k, v in data.items()}
            return Table("<dict>", "row", names, cols, list(range(1, lengths.pop() + 1)), {})
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
        class_names = {
            c: found for c in names if (found := class_label_names(data.features.get(c))) is not None
        }
        n = len(cols[names[0]]) if names else 0
        return Table("<Dataset>", "row", names, cols, list(range(1, n + 1)), class_names)
    if hasattr(data, "iloc") and hasattr(data, "columns"):  # pandas.DataFrame
        names = [str(c) for c in data.columns]
        if len(set(names)) != len(names):
            raise DataError(f"<DataFrame>: duplicate column names {names}")
        cols = {str(c): data[c].tolist() for c in data.columns}
        return Table("<DataFrame>", "row", names, cols, list(range(1, len(data) + 1)), {})
    if hasattr(data, "to_pydict") and hasattr(data, "column_names"):  # pyarrow.Table
        cols = data.to_pydict()
        return Table("<Table>", "row", list(cols), cols, list(range(1, data.num_rows + 1)), {})
    if isinstance(data, (list, tuple)):
        if not data:
            raise DataError("<list>: no examples")
        return from_records(list(data), "<list>", task)
    raise DataError(
        f"unsupported data of type {type(data).__name__}: pass a .csv/.tsv/.jsonl/.parquet/CoNLL path, a "
        "pandas DataFrame, a datasets.Dataset, or a list of dicts or tuples"
    )
