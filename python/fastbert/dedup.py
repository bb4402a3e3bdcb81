"""`fastbert.find_duplicates`: exact and near-duplicate documents within and across splits.

Each document is normalised (lowercased; words are runs of letters, marks and numbers,
everything else only separates them), then

- **exact duplicates** share the hash of their normalised text, so ``"Hello, World!"``
  and ``"hello world"`` are copies;
- **near duplicates** have an estimated Jaccard similarity of their shingle sets
  (``ngram`` consecutive characters of the normalised text, or ``ngram`` consecutive
  words with ``unit="word"``) of at least ``threshold``. The estimate is the fraction of
  ``num_perm`` MinHash permutations on which the two agree; LSH banding proposes the
  pairs to check, tuned so that a pair 0.05 above the threshold is proposed with
  probability at least 0.99 (with 64 or more permutations), and each proposed pair is
  checked against the whole signatures.

Character shingles are the default because fine-tuning data is mostly sentences: one
changed word in a 20-word sentence leaves about 0.8 of its character 5-grams but only
about 0.5 of its word 5-grams. Use ``unit="word"`` for long documents, where it is
faster and as good, and ``unit="char"`` for scripts written without spaces.

Documents stream through in bounded batches to the Rust core (``fastbert._core.DedupIndex``),
which keeps only fingerprints, never the text: 4 bytes per document and, per distinct
text, a ``2 · num_perm``-byte signature (16-bit MinHash values) and 4 bytes per LSH band. Fingerprinting runs on all cores with the GIL released.
A slow, readable pure-Python version of every step is ``fastbert._minhash_reference``.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from fastbert import _core
from fastbert.data import DataError

__all__ = ["DuplicatePair", "DuplicateReport", "SplitInfo", "find_duplicates"]

Unit = Literal["word", "char"]

#: Documents handed to the Rust core per call: enough for every core to get a fair
#: share, few enough that one batch of Python strings stays small.
BATCH_DOCS = 8192
#: ... and at most this much text per call, for files of very long lines.
BATCH_BYTES = 16 << 20
#: Extensions read as tables through `fastbert.data`; any other file is text, one document a line.
TABLE_SUFFIXES = (".csv", ".tsv", ".tab", ".jsonl", ".ndjson", ".json", ".parquet", ".pq")

#: ``(split_a, index_a, split_b, index_b, estimated_jaccard)``, split_a before split_b.
DuplicatePair = tuple[str, int, str, int, float]


@dataclass(frozen=True)
class SplitInfo:
    """One input of :func:`find_duplicates` and where its documents came from."""

    name: str
    #: The file path as given, or ``"<iterable>"``.
    origin: str
    documents: int
    #: Documents with no word at all (blank lines, only punctuation or emoji): never duplicates.
    empty: int
    #: What :meth:`position` counts: ``"line"`` (1-based, text files and line-based tables),
    #: ``"row"`` (1-based, Parquet) or ``"index"`` (0-based, iterables).
    unit: str
    rows: np.ndarray | None = field(default=None, repr=False, compare=False)

    def position(self, index: int) -> int:
        """The line, row or index of document ``index`` (0-based, in the order read)."""
        if self.rows is not None:
            return int(self.rows[index])
        return index + 1 if self.unit == "line" else index

    def where(self, index: int) -> str:
        """``"train.txt, line 18"`` or ``"train[17]"``: document ``index``, for messages."""
        if self.rows is None and self.unit == "index":
            return f"{self.name}[{index}]"
        return f"{self.origin}, {self.unit} {self.position(index)}"


@dataclass(frozen=True)
class DuplicateReport:
    """What :func:`find_duplicates` found. Indices are 0-based positions in each split."""

    #: Per split, groups of two or more indices that are duplicates of each other (exact
    #: copies or near duplicates, joined transitively within the split), each ascending,
    #: ordered by first index. The first index of each is the one a dedup keeps.
    clusters: dict[str, list[list[int]]]
    #: Every pair of documents in different splits that are duplicates, earlier split
    #: first (in the mapping's order), ascending; exact copies have estimate 1.0.
    pairs: list[DuplicatePair]
    splits: dict[str, SplitInfo]
    threshold: float
    num_perm: int
    ngram: int
    unit: str
    #: The LSH banding used: ``bands`` bands of ``rows`` signature values.
    bands: int
    rows: int
    #: Distinct normalised texts; signature comparisons made; near-duplicate pairs of distinct texts.
    distinct: int
    compared: int
    near_pairs: int

    def redundant(self, split: str) -> list[int]:
        """Indices a within-split dedup drops: every cluster member but the first, ascending."""
        return sorted(i for c in self.clusters[split] for i in c[1:])

    def leaked(self, split: str, other: str) -> list[int]:
        """Indices of ``split`` that duplicate at least one document of ``other``, ascending."""
        if split not in self.splits or other not in self.splits:
            unknown = split if split not in self.splits else other
            raise KeyError(f"no split named {unknown!r}; the splits are {list(self.splits)}")
        found = {ia for sa, ia, sb, _, _ in self.pairs if sa == split and sb == other}
        found |= {ib for sa, _, sb, ib, _ in self.pairs if sb == split and sa == other}
        return sorted(found)

    def summary(self) -> str:
        """A few lines for people: per split, then per pair of splits that share duplicates."""
        lines = [
            f"duplicates at estimated Jaccard ≥ {self.threshold:g} ({self.unit} {self.ngram}-grams, "
            f"{self.num_perm} permutations, {self.bands} bands × {self.rows} rows)"
        ]
        for name, info in self.splits.items():
            clusters = self.clusters[name]
            lines.append(
                f"  {name}: {_count(info.documents, 'document')}, {_count(len(clusters), 'duplicate cluster')} "
                f"({len(self.redundant(name)):,} redundant), {info.empty:,} empty"
            )
        names = list(self.splits)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                n = sum(1 for p in self.pairs if p[0] == a and p[2] == b)
                if n:
                    lines.append(
                        f"  {a} × {b}: {_count(n, 'pair')}; {len(self.leaked(b, a)):,} of {b} "
                        f"duplicate {len(self.leaked(a, b)):,} of {a}"
                    )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: options, per-split counts, clusters and pairs by line/row/index."""
        pos = {name: info.position for name, info in self.splits.items()}
        return {
            "options": {
                "threshold": self.threshold,
                "num_perm": self.num_perm,
                "ngram": self.ngram,
                "unit": self.unit,
                "bands": self.bands,
                "rows": self.rows,
            },
            "splits": {
                name: {
                    "origin": info.origin,
                    "counted_by": info.unit,
                    "documents": info.documents,
                    "empty": info.empty,
                    "clusters": len(self.clusters[name]),
                    "redundant": len(self.redundant(name)),
                }
                for name, info in self.splits.items()
            },
            "clusters": {
                name: [[pos[name](i) for i in c] for c in clusters]
                for name, clusters in self.clusters.items()
            },
            "pairs": [
                {"split_a": sa, "a": pos[sa](ia), "split_b": sb, "b": pos[sb](ib), "estimated_jaccard": j}
                for sa, ia, sb, ib, j in self.pairs
            ],
        }


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


