"""Claim: tokenizing + aligning CoNLL-2003 train (pre-split words, first-sub-token labels)
into padded arrays is ≥10× faster than `tokenizers` plus the usual Python `word_ids` loop.

The competitor is the recipe of the transformers token-classification examples, written
plainly: `encode_batch(words, is_pretokenized=True)`, then per encoding a loop over
`word_ids` that gives the first sub-token of each word its label and -100 to the rest,
then numpy arrays padded to the longest row. fastbert does the same in one
`fastbert.align.tokenize_and_align` call. Both outputs are compared before timing.

    python benches/bench_align_conll.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA, blocks, header, model_dir, run_per_thread_count


def read_conll(path: Path) -> tuple[list[list[str]], list[list[int]]]:
    sentences, labels, words, tags = [], [], [], []
    names: dict[str, int] = {}
    for line in path.read_text(encoding="utf-8").split("\n"):
        if not line.strip() or line.startswith("-DOCSTART-"):
            if words:
                sentences.append(words)
                labels.append(tags)
                words, tags = [], []
            continue
        parts = line.split()
        words.append(parts[0])
        tags.append(names.setdefault(parts[-1], len(names)))
    if words:
        sentences.append(words)
        labels.append(tags)
    return sentences, labels


def hf_recipe(hf, sentences: list[list[str]], labels: list[list[int]]) -> dict[str, np.ndarray]:
    encodings = hf.encode_batch(sentences, is_pretokenized=True)
    width = max(len(e.ids) for e in encodings)
    n = len(encodings)
    input_ids = np.zeros((n, width), dtype=np.int64)
    token_type_ids = np.zeros((n, width), dtype=np.int64)
    attention_mask = np.zeros((n, width), dtype=np.int64)
    label_ids = np.full((n, width), -100, dtype=np.int64)
    for i, (enc, word_labels) in enumerate(zip(encodings, labels, strict=True)):
        k = len(enc.ids)
        input_ids[i, :k] = enc.ids
        token_type_ids[i, :k] = enc.type_ids
        attention_mask[i, :k] = enc.attention_mask
        row, previous = [], None
        for word in enc.word_ids:
            if word is None or word == previous:
                row.append(-100)
            else:
                row.append(word_labels[word])
            previous = word
        label_ids[i, :k] = row
    return {
        "input_ids": input_ids,
        "token_type_ids": token_type_ids,
        "attention_mask": attention_mask,
        "labels": label_ids,
    }


def child(threads: int, repeats: int) -> None:
    from tokenizers import Tokenizer as HFTokenizer

    import fastbert
    from fastbert.align import tokenize_and_align

    sentences, labels = read_conll(DATA / "conll2003" / "train.txt")
    mb = sum(len(w.encode("utf-8")) + 1 for s in sentences for w in s) / 1e6
    ours = fastbert.Tokenizer.from_pretrained(model_dir())
    hf = HFTokenizer.from_file(str(model_dir() / "tokenizer.json"))
    hf.no_truncation()
    hf.no_padding()

    def fast() -> dict[str, np.ndarray]:
        return tokenize_and_align(
            ours, sentences, labels, strategy="first", padding=True, num_threads=threads
        )

    a, b = fast(), hf_recipe(hf, sentences, labels)
    equal = all(np.array_equal(a[k], b[k]) for k in b)
    # Blocks (see _common.blocks): rayon workers of the other library still spin after its call.
    t = blocks(
        {"fastbert": fast, "tokenizers+loop": lambda: hf_recipe(hf, sentences, labels)},
        calls=repeats,
        warmup=1,
    )
    print(
        json.dumps({"threads": threads, "sentences": len(sentences), "mb": mb, "seconds": t, "equal": equal})
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
    header("CoNLL-2003 train: tokenize + first-sub-token labels into padded arrays")
    print(
        "| threads | sentences | fastbert sent/s | fastbert MB/s | tokenizers+loop sent/s | tokenizers+loop MB/s | speed-up | outputs equal |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for threads in sorted({1, os.cpu_count() or 1}):
        r = json.loads(
            run_per_thread_count(Path(__file__), threads, ["--quick"] if args.quick else []).splitlines()[-1]
        )
        n, mb, s = r["sentences"], r["mb"], r["seconds"]
        f, h = s["fastbert"], s["tokenizers+loop"]
        print(
            f"| {threads} | {n} | {n / f:,.0f} | {mb / f:.1f} | {n / h:,.0f} | {mb / h:.2f} | {h / f:.1f}× | {r['equal']} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
