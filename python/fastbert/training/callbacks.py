"""Callbacks: code of yours that the training loop calls as it goes, and can stop it.

A callback is any object with some of these methods (each takes the `TrainingState`;
``on_evaluate`` also the evaluation's scalar metrics); the loop calls those it has:

- ``on_train_begin``, ``on_epoch_begin``, ``on_step_end`` (after each optimizer step),
  ``on_evaluate``, ``on_epoch_end``, ``on_train_end``.

Setting ``state.should_stop = True`` (with a ``state.stop_reason``) ends training after the
current step, as early stopping does. `EarlyStopping`, `ProgressBar` and `JsonLog`
(``OUT/log.jsonl``) are callbacks themselves; `fastbert.training.tensorboard` writes TensorBoard
event files the same way. The built-in ones keep nothing of their own between calls that a
resumed run would lack: what they need is in the state (its ``history`` included), so a resumed
run stops, logs and shows progress as the uninterrupted one would.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastbert.conversions import json_ready
from fastbert.training.history import History

__all__ = [
    "CALLBACK_METHODS",
    "Callback",
    "CallbackList",
    "EarlyStopping",
    "JsonLog",
    "ProgressBar",
    "RecentRate",
    "TrainingState",
    "is_logging_step",
]

#: The methods the loop calls, in the order of a run.
CALLBACK_METHODS = (
    "on_train_begin",
    "on_epoch_begin",
    "on_step_end",
    "on_evaluate",
    "on_epoch_end",
    "on_train_end",
)


@dataclass
class TrainingState:
    """What a callback sees: where the run stands, and the switch that stops it."""

    #: Optimizer steps done, and the run's total (from ``epochs`` or ``max_steps``).
    step: int
    total_steps: int
    #: The epoch under way (0-based) and the epochs the run spans; its steps, and those done.
    epoch: int
    epochs: int
    steps_in_epoch: int
    step_in_epoch: int
    #: The dev metric that picks the best weights, and whether higher is better.
    metric: str
    higher_is_better: bool
    history: History
    #: The last step's training loss, learning rate, and gradient norm (before clipping; set
    #: on the steps the loop measures it: every step when clipping, else on logging steps).
    loss: float | None = None
    learning_rate: float = 0.0
    grad_norm: float | None = None
    #: Training examples per second over the last few steps (`RecentRate`).
    samples_per_second: float = 0.0
    #: Set by a callback to end training after this step; ``stop_reason`` says why, for the log.
    should_stop: bool = False
    stop_reason: str | None = None

    @property
    def epoch_progress(self) -> float:
        """Epochs done, with the fraction of the current one (``1.5``: halfway through the second)."""
        return self.epoch + self.step_in_epoch / max(self.steps_in_epoch, 1)

    def is_logging_step(self, every: int) -> bool:
        """Whether a log written every ``every`` steps writes at this step (`is_logging_step`)."""
        return is_logging_step(self.step, self.total_steps, every)

    def mean_loss_since_last_log(self, every: int) -> float | None:
        """The mean training loss over the steps since the previous logging step, from the
        history (so a resumed run logs what the uninterrupted one would)."""
        since = self.step % every or every
        losses = self.history.train_loss[-since:]
        return sum(losses) / len(losses) if losses else None


def is_logging_step(step: int, total_steps: int, every: int) -> bool:
    """Whether a log written every ``every`` steps writes at ``step``: every ``every``-th step,
    and the run's last."""
    return step % every == 0 or step == total_steps


class Callback:
    """A base class whose methods do nothing: subclass it and override what you need (or write
    any object with some of the `CALLBACK_METHODS`)."""

    def on_train_begin(self, state: TrainingState) -> None:
        """Before the first step (of this process: a resumed run starts at its checkpoint's step)."""

    def on_epoch_begin(self, state: TrainingState) -> None:
        """Before the epoch's first step (or, when resuming mid-epoch, its next one)."""

    def on_step_end(self, state: TrainingState) -> None:
        """After each optimizer step."""

    def on_evaluate(self, state: TrainingState, metrics: dict[str, float]) -> None:
        """After each dev evaluation, with its scalar metrics (``state.history`` has them all)."""

    def on_epoch_end(self, state: TrainingState) -> None:
        """After the epoch's last step and its evaluation."""

    def on_train_end(self, state: TrainingState) -> None:
        """After training, before the best weights are restored."""


class CallbackList:
    """Calls each callback's method when it has one, in the order given."""

    def __init__(self, callbacks: Iterable[Any]) -> None:
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            if not any(callable(getattr(cb, m, None)) for m in CALLBACK_METHODS):
                raise TypeError(
                    f"callback {type(cb).__name__} has none of the callback methods ({', '.join(CALLBACK_METHODS)})"
                )

    def call(self, method: str, state: TrainingState, *args: Any) -> None:
        for cb in self.callbacks:
            fn = getattr(cb, method, None)
            if callable(fn):
                fn(state, *args)


