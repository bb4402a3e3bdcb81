"""Run logs and callbacks: ``OUT/log.jsonl`` as training goes, TensorBoard event files that read
back, callbacks that see each step and evaluation and can stop the run, early stopping with
HF's semantics, and the progress bar's epoch and recent rate."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastbert
from fastbert.config import improves
from fastbert.training import callbacks as callbacks_mod
from fastbert.training.callbacks import EarlyStopping, JsonLog, RecentRate, TrainingState
from fastbert.training.history import History

STEP_KEYS = {"step", "epoch", "loss", "learning_rate", "grad_norm", "samples_per_second"}


def rows(n: int) -> list[dict[str, str]]:
    return [
        {"text": f"item {i} " + "very " * (i % 4) + ("good" if i % 2 == 0 else "bad"), "label": "pos" if i % 2 == 0 else "neg"}
        for i in range(n)
    ]  # fmt: skip


def options(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "epochs": 2, "batch_size": 8, "progress": False, "max_length": 24, "seed": 0, "leakage": "off",
        "calibrate": False, "tune_thresholds": False, "early_stopping_patience": None,
    }  # fmt: skip
    base.update(kw)
    return base


def read_log(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# ----------------------------------------------------------------------------- log.jsonl
def test_log_jsonl_has_a_line_per_logging_step_and_evaluation_written_as_it_goes(
    tiny_model: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    seen_at_step: dict[int, int] = {}

    class Tail:  # what `tail -f` would show after each step: the file is flushed line by line
        def on_step_end(self, state: TrainingState) -> None:
            seen_at_step[state.step] = len((out / "log.jsonl").read_text(encoding="utf-8").splitlines())

    # 32 rows / batch 8: 4 steps an epoch, 8 in all; a line every 3 steps and the last.
    ft = fastbert.finetune(
        rows(32), rows(8), model=tiny_model, out=out, callbacks=[Tail()], **options(log_every=3)
    )
    lines = read_log(out / "log.jsonl")
    steps = [r for r in lines if "loss" in r]
    evals = [r for r in lines if "eval" in r]
    assert [r["step"] for r in steps] == [3, 6, 8]
    assert all(set(r) == STEP_KEYS for r in steps)
    assert [r["epoch"] for r in steps] == [0.75, 1.5, 2.0]
    # The loss of a line is the mean over the steps since the last one.
    losses = ft.history.train_loss
    assert steps[0]["loss"] == pytest.approx(sum(losses[0:3]) / 3)
    assert steps[2]["loss"] == pytest.approx(sum(losses[6:8]) / 2)
    assert all(r["grad_norm"] > 0 and r["samples_per_second"] > 0 for r in steps)
    assert steps[0]["learning_rate"] > steps[1]["learning_rate"] > steps[2]["learning_rate"] > 0
    assert [r["step"] for r in evals] == [4, 8]
    assert evals[1]["eval"]["macro_f1"] == pytest.approx(ft.history.evals[1]["macro_f1"])
    assert lines[-1]["end"] is True and lines[-1]["best_step"] == ft.history.best_step
    assert seen_at_step[3] == 1 and seen_at_step[6] == 3  # step 3; step 3, eval 4, step 6
    # The final save keeps the log beside the model; a fresh run over the folder starts a new one.
    assert (out / "log.jsonl").is_file() and (out / "model.safetensors").is_file()
    fastbert.finetune(
        rows(32), rows(8), model=tiny_model, out=out, overwrite=True, **options(epochs=1, log_every=3)
    )
    assert [r["step"] for r in read_log(out / "log.jsonl") if "loss" in r] == [3, 4]


def test_a_resumed_run_drops_the_log_lines_written_after_its_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    written = [{"step": s, "loss": 1.0} for s in (2, 4, 6, 8)] + [{"step": 4, "eval": {"f1": 0.5}}]
    path.write_text("".join(json.dumps(r) + "\n" for r in written) + '{"step": 10, "lo', encoding="utf-8")
    log = JsonLog(path, every=2)
    state = TrainingState(
        step=4, total_steps=10, epoch=0, epochs=1, steps_in_epoch=10, step_in_epoch=4,
        metric="f1", higher_is_better=True, history=History(),
    )  # fmt: skip
    log.on_train_begin(state)
    state.step = 6
    state.history.train_loss = [1.0] * 6
    log.on_step_end(state)
    log.on_train_end(state)
    got = read_log(path)
    assert [(r["step"], "eval" in r) for r in got[:3]] == [(2, False), (4, False), (4, True)]
    assert got[3]["step"] == 6 and got[4]["end"] is True and len(got) == 5


# ----------------------------------------------------------------------------- callbacks
def test_callbacks_see_every_step_and_evaluation_and_can_stop_the_run(
    tiny_model: Path, tmp_path: Path
) -> None:
    events: list[tuple[str, int]] = []

    class Recorder(callbacks_mod.Callback):
        def on_train_begin(self, state: TrainingState) -> None:
            events.append(("begin", state.step))

        def on_epoch_begin(self, state: TrainingState) -> None:
            events.append(("epoch", state.epoch))

        def on_step_end(self, state: TrainingState) -> None:
            events.append(("step", state.step))

        def on_evaluate(self, state: TrainingState, metrics: dict[str, float]) -> None:
            assert "macro_f1" in metrics and all(isinstance(v, float) for v in metrics.values())
            events.append(("eval", state.step))

        def on_train_end(self, state: TrainingState) -> None:
            events.append(("end", state.step))

    class StopAt5:  # any object with some of the methods will do
        def on_step_end(self, state: TrainingState) -> None:
            if state.step == 5:
                state.should_stop, state.stop_reason = True, "enough"

    fastbert.finetune(rows(32), rows(8), model=tiny_model, callbacks=[Recorder()], **options())
    assert events == [
        ("begin", 0), ("epoch", 0), ("step", 1), ("step", 2), ("step", 3), ("step", 4), ("eval", 4),
        ("epoch", 1), ("step", 5), ("step", 6), ("step", 7), ("step", 8), ("eval", 8), ("end", 8),
    ]  # fmt: skip
    out = tmp_path / "run"
    stopped = fastbert.finetune(
        rows(32), rows(8), model=tiny_model, out=out, callbacks=[StopAt5()], **options(checkpoint_every=5)
    )
    assert stopped.history.steps[-1] == 5 and stopped.history.stop_reason == "enough"
    assert stopped.history.stopped_early
    assert read_log(out / "log.jsonl")[-1]["stopped"] == "enough"
    # The checkpoint of the stopping step knows the run stopped there (the stop was once recorded
    # after it was written), so the run, resumed from it, trains no further.
    state = json.loads((out / "checkpoints" / "step-5" / "state.json").read_text(encoding="utf-8"))
    assert state["history"]["stop_reason"] == "enough"
    assert fastbert.finetune(rows(32), rows(8), resume=out).history.steps[-1] == 5
    with pytest.raises(TypeError, match="callback int has none of the callback methods"):
        fastbert.finetune(rows(32), rows(8), model=tiny_model, callbacks=[3], **options())


def hf_stop_index(scores: list[float], patience: int, tmp_path: Path) -> int | None:
    """The evaluation after which transformers' EarlyStoppingCallback stops training (1-based)."""
    from transformers import EarlyStoppingCallback, TrainerControl, TrainerState, TrainingArguments

    args = TrainingArguments(
        output_dir=str(tmp_path), metric_for_best_model="macro_f1", greater_is_better=True,
        load_best_model_at_end=True, eval_strategy="steps", save_strategy="steps", report_to=[],
    )  # fmt: skip
    callback = EarlyStoppingCallback(early_stopping_patience=patience)
    state, control = TrainerState(), TrainerControl()
    for i, score in enumerate(scores):
        callback.on_evaluate(args, state, control, metrics={"eval_macro_f1": score})
        # The Trainer records the best metric after the callbacks have seen the evaluation.
        if state.best_metric is None or score > state.best_metric:
            state.best_metric = score
        if control.should_training_stop:
            return i + 1
    return None


