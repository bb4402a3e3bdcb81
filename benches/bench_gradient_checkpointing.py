"""Gradient checkpointing on the CPU: what it costs in time and saves in memory (issue 16).

``fastbert.finetune(..., gradient_checkpointing=True)`` recomputes each layer's activations in
the backward pass. This measures, for the packaged MiniLM on SST-2 train sentences (batch 32,
max length 128, fp32, ``--steps`` optimizer steps, no evaluation), with and without it:

- seconds per training step (``history.train_seconds / steps``, fastbert's own clock);
- the peak resident memory of the process (``ru_maxrss``): model, optimizer state and the
  activations kept for the backward pass, which checkpointing trades for recomputation.

Every run is a fresh process (a peak is per process); runs alternate off, on, on, off, ...
(``--rounds`` pairs), so drift on a shared machine lands on both sides. The weights after the
same steps must be equal within float tolerance (recomputation replays the same dropout).

    python benches/bench_gradient_checkpointing.py [--steps 40] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import header
from _train_common import find_data_dir, read_sst2


def child(checkpointing: bool, steps: int, data: Path) -> dict[str, Any]:
    import hashlib

    import torch

    import fastbert

    train = read_sst2(data, "train")[: steps * 32]
    ft = fastbert.finetune(
        train, train[:64], max_steps=steps, batch_size=32, max_length=128, seed=0, progress=False,
        eval_steps=10**9, early_stopping_patience=None, calibrate=False, tune_thresholds=False,
        leakage="off", device="cpu", gradient_checkpointing=checkpointing,
    )  # fmt: skip
    history = ft.history
    weights = torch.cat([p.detach().flatten() for p in ft.model.parameters()])
    return {
        "checkpointing": checkpointing,
        "seconds_per_step": history.train_seconds / len(history.steps),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "weights_sha": hashlib.sha256(weights.numpy().tobytes()).hexdigest()[:16],
        "weights_sum": float(weights.double().abs().sum()),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--data", type=Path, default=None)
    p.add_argument("--child", choices=["on", "off"], help=argparse.SUPPRESS)
    a = p.parse_args()
    data = find_data_dir(a.data)
    if a.child:
        print(json.dumps(child(a.child == "on", a.steps, data)))
        return
    header("Gradient checkpointing on the CPU: MiniLM, SST-2, batch 32, max length 128")
    runs: list[dict[str, Any]] = []
    order = [m for k in range(a.rounds) for m in (("off", "on") if k % 2 == 0 else ("on", "off"))]
    for mode in order:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", mode, "--steps", str(a.steps), "--data", str(data)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        run = json.loads(proc.stdout.strip().splitlines()[-1])
        runs.append(run)
        print(
            f"- {mode}: {run['seconds_per_step']:.3f} s/step, peak RSS {run['peak_rss_mb']:.0f} MB",
            flush=True,
        )
    print("\n| gradient checkpointing | s/step (median) | peak RSS MB (median) |\n|---|---|---|")
    medians = {}
    for mode in (False, True):
        mine = [r for r in runs if r["checkpointing"] == mode]
        medians[mode] = (
            statistics.median(r["seconds_per_step"] for r in mine),
            statistics.median(r["peak_rss_mb"] for r in mine),
        )
        print(f"| {'on' if mode else 'off'} | {medians[mode][0]:.3f} | {medians[mode][1]:.0f} |")
    time_ratio = medians[True][0] / medians[False][0]
    memory_saved = medians[False][1] - medians[True][1]
    print(f"\ntime per step with / without: {time_ratio:.2f}x; peak memory saved: {memory_saved:.0f} MB")
    sums = {r["checkpointing"]: r["weights_sum"] for r in runs}
    print(f"sum of |weights| after {a.steps} steps, off / on: {sums[False]:.6f} / {sums[True]:.6f}")


if __name__ == "__main__":
    main()