class EarlyStopping(Callback):
    """Stop after ``patience`` evaluations in a row that did not beat the best (HF's
    ``EarlyStoppingCallback``): with ``patience=1``, the first evaluation without improvement
    stops the run. The count comes from the history (evaluations after the best one), so a
    resumed run stops where the uninterrupted one would."""

    def __init__(self, patience: int) -> None:
        if patience < 1:
            raise ValueError(f"early_stopping_patience must be at least 1 (or None), not {patience}")
        self.patience = patience

    def on_evaluate(self, state: TrainingState, metrics: dict[str, float]) -> None:
        history = state.history
        best = history.best_step
        since = sum(1 for e in history.evals if best is None or e["step"] > best)
        if since >= self.patience:
            state.should_stop = True
            state.stop_reason = f"early stopping: {state.metric} did not improve in {since} evaluation" + (
                "s" if since != 1 else ""
            )


class RecentRate:
    """Samples per second over the last ``window`` steps: what the run does now, not its
    average since the start (which an evaluation or a slow first step drags down for good)."""

    def __init__(self, window: int = 20) -> None:
        self.marks: deque[tuple[float, int]] = deque(maxlen=window + 1)

    def restart(self) -> None:
        """Forget the marks: time spent outside training steps (an evaluation) is not a rate."""
        self.marks.clear()
        self.marks.append((time.perf_counter(), 0))

    def add(self, samples: int) -> float:
        if not self.marks:
            self.restart()
        total = self.marks[-1][1]
        self.marks.append((time.perf_counter(), total + samples))
        (t0, s0), (t1, s1) = self.marks[0], self.marks[-1]
        return (s1 - s0) / max(t1 - t0, 1e-9)


class ProgressBar(Callback):
    """A tqdm bar per epoch on stderr, ``epoch 2/4``, with the loss and the recent samples/s."""

    def __init__(self) -> None:
        self.bar: Any = None

    def on_epoch_begin(self, state: TrainingState) -> None:
        from fastbert.progress import progress_bar

        self._close()
        total = min(state.steps_in_epoch, state.step_in_epoch + state.total_steps - state.step)
        desc = f"epoch {state.epoch + 1}/{state.epochs}"
        self.bar = progress_bar(total, "step", leave=False, desc=desc, initial=state.step_in_epoch)

    def on_step_end(self, state: TrainingState) -> None:
        if self.bar is None:
            return
        if state.loss is not None:
            shown = {"loss": f"{state.loss:.4f}", "samples/s": f"{state.samples_per_second:.1f}"}
            self.bar.set_postfix(shown, refresh=False)
        self.bar.update(1)
        if state.step_in_epoch == state.steps_in_epoch or state.step == state.total_steps:
            self._close()  # before the epoch end's evaluation prints its line

    def on_epoch_end(self, state: TrainingState) -> None:
        self._close()

    def on_train_end(self, state: TrainingState) -> None:
        self._close()

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


@dataclass
class JsonLog(Callback):
    """``log.jsonl``: one JSON object per line, flushed as written (``tail -f`` works).

    - every ``every`` steps (and the last): ``step``, ``epoch`` (fractional), ``loss`` (the mean
      over those steps), ``learning_rate``, ``grad_norm``, ``samples_per_second``;
    - after each evaluation: ``step``, ``epoch`` and ``eval`` (its scalar metrics);
    - at the end: ``step``, ``end: true``, ``train_seconds``, ``best_step``, ``best_score``,
      ``stopped``.

    A resumed run first drops the lines the killed run wrote after its checkpoint, so the file
    reads as one run's.
    """

    path: Path
    every: int = 10
    _file: Any = field(default=None, repr=False)

    def on_train_begin(self, state: TrainingState) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if state.step > 0 and self.path.is_file():
            self._keep_until(state.step)
        self._file = open(self.path, "a" if state.step > 0 else "w", encoding="utf-8")

    def _keep_until(self, step: int) -> None:
        kept = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except ValueError:  # a line cut short by the kill
                continue
            if isinstance(record, dict) and record.get("step", math.inf) <= step and not record.get("end"):
                kept.append(line)
        partial = self.path.with_name(self.path.name + ".partial")
        partial.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
        os.replace(partial, self.path)

    def _write(self, record: dict[str, Any]) -> None:
        if self._file is None:
            return
        self._file.write(json.dumps(json_ready(record), allow_nan=False) + "\n")
        self._file.flush()

    def on_step_end(self, state: TrainingState) -> None:
        if not state.is_logging_step(self.every):
            return
        self._write(
            {
                "step": state.step,
                "epoch": round(state.epoch_progress, 4),
                "loss": state.mean_loss_since_last_log(self.every),
                "learning_rate": state.learning_rate,
                "grad_norm": state.grad_norm,
                "samples_per_second": round(state.samples_per_second, 2),
            }
        )

    def on_evaluate(self, state: TrainingState, metrics: dict[str, float]) -> None:
        self._write({"step": state.step, "epoch": round(state.epoch_progress, 4), "eval": metrics})

    def on_train_end(self, state: TrainingState) -> None:
        history = state.history
        self._write(
            {
                "step": state.step,
                "end": True,
                "train_seconds": round(history.train_seconds, 3),
                "best_step": history.best_step,
                "best_score": history.best_score,
                "stopped": state.stop_reason,
            }
        )
        if self._file is not None:
            self._file.close()
            self._file = None
