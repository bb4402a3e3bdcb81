"""`fastbert.find_duplicates`: exact and near-duplicate documents in texts, text files and tables.

This module opens what the caller names (iterables of str, UTF-8 text files of one document a
line, CSV/TSV/JSONL/Parquet tables read by their text column) into document streams; the
MinHash index that compares them is `fastbert.text.dedup`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from fastbert.data.examples import load_examples
from fastbert.data.readers import TABLE_SUFFIXES, check_data_file, decode_utf8
from fastbert.text.dedup import (
    BATCH_DOCS,
    DocumentSource,
    DuplicateReport,
    Unit,
    find_duplicates_in,
    in_batches,
)

__all__ = ["find_duplicates"]

#: Lines of a text file handed on per batch are bounded by `fastbert.text.dedup.BATCH_DOCS`,
#: and by this much text, for files of very long lines.
BATCH_BYTES = 16 << 20


def _text_file_batches(path: Path, origin: str) -> Iterator[list[str]]:
    """Lines of a UTF-8 text file (``\\n`` or ``\\r\\n`` endings), in bounded batches."""
    batch: list[str] = []
    size = 0
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            line = decode_utf8(raw, origin, first_line=number)
            if number == 1:
                line = line.removeprefix("\ufeff")
            batch.append(line.rstrip("\n").removesuffix("\r"))
            size += len(raw)
            if len(batch) >= BATCH_DOCS or size >= BATCH_BYTES:
                yield batch
                batch, size = [], 0
    if batch:
        yield batch


def _open_source(name: str, value: Any, text_column: str | None) -> DocumentSource:
    """One split's documents: a file (text or table) or an iterable of str."""
    if isinstance(value, str | os.PathLike):
        origin = os.fspath(value)
        path = Path(origin)
        check_data_file(path, origin)
        if path.suffix.lower() in TABLE_SUFFIXES:
            ex = load_examples(origin, "mlm", text_column=text_column, split="dedup")
            return DocumentSource(origin, ex.row_unit, ex.rows, in_batches(ex.texts))
        return DocumentSource(origin, "line", None, _text_file_batches(path, origin))
    if isinstance(value, bytes | bytearray):
        raise TypeError(f"{name}: pass texts (str) or a file path, not {type(value).__name__}")
    if not isinstance(value, Iterable):
        raise TypeError(f"{name}: expected an iterable of str or a file path, not {type(value).__name__}")
    return DocumentSource.from_iterable(value)


def find_duplicates(
    data: Mapping[str, Iterable[str] | str | os.PathLike[str]],
    *,
    threshold: float = 0.8,
    num_perm: int = 128,
    ngram: int = 5,
    unit: Unit = "char",
    text_column: str | None = None,
    num_threads: int | None = None,
) -> DuplicateReport:
    """Find exact and near-duplicate documents within and across the splits of ``data``.

    ``data`` maps split names to documents: any iterable of str (read once, in batches),
    or a file path: a UTF-8 text file is one document a line (blank lines included, as
    empty documents, so indices are line numbers minus one); ``.csv``/``.tsv``/``.jsonl``/
    ``.parquet`` tables are read whole with `fastbert.data` (column ``text_column``, else
    found by name). ``threshold`` is the estimated Jaccard similarity in (0, 1] at or above which
    documents are near duplicates; ``num_perm`` MinHash permutations (more: a finer
    estimate, slower); ``ngram`` units per shingle of ``unit`` ``"char"`` or ``"word"``.

    Returns a :class:`~fastbert.text.dedup.DuplicateReport`: within-split clusters and
    cross-split pairs ``(split_a, index_a, split_b, index_b, estimated_jaccard)``. Raises
    ``DataError`` (a ``ValueError``) naming the file and line of a line that is not UTF-8,
    ``FileNotFoundError`` for a missing file, ``TypeError`` naming a non-str document.
    """
    if not isinstance(data, Mapping):
        raise TypeError(
            "data must map split names to texts or file paths, e.g. "
            f"find_duplicates({{'train': train_texts, 'test': test_texts}}), not {type(data).__name__}"
        )
    if unit not in ("word", "char"):
        raise ValueError(f"unit must be 'word' or 'char', not {unit!r}")
    # Every file is opened (and every table read) before indexing starts: a missing file or a
    # bad row fails at once, not after the splits before it were fingerprinted.
    sources = {str(name): _open_source(str(name), value, text_column) for name, value in data.items()}
    return find_duplicates_in(
        sources, threshold=threshold, num_perm=num_perm, ngram=ngram, unit=unit, num_threads=num_threads
    )
