"""Checkpoints and exact resume with the packaged MiniLM on SST-2, through the command line.

Two bars (issue 16):

1. **Bit-identical resume.** ``fastbert finetune`` is killed with SIGKILL at ``--kills`` random
   moments (one run each; a checkpoint every ``--kill-checkpoint-every`` steps), then continued
   with ``fastbert finetune --resume OUT``. Each resumed model must equal, tensor for tensor and
   bit for bit, the model of an uninterrupted run with the same seed, with the same dev metrics.
2. **Overhead of checkpointing** every ``--checkpoint-every`` (200) steps, bar at most 3%, two
   ways: training seconds (``history.train_seconds`` in ``fastbert.json``: the training loop
   with its evaluations and checkpoint writes, without start-up and the final save) with those
   checkpoints against runs with none (``--set checkpoint_epochs=false``), runs alternating
   none / every 200 / every 200 / none ... so that drift on a shared machine lands on both
   sides; and, free of that drift, the seconds the runs with checkpoints spent writing them
   (``history.checkpoint_seconds``) over their training seconds.

Every run is a fresh process: MiniLM, SST-2 train (6,920 sentences) and dev (872), 1 epoch,
batch 16, max length 128, seed 0, ``deterministic=True``, early stopping off.

    python benches/bench_resume.py [--kills 3] [--rounds 1] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA, header, model_dir


def fastbert(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "fastbert", "finetune", *args, "--no-progress"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def finish(child: subprocess.Popen[bytes], what: str) -> None:
    _, err = child.communicate()
    if child.returncode != 0:
        sys.exit(f"{what} failed ({child.returncode}):\n{err.decode(errors='replace')}")


def weights(folder: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def record(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "fastbert.json").read_text(encoding="utf-8"))


def differences(a: Path, b: Path) -> list[str]:
    """Tensors that differ between two saved models, and a note if the dev metrics differ."""
    import torch

    wa, wb = weights(a), weights(b)
    out = [
        k
        for k in sorted(wa.keys() | wb.keys())
        if k not in wa or k not in wb or not torch.equal(wa[k], wb[k])
    ]
    if record(a)["metrics"] != record(b)["metrics"]:
        out.append("(dev metrics)")
    return out


def complete_checkpoints(out: Path) -> list[Path]:
    return sorted((out / "checkpoints").glob("step-*/.fastbert-complete"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=DATA / "sst2")
    p.add_argument("--limit", type=int, default=None, help="train on the first N sentences only")
    p.add_argument("--kills", type=int, default=3)
    p.add_argument("--kill-checkpoint-every", type=int, default=50)
    p.add_argument("--checkpoint-every", type=int, default=200)
    p.add_argument("--rounds", type=int, default=1, help="pairs of (none, every N) runs, alternating")
    p.add_argument("--seed", type=int, default=None, help="seed of the kill moments (default: random)")
    args = p.parse_args()

    header("Checkpoints and exact resume: MiniLM on SST-2, fastbert finetune --resume")
    work = Path(tempfile.mkdtemp(prefix="bench-resume-"))
    train = args.data / "train.tsv"
    if args.limit is not None:
        lines = train.read_text(encoding="utf-8").splitlines(keepends=True)[: args.limit + 1]
        train = work / "train.tsv"
        train.write_text("".join(lines), encoding="utf-8")
    common = ["--train", str(train), "--eval", str(args.data / "dev.tsv"), "--model", str(model_dir())]
    common += ["--epochs", "1", "--batch-size", "16", "--max-length", "128", "--seed", "0"]
    common += ["--set", "deterministic=true", "--set", "early_stopping_patience=null"]
    none = ["--set", "checkpoint_epochs=false"]
    every = ["--checkpoint-every", str(args.checkpoint_every)]
    kill_seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little")
    rng = random.Random(kill_seed)

    # -- overhead runs (the first one is also the reference of the resumes)
    seconds: dict[str, list[float]] = {"none": [], "every": []}
    writing: list[float] = []  # history.checkpoint_seconds / train_seconds of the runs with checkpoints
    runs: list[tuple[str, Path]] = []
    order = [
        kind for r in range(args.rounds) for kind in (("none", "every") if r % 2 == 0 else ("every", "none"))
    ]
    for i, kind in enumerate(order):
        out = work / f"{kind}-{i}"
        finish(fastbert(*common, *(none if kind == "none" else every), "--out", str(out)), f"run {out.name}")
        history = record(out)["history"]
        seconds[kind].append(history["train_seconds"])
        if kind == "every":
            writing.append(history["checkpoint_seconds"] / history["train_seconds"])
        runs.append((kind, out))
        print(
            f"run {i + 1}: checkpoints {kind:<5} {seconds[kind][-1]:7.1f} s of training, "
            f"{history['checkpoint_seconds']:.1f} s of them writing checkpoints",
            flush=True,
        )
    reference = runs[0][1]
    steps = record(reference)["history"]["steps"][-1]
    same = [out.name for _, out in runs[1:] if differences(reference, out)]

    # -- kills
    results = []
    expected = statistics.median(seconds["none"])
    for k in range(args.kills):
        out = work / f"killed-{k}"
        child = fastbert(*common, "--checkpoint-every", str(args.kill_checkpoint_every), "--out", str(out))
        while not complete_checkpoints(out):
            if child.poll() is not None:
                sys.exit(f"the run ended before its first checkpoint: {child.stderr.read().decode()}")  # type: ignore[union-attr]
            time.sleep(0.05)
        moment = rng.uniform(0.0, 0.85 * expected * (1 - args.kill_checkpoint_every / steps))
        time.sleep(moment)
        child.send_signal(signal.SIGKILL)
        child.communicate()
        if (out / ".fastbert-complete").exists():
            sys.exit("the run finished before its kill: use more data")
        latest = max(
            complete_checkpoints(out), key=lambda marker: int(marker.parent.name.split("-")[1])
        ).parent
        finish(fastbert("--resume", str(out)), f"resuming {out.name}")
        diff = differences(reference, out)
        results.append((moment, latest.name, diff))
        print(f"kill {k + 1}: {moment:.1f} s after the first checkpoint; resumed from {latest.name}: "
              + ("bit-identical" if not diff else f"{len(diff)} tensors differ, e.g. {diff[:3]}"), flush=True)  # fmt: skip

    checkpointed = next(out for kind, out in runs if kind == "every")
    size = sum(f.stat().st_size for f in (checkpointed / "checkpoints").rglob("*") if f.is_file())
    folders = len(list((checkpointed / "checkpoints").iterdir()))
    none_s, every_s = statistics.median(seconds["none"]), statistics.median(seconds["every"])
    print()
    print("| measure | result |\n|---|---|")
    print(f"| steps per run | {steps} (batch 16, 1 epoch) |")
    print(f"| training s, no checkpoints (median of {len(seconds['none'])}) | {none_s:.1f} |")
    print(f"| training s, a checkpoint every {args.checkpoint_every} steps + epoch end (median of {len(seconds['every'])}) | {every_s:.1f} |")  # fmt: skip
    print(
        f"| overhead: training seconds with / without checkpoints (bar ≤ 3%) | {100 * (every_s / none_s - 1):+.1f}% |"
    )
    share = ", ".join(f"{100 * w:.1f}%" for w in writing)
    print(f"| overhead: seconds writing checkpoints / training seconds, in the runs with them | {share} |")
    print(f"| checkpoints a finished run keeps | {folders}, {size / 1e6:.0f} MB |")
    print(
        f"| runs with checkpoints equal to the reference | {'all' if not same else 'not ' + ', '.join(same)} |"
    )
    for moment, latest, diff in results:
        verdict = "bit-identical weights and dev metrics" if not diff else f"DIFFERS: {diff[:3]}"
        print(f"| killed {moment:.1f} s after the first checkpoint, resumed from {latest} | {verdict} |")
    print(f"\nkill moments drawn with --seed {kill_seed}; runs in {work}")
    if same or any(diff for _, _, diff in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