def our_stop_index(scores: list[float], patience: int) -> int | None:
    history = History()
    state = TrainingState(
        step=0, total_steps=100, epoch=0, epochs=1, steps_in_epoch=100, step_in_epoch=0,
        metric="macro_f1", higher_is_better=True, history=history,
    )  # fmt: skip
    stopping = EarlyStopping(patience)
    for i, score in enumerate(scores):
        state.step = i + 1
        history.evals.append({"step": state.step, "macro_f1": score})
        if improves(score, history.best_score, True):
            history.best_score, history.best_step = score, state.step
        stopping.on_evaluate(state, {"macro_f1": score})
        if state.should_stop:
            return i + 1
    return None


@given(
    scores=st.lists(st.sampled_from([0.1, 0.2, 0.3, 0.4, 0.5]), min_size=1, max_size=10),
    patience=st.integers(1, 4),
)
@settings(max_examples=60, deadline=None)
def test_early_stopping_stops_where_transformers_stops(
    scores: list[float], patience: int, tmp_path_factory: pytest.TempPathFactory
) -> None:
    hf = hf_stop_index(scores, patience, tmp_path_factory.mktemp("hf"))
    assert our_stop_index(scores, patience) == hf, (scores, patience)


def test_patience_one_stops_at_the_first_evaluation_that_is_not_better() -> None:
    assert our_stop_index([0.5, 0.4, 0.9], 1) == 2
    assert our_stop_index([0.5, 0.6, 0.6, 0.6], 2) == 4
    assert our_stop_index([0.5, 0.6, 0.7], 3) is None


