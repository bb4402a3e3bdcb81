"""Fine-tuning quality: fastbert.finetune against the Hugging Face recipes, same
hyperparameters, several seeds (bar: |mean difference| ≤ 0.5 points).

- ``--task sst2``: SST-2 dev accuracy. HF: ``Trainer`` + ``AutoModelForSequenceClassification``
  + ``DataCollatorWithPadding`` (``run_glue.py``). fastbert: ``finetune(task="classification")``.
- ``--task conll``: CoNLL-2003 dev entity F1. HF: the ``run_ner.py`` recipe:
  ``AutoModelForTokenClassification``, only the first sub-token of a word labelled,
  ``DataCollatorForTokenClassification``. fastbert: ``finetune(task="token")`` (first sub-token,
  its default). Both sides' word-level predictions are scored by seqeval (``f1_score``, default
  mode); a word cut off by ``max_length`` counts as predicted ``O`` on both sides.

Hyperparameters, both sides: batch 32, lr 5e-5, 3 epochs, max length 128, AdamW with weight
decay 0.01 (not on biases and LayerNorm), linear schedule with 6% warm-up (the same integer
number of steps), gradient clipping 1.0; fp32 on the CPU, bf16 autocast on a GPU (HF
``bf16=True``, fastbert ``precision="auto"``).

What is compared: the **final** weights of each side, evaluated once on dev after training.
fastbert runs with ``early_stopping_patience=None, restore_best=False``. It still evaluates once
per epoch (its default schedule; evaluation changes nothing in training: no randomness is drawn
and the weights are not touched), and from those evaluations the script also reports what
fastbert's defaults would have returned (``restore_best=True``, patience 3: the evaluation with
the best selection metric, macro-F1 for SST-2 and entity F1 for CoNLL, before early stopping
would have stopped the run). That number is shown apart and is not the one held to the bar.

Every (side, seed) runs in a fresh process. With ``--out FILE`` the JSON is rewritten after each
run, and ``--resume`` skips the runs FILE already holds, so a long job can be split across
commands with a time limit.

    python benches/bench_finetune_quality.py --task sst2 [--seeds 0 1 2] [--device cpu|cuda] [--out r.json]

Data: ``--data-dir``, else ``$FASTBERT_DATA``, else ``<repo>/shared/data``, else ``<repo>/../shared/data``.
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
    conll_label_names,
    cores,
    fastbert_sequence,
    fastbert_token,
    find_data_dir,
    hf_sequence,
    hf_token,
    log,
    read_conll,
    read_sst2,
    report,
    run_child,
)

BAR_POINTS = 0.5


def hyper(a: argparse.Namespace, seed: int) -> dict[str, Any]:
    return {
        "epochs": a.epochs,
        "batch_size": a.batch_size,
        "lr": a.lr,
        "warmup_ratio": 0.06,
        "weight_decay": 0.01,
        "max_length": a.max_length,
        "seed": seed,
    }


def fastbert_options(a: argparse.Namespace, seed: int) -> dict[str, Any]:
    return {
        **hyper(a, seed),
        "early_stopping_patience": None,
        "restore_best": False,
        "eval_steps": None,  # once per epoch (fastbert's default), to report its best checkpoint too
        "device": a.device,
        "precision": "auto",  # bf16 autocast on a GPU that has it, fp32 on the CPU
        "progress": False,
        "bucket_pool": a.bucket_pool,
        # Argmax, as HF predicts: a binary cut tuned on dev and scored on that same dev would
        # flatter fastbert's dev accuracy (temperature scaling never changes the argmax).
        "tune_thresholds": False,
    }


def load(a: argparse.Namespace) -> tuple[Any, Any, list[str] | None]:
    data = find_data_dir(a.data_dir)
    if a.task == "sst2":
        return read_sst2(data, "train")[: a.limit], read_sst2(data, "dev"), None
    train = read_conll(data / "conll2003" / "train.txt")[: a.limit]
    dev = read_conll(data / "conll2003" / "dev.txt")
    return train, dev, conll_label_names(train, dev)


def child(a: argparse.Namespace) -> None:
    child_setup(a.threads, a.device)
    train, dev, names = load(a)
    seed = a.seeds[0]
    if a.task == "sst2":
        if a.side == "hf":
            r = hf_sequence(train, dev, hyper(a, seed), a.device)
        else:
            r = fastbert_sequence(train, dev, fastbert_options(a, seed))
    elif a.side == "hf":
        assert names is not None
        r = hf_token(train, dev, names, hyper(a, seed), a.device)
    else:
        r = fastbert_token(train, dev, fastbert_options(a, seed))
    Path(a.child_out).write_text(json.dumps(r, default=str))


def default_best(evals: list[dict[str, Any]], select: str, key: str, patience: int = 3) -> float | None:
    """What fastbert's defaults return: walk the per-epoch evaluations as train() does (keep the
    first strictly best ``select``; stop after more than ``patience`` evaluations without one)."""
    best, value, bad = None, None, 0
    for e in evals:
        s = e.get(select)
        if s is not None and (best is None or s > best):
            best, value, bad = s, e.get(key), 0
        else:
            bad += 1
            if bad > patience:
                break
    return value


def train_rate(r: dict[str, Any]) -> float:
    """Training samples/s by each library's own clock (fastbert: its per-epoch evaluations
    taken out of the loop time)."""
    if r["side"] == "hf":
        return float(r["hf_train_samples_per_second"])
    return r["samples"] / r["train_loop_excl_eval_s"]


def mean_std(xs: list[float]) -> tuple[float, float]:
    return statistics.mean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", choices=["sst2", "conll"], required=True)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--device", default="auto", help="auto (cuda when torch sees a GPU) | cpu | cuda | cuda:N")
    p.add_argument("--epochs", type=float, default=3.0)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--limit", type=int, default=None, help="first N training examples (a quick check)")
    p.add_argument("--sides", nargs="+", choices=["hf", "fastbert"], default=["hf", "fastbert"])
    p.add_argument("--threads", type=int, default=cores(), help="torch threads, both sides")
    p.add_argument(
        "--bucket-pool",
        type=int,
        default=1,
        help="fastbert's bucket_pool: 1 = random batches (its default), 50 = length-bucketed pools of 50 batches",
    )
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", type=Path, default=None, help="JSON results, rewritten after every run")
    p.add_argument("--resume", action="store_true", help="skip the (side, seed) runs --out already holds")
    p.add_argument("--side", choices=["hf", "fastbert"], help=argparse.SUPPRESS)
    p.add_argument("--child-out", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.device == "auto":
        import torch

        a.device = "cuda" if torch.cuda.is_available() else "cpu"
    if a.child_out:
        child(a)
        return

    train, dev, _ = load(a)
    data = find_data_dir(a.data_dir)
    info = report(a.device, a.threads)
    metric = "dev accuracy" if a.task == "sst2" else "dev entity F1"
    setting = {
        "task": a.task,
        "metric": metric,
        "data": str(data),
        "train_examples": len(train),
        "dev_examples": len(dev),
        "limit": a.limit,
        "hyperparameters": hyper(a, -1) | {"seed": a.seeds},
        "precision": "bf16 autocast" if a.device.startswith("cuda") else "fp32",
        "fastbert_options": fastbert_options(a, -1) | {"seed": a.seeds},
    }
    log(f"## Fine-tuning quality: fastbert.finetune vs the Hugging Face recipe ({a.task})\n")
    for k, v in info.items():
        log(f"- {k}: {v}")
    for k, v in setting.items():
        log(f"- {k}: {json.dumps(v) if isinstance(v, dict) else v}")
    log()

    runs: list[dict[str, Any]] = []
    if a.resume and a.out and a.out.exists():
        old = json.loads(a.out.read_text())

        def key(s: dict[str, Any]) -> Any:  # the setting, seeds aside
            h = {k: v for k, v in s.get("hyperparameters", {}).items() if k != "seed"}
            pool = s.get("fastbert_options", {}).get("bucket_pool", 1)
            return [s.get("task"), s.get("train_examples"), s.get("precision"), h, pool]

        if key(old.get("setting", {})) != key(setting):
            raise SystemExit(f"--resume: {a.out} holds runs of another setting: {old.get('setting')}")
        runs = [r for r in old.get("runs", []) if r["seed"] in a.seeds and r["side"] in a.sides]
        log(f"--resume: {len(runs)} runs read from {a.out}")

    def save() -> dict[str, Any]:
        summary = summarize(runs, a.sides)
        if a.out:
            a.out.write_text(
                json.dumps(
                    {"info": info, "setting": setting, "runs": runs, "summary": summary},
                    indent=2,
                    default=str,
                )
            )
        return summary

    plan = [(seed, side) for seed in a.seeds for side in a.sides]
    done = {(r["seed"], r["side"]) for r in runs}
    argv = [
        "--task", a.task, "--device", a.device, "--epochs", str(a.epochs), "--batch-size", str(a.batch_size),
        "--lr", str(a.lr), "--max-length", str(a.max_length), "--threads", str(a.threads),
        "--data-dir", str(data), *(["--limit", str(a.limit)] if a.limit else []),
        "--bucket-pool", str(a.bucket_pool),
    ]  # fmt: skip
    started = time.perf_counter()
    for i, (seed, side) in enumerate(plan, 1):
        if (seed, side) in done:
            continue
        log(f"[{time.strftime('%H:%M:%S')}] run {i}/{len(plan)}: {side}, seed {seed}")
        t = time.perf_counter()
        r = run_child(Path(__file__), [*argv, "--seeds", str(seed), "--side", side], a.threads)
        r.update(side=side, seed=seed, run_seconds=time.perf_counter() - t)
        if side == "fastbert":
            r["default_best_score"] = default_best(
                r["evals_per_epoch"],
                r["best_checkpoint_selected_on"],
                "accuracy" if a.task == "sst2" else "f1",
            )
        runs.append(r)
        save()
        extra = (
            f", fastbert default (best checkpoint) {r['default_best_score']:.4f}"
            if side == "fastbert"
            else ""
        )
        log(
            f"    {side} seed {seed}: {metric} {r['score']:.4f}{extra}; training {train_rate(r):.1f} samples/s; "
            f"run {r['run_seconds']:.0f} s (total {time.perf_counter() - started:.0f} s)"
        )

    summary = save()
    hf_run = next((r for r in runs if r["side"] == "hf"), None)
    if hf_run:
        log(
            f"\nHF TrainingArguments (exact keywords, seed per run, output_dir a temporary folder): {json.dumps(hf_run['training_arguments'])}"
        )
        log(
            f"HF optimizer: {hf_run['optimizer']}; warm-up {hf_run['warmup_steps']} of {hf_run['total_steps']} steps"
        )
    fb_run = next((r for r in runs if r["side"] == "fastbert"), None)
    if fb_run:
        log(
            f"fastbert: {fb_run['total_steps']} steps, warm-up int(0.06 × steps) = {int(0.06 * fb_run['total_steps'])}"
        )
    scorer = {r.get("scorer") for r in runs if r.get("scorer")}
    if scorer:
        log(f"entity F1 scored by: {', '.join(sorted(scorer))}")
    print_tables(runs, a, metric, summary)


def summarize(runs: list[dict[str, Any]], sides: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for side in sides:
        rs = sorted((r for r in runs if r["side"] == side), key=lambda r: r["seed"])
        if not rs:
            continue
        m, s = mean_std([r["score"] for r in rs])
        out[side] = {
            "seeds": [r["seed"] for r in rs],
            "scores": [r["score"] for r in rs],
            "mean": m,
            "std": s,
            "train_samples_per_second_median": statistics.median(train_rate(r) for r in rs),
        }
        if side == "fastbert":
            best = [r["default_best_score"] for r in rs]
            out[side]["default_best_mean"], out[side]["default_best_std"] = mean_std(best)
    if "hf" in out and "fastbert" in out:
        common = sorted(set(out["hf"]["seeds"]) & set(out["fastbert"]["seeds"]))
        if common:
            hf = statistics.mean(r["score"] for r in runs if r["side"] == "hf" and r["seed"] in common)
            fb = statistics.mean(r["score"] for r in runs if r["side"] == "fastbert" and r["seed"] in common)
            diff = 100 * (fb - hf)
            out["difference_points"] = diff
            out["seeds_compared"] = common
            out["pass"] = abs(diff) <= BAR_POINTS
    return out


def print_tables(
    runs: list[dict[str, Any]], a: argparse.Namespace, metric: str, summary: dict[str, Any]
) -> None:
    by = {(r["side"], r["seed"]): r for r in runs}
    log(
        f"\n| seed | HF {metric} | fastbert {metric} (final weights) | fastbert default (best checkpoint) | HF training samples/s | fastbert training samples/s |"
    )
    log("|---|---|---|---|---|---|")

    def cell(r: dict[str, Any] | None, key: str, pct: bool = True) -> str:
        if r is None or r.get(key) is None:
            return "–"
        return f"{100 * r[key]:.2f}" if pct else f"{r[key]:.1f}"

    for seed in a.seeds:
        h, f = by.get(("hf", seed)), by.get(("fastbert", seed))
        rate_h = f"{train_rate(h):.1f}" if h else "–"
        rate_f = f"{train_rate(f):.1f}" if f else "–"
        log(
            f"| {seed} | {cell(h, 'score')} | {cell(f, 'score')} | {cell(f, 'default_best_score')} | {rate_h} | {rate_f} |"
        )
    hs, fs = summary.get("hf"), summary.get("fastbert")

    def pm(s: dict[str, Any] | None, m: str = "mean", d: str = "std") -> str:
        return f"{100 * s[m]:.2f} ± {100 * s[d]:.2f}" if s else "–"

    rh = f"{hs['train_samples_per_second_median']:.1f}" if hs else "–"
    rf = f"{fs['train_samples_per_second_median']:.1f}" if fs else "–"
    log(
        f"| mean ± std | {pm(hs)} | {pm(fs)} | {pm(fs, 'default_best_mean', 'default_best_std')} | {rh} (median) | {rf} (median) |"
    )
    if "difference_points" in summary:
        d = summary["difference_points"]
        verdict = "PASS" if summary["pass"] else "FAIL"
        log(
            f"\nfastbert (final weights) − HF = {d:+.2f} points over seeds {summary['seeds_compared']}; "
            f"bar |difference| ≤ {BAR_POINTS}: {verdict}"
        )
    if a.limit:
        log(f"(--limit {a.limit}: a quick check, not a result)")


if __name__ == "__main__":
    main()