# ----------------------------------------------------------------------- sources
def _batches(items: Iterable[Any]) -> Iterator[list[Any]]:
    it = iter(items)
    while batch := list(itertools.islice(it, BATCH_DOCS)):
        yield batch


def _text_file_batches(path: Path, origin: str) -> Iterator[list[str]]:
    """Lines of a UTF-8 text file (``\\n`` or ``\\r\\n`` endings), in bounded batches."""
    batch: list[str] = []
    size = 0
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(
                    f"{origin}, line {number}: not valid UTF-8 (byte 0x{raw[e.start]:02x} at byte "
                    f"{e.start + 1} of the line); save the file as UTF-8"
                ) from None
            if number == 1:
                line = line.removeprefix("\ufeff")
            batch.append(line.rstrip("\n").removesuffix("\r"))
            size += len(raw)
            if len(batch) >= BATCH_DOCS or size >= BATCH_BYTES:
                yield batch
                batch, size = [], 0
    if batch:
        yield batch


def _open_source(
    name: str, value: Any, text_column: str | None
) -> tuple[str, str, np.ndarray | None, Iterator[list[Any]]]:
    """(origin, unit, table rows or None, batches of documents) for one split."""
    if isinstance(value, str | os.PathLike):
        origin = os.fspath(value)
        path = Path(origin)
        if not path.exists():
            raise FileNotFoundError(f"{name}: no such file: {origin}")
        if path.is_dir():
            raise DataError(f"{origin} is a folder; pass one file")
        if path.suffix.lower() in TABLE_SUFFIXES:
            from fastbert.data import load_examples

            ex = load_examples(origin, "mlm", text_column=text_column, split="dedup")
            return origin, ex.row_unit, ex.rows, _batches(ex.texts)
        return origin, "line", None, _text_file_batches(path, origin)
    if isinstance(value, bytes | bytearray):
        raise TypeError(f"{name}: pass texts (str) or a file path, not {type(value).__name__}")
    if not isinstance(value, Iterable):
        raise TypeError(f"{name}: expected an iterable of str or a file path, not {type(value).__name__}")
    return "<iterable>", "index", None, _batches(value)


