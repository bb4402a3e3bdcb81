"""Claim: the padded batch call on 256 short sentences, returning torch tensors, is ≥20×
faster than `transformers.AutoTokenizer(...)(texts, padding=True, return_tensors="pt")`.

256 real SST-2 dev sentences, the packaged MiniLM vocabulary, default threads on both
sides. The tensors are compared before timing; the figure is the median of many calls.

    python benches/bench_batch_call.py [--quick]
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA, blocks, header, model_dir


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    import torch
    from transformers import AutoTokenizer

    import fastbert

    with (DATA / "sst2" / "dev.tsv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    texts = [r["sentence"] for r in rows[:256]]
    ours = fastbert.Tokenizer.from_pretrained(model_dir())
    hf = AutoTokenizer.from_pretrained(model_dir())
    a = ours(texts, padding=True, return_tensors="pt")
    b = hf(texts, padding=True, return_tensors="pt")
    equal = all(torch.equal(a[k], b[k]) for k in ("input_ids", "token_type_ids", "attention_mask"))
    header("256 SST-2 sentences → padded torch tensors: fastbert vs transformers AutoTokenizer")
    # Blocks, not call-by-call alternation: both libraries run rayon pools whose idle
    # workers spin briefly after a call, and on a 2-core machine that spinning lands
    # on whichever call comes next. Blocks alternate, so slow drift hits both.
    t = blocks(
        {
            "fastbert": lambda: ours(texts, padding=True, return_tensors="pt"),
            "transformers": lambda: hf(texts, padding=True, return_tensors="pt"),
        },
        calls=50 if args.quick else 200,
        rounds=3,
    )
    print("| fastbert µs/call | transformers µs/call | speed-up | tensors equal | shape |")
    print("|---|---|---|---|---|")
    f, h = t["fastbert"], t["transformers"]
    print(
        f"| {f * 1e6:.0f} | {h * 1e6:.0f} | {h / f:.1f}× | {equal} | {tuple(a['input_ids'].shape)} |",
        flush=True,
    )


if __name__ == "__main__":
    main()
