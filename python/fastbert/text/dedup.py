"""Exact and near-duplicate documents within and across splits: the index behind `fastbert.find_duplicates`.

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
A slow, readable pure-Python version of every step is `fastbert.text.minhash_reference`.
Reading files and tables into document streams is `fastbert.data.duplicates`' job: this layer
never opens a data file.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

import fastbert._core as _core

__all__ = [
    "DocumentSource",
    "DuplicatePair",
    "DuplicateReport",
    "SplitInfo",
    "find_duplicates_in",
    "in_batches",
]

Unit = Literal["word", "char"]

#: Documents handed to the Rust core per call: enough for every core to get a fair
#: share, few enough that one batch of Python strings stays small.
BATCH_DOCS = 8192

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
@dataclass
class DocumentSource:
    """One split's documents, streamed in bounded batches, and where they came from (for messages).

    ``fastbert.data.duplicates`` opens files and tables into these; any iterable of str is
    one through :meth:`from_iterable`."""

    #: The file path as given, or ``"<iterable>"``.
    origin: str
    #: What positions count: ``"line"``, ``"row"`` or ``"index"`` (see `SplitInfo`).
    unit: str
    #: 1-based line or row of each document (tables), or ``None`` (positions follow from the unit).
    rows: np.ndarray | None
    batches: Iterator[list[Any]]

    @classmethod
    def from_iterable(cls, items: Iterable[Any]) -> DocumentSource:
        return cls("<iterable>", "index", None, in_batches(items))


def in_batches(items: Iterable[Any]) -> Iterator[list[Any]]:
    """``items`` in lists of at most `BATCH_DOCS`, read lazily."""
    it = iter(items)
    while batch := list(itertools.islice(it, BATCH_DOCS)):
        yield batch


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
def find_duplicates_in(
    sources: Mapping[str, DocumentSource],
    *,
    threshold: float = 0.8,
    num_perm: int = 128,
    ngram: int = 5,
    unit: Unit = "char",
    num_threads: int | None = None,
) -> DuplicateReport:
    """Exact and near-duplicate documents within and across the splits ``sources`` stream.

    The options are `fastbert.find_duplicates`' (which opens files and tables into sources
    and calls this). Returns a :class:`DuplicateReport`; raises ``TypeError`` naming a
    document that is not a str.
    """
    if unit not in ("word", "char"):
        raise ValueError(f"unit must be 'word' or 'char', not {unit!r}")
    index = _core.DedupIndex(float(threshold), int(num_perm), int(ngram), unit)
    for name, source in sources.items():
        index.start_split()
        start = 0
        for batch in source.batches:
            _add_batch(index, batch, name, start, num_threads)
            start += len(batch)
    found = index.finish(num_threads=num_threads)
    return _report(index, found, sources, threshold, num_perm, ngram, unit)


def _report(
    index: _core.DedupIndex,
    found: dict[str, Any],
    sources: Mapping[str, DocumentSource],
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
            origin=source.origin,
            documents=int(ends[k] - starts[k]),
            empty=int(found["empty"][k]),
            unit=source.unit,
            rows=source.rows,
        )
        for k, (name, source) in enumerate(sources.items())
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