def _add_batch(index: _core.DedupIndex, batch: list[Any], name: str, start: int, threads: int | None) -> None:
    try:
        index.add(batch, num_threads=threads)
    except TypeError:
        # Name the element by its split and position, not its place in this batch.
        for i, text in enumerate(batch):
            if not isinstance(text, str):
                raise TypeError(f"{name}[{start + i}] must be a str, not {type(text).__name__}") from None
        raise


# ----------------------------------------------------------------------- API
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

    Returns a :class:`DuplicateReport`: within-split clusters and cross-split pairs
    ``(split_a, index_a, split_b, index_b, estimated_jaccard)``. Raises ``DataError``
    (a ``ValueError``) naming the file and line of a line that is not UTF-8,
    ``FileNotFoundError`` for a missing file, ``TypeError`` naming a non-str document.
    """
    if not isinstance(data, Mapping):
        raise TypeError(
            "data must map split names to texts or file paths, e.g. "
            f"find_duplicates({{'train': train_texts, 'test': test_texts}}), not {type(data).__name__}"
        )
    if unit not in ("word", "char"):
        raise ValueError(f"unit must be 'word' or 'char', not {unit!r}")
    index = _core.DedupIndex(float(threshold), int(num_perm), int(ngram), unit)
    sources: dict[str, tuple[str, str, np.ndarray | None]] = {}
    for name, value in data.items():
        name = str(name)
        origin, counted_by, rows, batches = _open_source(name, value, text_column)
        sources[name] = (origin, counted_by, rows)
        index.start_split()
        start = 0
        for batch in batches:
            _add_batch(index, batch, name, start, num_threads)
            start += len(batch)
    return _report(index, index.finish(num_threads=num_threads), sources, threshold, num_perm, ngram, unit)


def _report(
    index: _core.DedupIndex,
    found: dict[str, Any],
    sources: dict[str, tuple[str, str, np.ndarray | None]],
    threshold: float,
    num_perm: int,
    ngram: int,
    unit: str,
) -> DuplicateReport:
    names = list(sources)
    starts = found["split_starts"].astype(np.int64)
    ends = np.append(starts[1:], index.documents)

    def locate(docs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        split = np.searchsorted(starts, docs, side="right") - 1
        return split, docs - starts[split]

    clusters: dict[str, list[list[int]]] = {n: [] for n in names}
    offsets = found["cluster_offsets"].astype(np.int64)
    docs = found["cluster_docs"].astype(np.int64)
    split_of_doc, index_of_doc = locate(docs)
    for k in range(len(offsets) - 1):
        lo, hi = offsets[k], offsets[k + 1]
        clusters[names[split_of_doc[lo]]].append(index_of_doc[lo:hi].tolist())

    sa, ia = locate(found["pair_a"].astype(np.int64))
    sb, ib = locate(found["pair_b"].astype(np.int64))
    jaccard = found["pair_matches"].astype(np.float64) / num_perm
    pairs = [
        (names[a], x, names[b], y, j)
        for a, x, b, y, j in zip(
            sa.tolist(), ia.tolist(), sb.tolist(), ib.tolist(), jaccard.tolist(), strict=True
        )
    ]
    splits = {
        name: SplitInfo(
            name=name,
            origin=origin,
            documents=int(ends[k] - starts[k]),
            empty=int(found["empty"][k]),
            unit=counted_by,
            rows=rows,
        )
        for k, (name, (origin, counted_by, rows)) in enumerate(sources.items())
    }
    bands, rows_per_band = index.banding
    return DuplicateReport(
        clusters=clusters,
        pairs=pairs,
        splits=splits,
        threshold=float(threshold),
        num_perm=int(num_perm),
        ngram=int(ngram),
        unit=unit,
        bands=bands,
        rows=rows_per_band,
        distinct=int(found["distinct"]),
        compared=int(found["compared"]),
        near_pairs=int(found["near_pairs"]),
    )
