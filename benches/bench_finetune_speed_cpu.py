"""Fine-tuning speed on the CPU: fastbert.finetune against transformers.Trainer (bar: ≥1.5×).

Both sides fine-tune the packaged MiniLM on SST-2 train (6,920 sentences) with the same
hyperparameters: batch 32, lr 5e-5, 1 epoch, AdamW with weight decay 0.01, linear schedule
with 6% warm-up (the same integer number of steps on both sides), max length 128,
gradient clipping 1.0, fp32, no evaluation during training, the same torch thread count.
Then each evaluates once on SST-2 dev (outside every timing).

- HF: ``AutoTokenizer`` (one batched call over the list), ``AutoModelForSequenceClassification``,
  ``DataCollatorWithPadding`` (dynamic padding), ``Trainer`` with ``use_cpu=True``,
  ``dataloader_num_workers=0``, no saving, no logging.
- fastbert: ``fastbert.finetune(train, dev, epochs=1, batch_size=32, lr=5e-5, ...,
  eval_steps=10**9, early_stopping_patience=None, device="cpu", progress=False)``.

Two throughputs per side, in training samples (examples x epochs) per second:

- **training loop only**: HF's ``train_result.metrics["train_samples_per_second"]`` and
  fastbert's ``ft.history.train_samples_per_second`` (each library's own clock around its
  loop); also samples / our wall clock around ``trainer.train()`` (which adds Trainer's
  set-up: optimizer, accelerate, data loader).
- **end to end**: sentences in memory → trained model: tokenizer load, tokenization, model
  load and training; dev evaluation excluded (for fastbert its time is measured by wrapping
  ``fastbert.finetuning.evaluate_on_dev`` and subtracted).

Every run is a fresh process; runs alternate HF, fastbert, fastbert, HF, ... (``--rounds``
pairs), so slow drift on a shared machine lands on both sides; the table gives every run and
the medians, and the ratio of the medians.

    python benches/bench_finetune_speed_cpu.py [--epochs 1] [--batch-size 32] [--limit N] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _train_common import (
    child_setup,
    cores,
    fastbert_sequence,
    find_data_dir,
    hf_sequence,
    log,
    read_sst2,
    report,
    run_child,
)

BAR = 1.5
SEED = 0


def hyper(a: argparse.Namespace) -> dict[str, Any]:
    return {
        "epochs": a.epochs,
        "batch_size": a.batch_size,
        "lr": a.lr,
        "warmup_ratio": 0.06,
        "weight_decay": 0.01,
        "max_length": 128,
        "seed": SEED,
    }


def fastbert_options(a: argparse.Namespace) -> dict[str, Any]:
    return {
        **hyper(a),
        "early_stopping_patience": None,
        "eval_steps": 10**9,  # no evaluation inside the loop; train() evaluates once after it
        "device": "cpu",
        "precision": "fp32",
        "progress": False,
        # Argmax, as HF predicts: a binary cut tuned on dev and scored on that same dev would
        # flatter fastbert's dev accuracy (temperature scaling never changes the argmax).
        "tune_thresholds": False,
    }


def child(a: argparse.Namespace) -> None:
    child_setup(a.threads, "cpu")
    data = find_data_dir(a.data_dir)
    train = read_sst2(data, "train")[: a.limit]
    dev = read_sst2(data, "dev")
    if a.side == "hf":
        r = hf_sequence(train, dev, hyper(a), "cpu")
    else:
        r = fastbert_sequence(train, dev, fastbert_options(a))
    Path(a.child_out).write_text(json.dumps(r, default=str))


def rates(side: str, r: dict[str, Any]) -> dict[str, float]:
    """Training samples/s by each clock (see the module docstring)."""
    n = r["samples"]
    if side == "hf":
        own = r["hf_train_samples_per_second"]
        wall = n / r["train_wall_s"]
    else:
        own = r["fastbert_train_samples_per_second"]
        wall = n / r["train_loop_s"]
    return {"loop_own": own, "loop_wall": wall, "end_to_end": n / r["end_to_end_s"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--limit", type=int, default=None, help="first N training sentences (a quick check)")
    p.add_argument("--rounds", type=int, default=2, help="HF/fastbert pairs, alternating order (ABBA...)")
    p.add_argument(
        "--threads", type=int, default=cores(), help="torch threads, both sides (default: all cores)"
    )
    p.add_argument("--data-dir", default=None, help="folder with sst2/ (default: <repo>/../shared/data)")
    p.add_argument("--json", metavar="PATH", help="write every run's record and the summary here")
    p.add_argument("--side", choices=["hf", "fastbert"], help=argparse.SUPPRESS)
    p.add_argument("--child-out", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child_out:
        child(a)
        return

    data = find_data_dir(a.data_dir)
    n_train = len(read_sst2(data, "train")[: a.limit])
    info = report("cpu", a.threads)
    log("## Fine-tuning speed on the CPU: fastbert.finetune vs transformers.Trainer\n")
    for k, v in info.items():
        log(f"- {k}: {v}")
    log(f"- data: {data / 'sst2'} (train {n_train} sentences{' (--limit)' if a.limit else ''}, dev)")
    log(f"- hyperparameters (both sides): {json.dumps(hyper(a))}")
    log(f"- fastbert.finetune options: {json.dumps(fastbert_options(a))}")
    log()

    argv = [
        "--epochs", str(a.epochs), "--batch-size", str(a.batch_size), "--lr", str(a.lr),
        "--threads", str(a.threads), *(["--limit", str(a.limit)] if a.limit else []),
        *(["--data-dir", str(data)]),
    ]  # fmt: skip
    order = []
    for r in range(a.rounds):
        order += ["hf", "fastbert"] if r % 2 == 0 else ["fastbert", "hf"]
    runs: list[dict[str, Any]] = []
    for i, side in enumerate(order, 1):
        log(f"[{time.strftime('%H:%M:%S')}] run {i}/{len(order)}: {side}")
        r = run_child(Path(__file__), [*argv, "--side", side], a.threads)
        r.update(side=side, run=i, rates=rates(side, r))
        runs.append(r)
        rt = r["rates"]
        log(
            f"    {side}: loop {rt['loop_own']:.1f} samples/s (own clock), {rt['loop_wall']:.1f} (wall), "
            f"end to end {rt['end_to_end']:.1f}; cores used {r['train_cores_used']:.2f}; dev accuracy {r['score']:.4f}"
        )
    hf_args = next(r for r in runs if r["side"] == "hf")
    log(
        f"\nHF TrainingArguments (exact keywords, output_dir a temporary folder): {json.dumps(hf_args['training_arguments'])}"
    )
    log(
        f"HF optimizer: {hf_args['optimizer']}; warm-up {hf_args['warmup_steps']} of {hf_args['total_steps']} steps"
    )
    fb_args = next(r for r in runs if r["side"] == "fastbert")
    log(
        f"fastbert: {fb_args['total_steps']} steps; warm-up int(0.06 × steps) = {int(0.06 * fb_args['total_steps'])}\n"
    )

    log(
        "| run | side | loop only, own clock (samples/s) | loop only, wall around train (samples/s) | end to end incl. tokenization (samples/s) | tokenization (s) | cores used in training | dev accuracy |"
    )
    log("|---|---|---|---|---|---|---|---|")
    for r in runs:
        rt = r["rates"]
        log(
            f"| {r['run']} | {r['side']} | {rt['loop_own']:.1f} | {rt['loop_wall']:.1f} | {rt['end_to_end']:.1f} "
            f"| {r['tokenize_s']:.2f} | {r['train_cores_used']:.2f} | {r['score']:.4f} |"
        )
    summary: dict[str, Any] = {}
    for side in ("hf", "fastbert"):
        rs = [r for r in runs if r["side"] == side]
        summary[side] = {
            k: statistics.median(r["rates"][k] for r in rs) for k in ("loop_own", "loop_wall", "end_to_end")
        }
        summary[side]["dev_accuracy"] = statistics.mean(r["score"] for r in rs)
    log("\n| measure (median of runs) | HF Trainer | fastbert | ratio |")
    log("|---|---|---|---|")
    labels = {
        "loop_own": "training loop only, each library's own clock (samples/s)",
        "loop_wall": "training loop only, our wall clock (samples/s)",
        "end_to_end": "end to end incl. tokenization and model load (samples/s)",
    }
    for k, label in labels.items():
        h, f = summary["hf"][k], summary["fastbert"][k]
        summary[f"ratio_{k}"] = f / h
        log(f"| {label} | {h:.1f} | {f:.1f} | {f / h:.2f}× |")
    log(
        f"| dev accuracy (seed {SEED}) | {summary['hf']['dev_accuracy']:.4f} | {summary['fastbert']['dev_accuracy']:.4f} | |"
    )
    ratio = summary["ratio_loop_own"]
    verdict = f"meets ≥{BAR:g}×" if ratio >= BAR else f"BELOW the {BAR:g}× bar"
    log(f"\nspeed ratio (training loop, own clocks): {ratio:.2f}× → {verdict}")
    if a.limit:
        log(f"(--limit {a.limit}: a quick check, not a result)")
    if a.json:
        Path(a.json).write_text(
            json.dumps({"info": info, "runs": runs, "summary": summary}, indent=2, default=str)
        )


if __name__ == "__main__":
    main()
