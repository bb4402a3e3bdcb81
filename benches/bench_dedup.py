"""Claim: `fastbert.find_duplicates` finds near duplicates ≥50× faster than `datasketch`.

The corpus is every line of ../shared/data/raw_text/wnut17_*.txt (WNUT-17 social media
text: 102k lines, 7.6 MB; empty lines are documents too, which both sides skip). Both
sides use 128 permutations, threshold 0.8 and the same shingles, character 5-grams and
word 5-grams in turn:

- fastbert: `find_duplicates({"wnut": lines}, unit=..., num_threads=N)` from the raw
  lines: normalisation, shingling, MinHash, LSH, verification and clustering.
- datasketch: the recipe of its documentation at its fastest (`MinHash.generator`, which
  reuses the permutations, then `MinHashLSH.query` and `insert` per document: each
  document is checked against those before it), fed the very shingles fastbert hashes
  (`fastbert.text.minhash_reference.shingle_set`, the specification the Rust core is tested
  against), computed before the clock starts. So the competitor's shingling is free, and
  its candidates are not verified: both favour it.

Outputs cannot be equal (different hash functions, different banding), so what is
compared before timing is the work: both must receive the same shingle sets (by
construction), and the documents each flags as a near or exact copy of an earlier one are
counted, with how many both flag. MB are UTF-8 bytes of the lines.

    python benches/bench_dedup.py [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA, Row, add_common_args, blocks, finish, header, run_child, thread_counts, verdict

BAR = 50.0
THRESHOLD = 0.8
NUM_PERM = 128
NGRAM = 5
UNITS = ("char", "word")
#: --quick: this many lines, one timed call per side.
QUICK_LINES = 20_000


def read_lines(quick: bool) -> list[str]:
    lines: list[str] = []
    for path in sorted((DATA / "raw_text").glob("wnut17_*.txt")):
        lines += path.read_text(encoding="utf-8").split("\n")
    return lines[:QUICK_LINES] if quick else lines


def shingles_for_datasketch(lines: list[str], unit: str) -> list[list[bytes]]:
    """fastbert's own shingles (the reference), as the bytes datasketch hashes."""
    from fastbert.text import minhash_reference as ref

    out = []
    for line in lines:
        shingles = ref.shingle_set(line, unit, NGRAM)  # type: ignore[arg-type]
        out.append(sorted((s if isinstance(s, str) else " ".join(s)).encode("utf-8") for s in shingles))
    return out


def datasketch_flagged(shingles: list[list[bytes]]) -> set[int]:
    """Documents whose LSH query finds an earlier document (what a datasketch dedup drops)."""
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM)
    docs = [(i, s) for i, s in enumerate(shingles) if s]
    flagged = set()
    for (i, _), m in zip(docs, MinHash.generator((s for _, s in docs), num_perm=NUM_PERM), strict=True):
        if lsh.query(m):
            flagged.add(i)
        lsh.insert(i, m)
    return flagged


def fastbert_run(lines: list[str], unit: str, threads: int) -> Any:
    import fastbert

    return fastbert.find_duplicates(
        {"wnut": lines}, threshold=THRESHOLD, num_perm=NUM_PERM, ngram=NGRAM, unit=unit, num_threads=threads
    )


def child(threads: int, unit: str, quick: bool) -> dict:
    import datasketch

    lines = read_lines(quick)
    mb = sum(len(line.encode("utf-8")) for line in lines) / 1e6
    shingles = shingles_for_datasketch(lines, unit)
    ours = set(fastbert_run(lines, unit, threads).redundant("wnut"))
    theirs = datasketch_flagged(shingles)
    t = blocks(
        {
            "fastbert": lambda: fastbert_run(lines, unit, threads),
            "datasketch": lambda: datasketch_flagged(shingles),
        },
        calls=1,
        rounds=1 if quick else 3,
        warmup=0,  # both sides were just run once above
    )
    return {
        "threads": threads,
        "unit": unit,
        "docs": len(lines),
        "mb": mb,
        "datasketch_version": datasketch.__version__,
        "flagged": {"fastbert": len(ours), "datasketch": len(theirs), "both": len(ours & theirs)},
        "timing": {k: vars(v) for k, v in t.items()},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(p)
    p.add_argument("--unit", choices=UNITS, default="char", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args.threads, args.unit, args.quick)))
        return
    try:
        import datasketch  # noqa: F401
    except ImportError:
        sys.exit("bench_dedup.py needs the competitor installed: pip install '.[bench]' (datasketch)")
    header(
        f"Claim: find_duplicates over raw_text/wnut17_*.txt, fastbert vs datasketch (bar ≥{BAR:g}×)"
        + (" (--quick: smoke run)" if args.quick else "")
    )
    print(
        "| shingles | threads | docs | MB | fastbert docs/s (MB/s) | datasketch docs/s (MB/s) | ratio "
        "| cores used (ours/theirs) | flagged as copies: ours / theirs / both | verdict |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for unit in UNITS:
        for threads in thread_counts():
            extra = ["--unit", unit, *(["--quick"] if args.quick else [])]
            r = run_child(Path(__file__), threads, extra)
            f, d = r["timing"]["fastbert"], r["timing"]["datasketch"]
            ours, theirs = r["docs"] / f["seconds"], r["docs"] / d["seconds"]
            ratio = ours / theirs
            flagged = r["flagged"]
            print(
                f"| {unit} {NGRAM}-grams | {threads} | {r['docs']:,} | {r['mb']:.1f} | {ours:,.0f} "
                f"({r['mb'] / f['seconds']:.1f}) | {theirs:,.0f} ({r['mb'] / d['seconds']:.2f}) | {ratio:.0f}× "
                f"| {f['cores_used']:.2f} / {d['cores_used']:.2f} | {flagged['fastbert']:,} / "
                f"{flagged['datasketch']:,} / {flagged['both']:,} | {verdict(ratio, BAR, True)} |",
                flush=True,
            )
            rows.append(
                Row(
                    f"dedup wnut17 {unit} 5-grams",
                    f"{threads} thr",
                    f"{ours:,.0f} docs/s",
                    f"{theirs:,.0f} docs/s (datasketch {r['datasketch_version']})",
                    ratio,
                    BAR,
                    True,
                )
            )
    rounds = 1 if args.quick else 3
    print(
        f"\nMedian of {rounds} alternating calls per side, each after one untimed call (which also "
        "produced the flagged counts). Both sides: 128 permutations, threshold 0.8. datasketch's "
        "shingles are computed before timing, and its LSH candidates are not verified."
    )
    finish(rows, args.json)


if __name__ == "__main__":
    main()