# ----------------------------------------------------------------------------- TensorBoard
def test_tensorboard_event_files_read_back(tiny_model: Path, tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    ft = fastbert.finetune(
        rows(32), rows(8), model=tiny_model, out=out, **options(log_every=2, report_to=("tensorboard",))
    )
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/learning_rate", "train/grad_norm", "eval/macro_f1", "eval/accuracy"} <= tags
    loss = events.Scalars("train/loss")
    assert [e.step for e in loss] == [2, 4, 6, 8]
    assert loss[0].value == pytest.approx(sum(ft.history.train_loss[:2]) / 2, rel=1e-5)
    assert [e.step for e in events.Scalars("eval/macro_f1")] == [4, 8]
    assert events.Scalars("eval/macro_f1")[1].value == pytest.approx(
        ft.history.evals[1]["macro_f1"], rel=1e-6
    )
    with pytest.raises(ValueError, match="report_to tensorboard writes into the output folder"):
        fastbert.finetune(rows(32), rows(8), model=tiny_model, **options(report_to=("tensorboard",)))
    with pytest.raises(ValueError, match="report_to takes tensorboard, not wandb"):
        fastbert.finetune(rows(32), rows(8), model=tiny_model, **options(report_to=("wandb",)))


# ----------------------------------------------------------------------------- the bar
def test_the_progress_bar_names_the_epoch_and_shows_a_recent_rate(
    tiny_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fastbert.finetune(rows(32), rows(8), model=tiny_model, **options(progress=True, epochs=3))
    err = capsys.readouterr().err
    assert "epoch 1/3" in err and "epoch 2/3" in err and "epoch 3/3" in err


def test_the_recent_rate_follows_the_last_steps_not_the_whole_run(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([0.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0])  # a slow first step, then 1 s per step
    monkeypatch.setattr(callbacks_mod.time, "perf_counter", lambda: next(clock))
    rate = RecentRate(window=3)
    got = [rate.add(16) for _ in range(6)]
    assert got[0] == pytest.approx(1.6)  # 16 samples in 10 s
    assert got[-1] == pytest.approx(16.0)  # the last 3 steps: 48 samples in 3 s
    assert not math.isclose(got[-1], 6 * 16 / 15)  # what a whole-run average would say
