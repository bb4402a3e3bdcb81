"""``fastbert dedup``: exact and near-duplicate documents within and across files (MinHash + LSH)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fastbert.cli.common import (
    CliError,
    Command,
    UsageError,
    atomic_output,
    check_output_path,
    existing_file,
    fraction,
    positive,
)
from fastbert.errors import DataError

__all__ = ["COMMAND"]

#: Cross-file pairs printed as examples (all of them are in --output).
DEDUP_SHOWN = 10


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Find exact and near-duplicate documents (MinHash + LSH) within each FILE and across FILEs: "
        "clusters per file, and every cross-file pair with its estimated Jaccard similarity. Text "
        "files are one document a line; CSV/TSV/JSONL/Parquet tables are read by their text column."
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="text files (one document a line) or tables")
    p.add_argument(
        "--threshold",
        type=fraction,
        default=0.8,
        metavar="T",
        help="estimated Jaccard similarity at or above which documents are near duplicates (default 0.8)",
    )
    p.add_argument(
        "--num-perm", type=positive, default=128, metavar="N", help="MinHash permutations (default 128)"
    )
    p.add_argument("--ngram", type=positive, default=5, metavar="N", help="units per shingle (default 5)")
    p.add_argument(
        "--unit",
        choices=("char", "word"),
        default="char",
        help="shingles of characters (sentences, any script) or of words (long documents) (default char)",
    )
    p.add_argument(
        "--text-column", metavar="NAME", help="tables: the text column (default: detected by name)"
    )
    p.add_argument(
        "--output",
        "-o",
        metavar="FILE.json",
        help="write every cluster and pair as JSON (lines/rows, 1-based); '-' for stdout (the summary then "
        "goes to stderr); replaced only on success",
    )
    p.add_argument(
        "--num-threads",
        type=positive,
        metavar="N",
        help="Rust threads (default: FASTBERT_NUM_THREADS, else all cores)",
    )


def _run(args: argparse.Namespace) -> int:
    seen: dict[Path, str] = {}
    for path in args.files:
        if path == "-":
            raise UsageError("dedup reads files, not stdin: give FILE paths")
        existing_file(path, "FILE")
        key = Path(path).resolve()
        if key in seen:
            raise UsageError(f"{path} is given twice (also as {seen[key]})")
        seen[key] = path
    check_output_path(args.output)

    from fastbert.data.duplicates import find_duplicates

    try:
        report = find_duplicates(
            {path: path for path in args.files},
            threshold=args.threshold,
            num_perm=args.num_perm,
            ngram=args.ngram,
            unit=args.unit,
            text_column=args.text_column,
            num_threads=args.num_threads,
        )
    except (DataError, FileNotFoundError) as e:
        raise CliError.of(e) from None
    except ValueError as e:  # an option the core refuses (e.g. --num-perm above its limit)
        raise UsageError(str(e)) from None
    summary = sys.stderr if args.output == "-" else sys.stdout
    print(report.summary(), file=summary)
    for sa, ia, sb, ib, j in report.pairs[:DEDUP_SHOWN]:
        print(f"  {report.splits[sa].where(ia)} ≈ {report.splits[sb].where(ib)} ({j:.2f})", file=summary)
    if len(report.pairs) > DEDUP_SHOWN:
        print(f"  ... {len(report.pairs) - DEDUP_SHOWN:,} more cross-file pairs", file=summary)
    summary.flush()
    if args.output is not None:
        with atomic_output(args.output) as out:
            out.write((json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
    return 0


COMMAND = Command(
    name="dedup",
    help="find exact and near-duplicate documents within and across files (MinHash + LSH)",
    add_arguments=_add_arguments,
    run=_run,
)
