"""Claim: `encode_batch` over the shared raw text is ≥10× faster than Hugging Face `tokenizers`.

Both sides encode every line of ../shared/data/raw_text/*.txt (one line = one input,
empty lines included on both sides) with the packaged MiniLM vocabulary, special
tokens added, no truncation or padding, on the same number of threads, in the same
process. The outputs are compared (ids of every input) before anything is timed.

    python benches/bench_encode.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA, blocks, header, model_dir, run_per_thread_count


def child(threads: int, repeats: int) -> None:
    from tokenizers import Tokenizer as HFTokenizer

    import fastbert

    lines: list[str] = []
    for path in sorted((DATA / "raw_text").glob("*.txt")):
        lines += path.read_text(encoding="utf-8").split("\n")
    mb = sum(len(line.encode("utf-8")) for line in lines) / 1e6
    ours = fastbert.Tokenizer.from_pretrained(model_dir())
    hf = HFTokenizer.from_file(str(model_dir() / "tokenizer.json"))
    hf.no_truncation()
    hf.no_padding()
    a = ours.encode_batch(lines, num_threads=threads)
    b = hf.encode_batch(lines)
    mismatches = sum(x.ids != y.ids for x, y in zip(a, b, strict=True))
    del a, b
    # Blocks (see _common.blocks): rayon workers of the other library still spin after its call.
    t = blocks(
        {
            "fastbert": lambda: ours.encode_batch(lines, num_threads=threads),
            "tokenizers": lambda: hf.encode_batch(lines),
        },
        calls=repeats,
        warmup=1,
    )
    print(
        json.dumps(
            {"threads": threads, "lines": len(lines), "mb": mb, "seconds": t, "mismatches": mismatches}
        )
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args()
    repeats = 3 if args.quick else 7
    if args.child:
        child(args.threads, repeats)
        return
    header("encode_batch over ../shared/data/raw_text: fastbert vs tokenizers")
    print("| threads | inputs | MB | fastbert MB/s | tokenizers MB/s | speed-up | id mismatches |")
    print("|---|---|---|---|---|---|---|")
    for threads in sorted({1, os.cpu_count() or 1}):
        r = json.loads(
            run_per_thread_count(Path(__file__), threads, ["--quick"] if args.quick else []).splitlines()[-1]
        )
        ours, theirs = r["mb"] / r["seconds"]["fastbert"], r["mb"] / r["seconds"]["tokenizers"]
        print(
            f"| {threads} | {r['lines']} | {r['mb']:.1f} | {ours:.1f} | {theirs:.2f} | {ours / theirs:.1f}× | {r['mismatches']} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
