"""Claim 1: `encode_batch` over the shared raw text is ≥10× faster than Hugging Face `tokenizers`.

Both sides encode every line of ../shared/data/raw_text/*.txt (one line = one input,
empty lines kept on both sides) with the packaged MiniLM vocabulary, special tokens
added, no truncation or padding, on the same number of threads, in the same process:
`fastbert.Tokenizer.encode_batch(lines, num_threads=N)` against
`tokenizers.Tokenizer.encode_batch(lines)` with `RAYON_NUM_THREADS=N`. The ids of every
input are compared before anything is timed; MB are UTF-8 bytes of the inputs.

    python benches/bench_encode.py [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    DATA,
    Row,
    add_common_args,
    blocks,
    finish,
    header,
    model_dir,
    run_child,
    thread_counts,
    verdict,
)

BAR = 10.0


def read_lines() -> list[str]:
    lines: list[str] = []
    for path in sorted((DATA / "raw_text").glob("*.txt")):
        lines += path.read_text(encoding="utf-8").split("\n")
    return lines


def child(threads: int, calls: int) -> dict:
    from tokenizers import Tokenizer as HFTokenizer

    import fastbert

    lines = read_lines()
    mb = sum(len(line.encode("utf-8")) for line in lines) / 1e6
    ours = fastbert.Tokenizer.from_pretrained(model_dir())
    hf = HFTokenizer.from_file(str(model_dir() / "tokenizer.json"))
    hf.no_truncation()
    hf.no_padding()
    result = {"threads": threads, "inputs": len(lines), "mb": mb, "equal": True}

    a = ours.encode_batch(lines, num_threads=threads)
    b = hf.encode_batch(lines)
    bad = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x.ids != y.ids]
    if len(a) != len(b) or bad:
        i = bad[0] if bad else min(len(a), len(b))
        result |= {"equal": False, "mismatches": len(bad), "first": i, "text": lines[i][:200]}
        return result
    del a, b
    t = blocks(
        {
            "fastbert": lambda: ours.encode_batch(lines, num_threads=threads),
            "tokenizers": lambda: hf.encode_batch(lines),
        },
        calls=calls,
        rounds=5,
    )
    result["timing"] = {k: vars(v) for k, v in t.items()}
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(p)
    args = p.parse_args()
    calls = 1 if args.quick else 2  # per block; 5 blocks per side
    if args.child:
        print(json.dumps(child(args.threads, calls)))
        return
    header("Claim 1: encode_batch over raw_text/*.txt, fastbert vs tokenizers (bar ≥10×)")
    print(
        "| threads | inputs | MB | fastbert MB/s | tokenizers MB/s | ratio | cores used (ours/theirs) | ids equal | verdict |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    rows = []
    for threads in thread_counts():
        r = run_child(Path(__file__), threads, ["--quick"] if args.quick else [])
        if not r["equal"]:
            print(
                f"| {threads} | {r['inputs']} | {r['mb']:.1f} | — | — | — | — | NO: {r['mismatches']} inputs, "
                f"first #{r['first']} {r['text']!r} | {verdict(None, BAR, False)} |",
                flush=True,
            )
            rows.append(Row("1 encode_batch raw_text", f"{threads} thr", "—", "—", None, BAR, False))
            continue
        f, h = r["timing"]["fastbert"], r["timing"]["tokenizers"]
        ours, theirs = r["mb"] / f["seconds"], r["mb"] / h["seconds"]
        ratio = ours / theirs
        print(
            f"| {threads} | {r['inputs']:,} | {r['mb']:.1f} | {ours:.1f} | {theirs:.2f} | {ratio:.1f}× "
            f"| {f['cores_used']:.2f} / {h['cores_used']:.2f} | yes | {verdict(ratio, BAR, True)} |",
            flush=True,
        )
        rows.append(
            Row(
                "1 encode_batch raw_text",
                f"{threads} thr",
                f"{ours:.1f} MB/s",
                f"{theirs:.2f} MB/s",
                ratio,
                BAR,
                True,
            )
        )
    print(
        f"\nMedian of {5 * calls} calls per side (5 alternating blocks of {calls}, 50 ms pause before each), after a warm-up call per side."
    )
    finish(rows, args.json)


if __name__ == "__main__":
    main()
