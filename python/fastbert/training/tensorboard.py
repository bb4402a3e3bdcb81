"""``report_to=("tensorboard",)``: the run's log as TensorBoard event files in ``OUT/tensorboard``.

A callback (`fastbert.training.callbacks`) over ``torch.utils.tensorboard``, which needs the
``tensorboard`` package: ``pip install "fastbert[tensorboard]"``. Scalars are tagged
``train/loss``, ``train/learning_rate``, ``train/grad_norm``, ``train/samples_per_second`` and
``eval/<metric>``, at the optimizer step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastbert.training.callbacks import Callback, TrainingState

__all__ = ["TensorBoard"]


class TensorBoard(Callback):
    """Writes the scalars `fastbert.training.callbacks.JsonLog` logs, every ``every`` steps."""

    def __init__(self, folder: Path, every: int = 10) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ModuleNotFoundError(
                'report_to tensorboard needs the tensorboard package: pip install "fastbert[tensorboard]"'
            ) from None
        self.folder, self.every = folder, every
        self._writer_class = SummaryWriter
        self.writer: Any = None

    def on_train_begin(self, state: TrainingState) -> None:
        # A resumed run writes on from its checkpoint's step; TensorBoard shows the later
        # values of a step that the killed run had also written.
        self.writer = self._writer_class(
            log_dir=str(self.folder), purge_step=state.step + 1 if state.step else None
        )

    def on_step_end(self, state: TrainingState) -> None:
        if self.writer is None or not state.is_logging_step(self.every):
            return
        scalars = {
            "train/loss": state.mean_loss_since_last_log(self.every),
            "train/learning_rate": state.learning_rate,
            "train/grad_norm": state.grad_norm,
            "train/samples_per_second": state.samples_per_second,
        }
        for tag, value in scalars.items():
            if value is not None:
                self.writer.add_scalar(tag, value, state.step)

    def on_evaluate(self, state: TrainingState, metrics: dict[str, float]) -> None:
        if self.writer is None:
            return
        for name, value in metrics.items():
            self.writer.add_scalar(f"eval/{name}", value, state.step)
        self.writer.flush()

    def on_train_end(self, state: TrainingState) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
