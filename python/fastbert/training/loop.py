"""The training loop: BERT's recipe over pre-tokenized `Features`.

Batches (`fastbert.training.batching`), the loss (`fastbert.training.loss`), AdamW with warm-up
and decay (`fastbert.training.optim`), clipping, accumulation, evaluation every epoch or every
``eval_steps``, early stopping with the best weights restored, and DDP
(`fastbert.training.distributed`). Turning data into features is `fastbert.features`' job;
what an evaluation scores is the ``evaluate`` callback's (`fastbert.finetuning`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from fastbert.config import FinetuneConfig, improves
from fastbert.features.arrays import Features
from fastbert.features.batches import make_batch
from fastbert.model.device import autocast_for, resolve_precision
from fastbert.training.batching import bucketed_batches
from fastbert.training.callbacks import (
    CallbackList,
    EarlyStopping,
    JsonLog,
    ProgressBar,
    RecentRate,
    TrainingState,
    is_logging_step,
)
from fastbert.training.checkpoint import (
    CHECKPOINTS,
    Checkpoint,
    Position,
    prune,
    restore_model,
    restore_optimizer,
    restore_rng,
    save_checkpoint,
)
from fastbert.training.distributed import distributed
from fastbert.training.heap import heap_allocations
from fastbert.training.history import History
from fastbert.training.loss import loss_denominator, task_loss
from fastbert.training.masking import mask_tokens
from fastbert.training.optim import build_optimizer, linear_schedule

__all__ = [
    "LOG_FILE",
    "RUN_RECORDS",
    "TENSORBOARD_DIR",
    "Evaluator",
    "History",
    "RunFolder",
    "TrainingInterrupted",
    "train",
]

#: In a run folder: the training log (`fastbert.training.callbacks.JsonLog`) and TensorBoard's files.
LOG_FILE = "log.jsonl"
TENSORBOARD_DIR = "tensorboard"
#: What a run folder holds besides the model: kept when the model is saved into it.
RUN_RECORDS = (CHECKPOINTS, LOG_FILE, TENSORBOARD_DIR)


# ----------------------------------------------------------------------------- train
Evaluator = Callable[[nn.Module], dict[str, Any]]


@dataclass
class RunFolder:
    """Where a run writes its checkpoints (`fastbert.training.checkpoint`), and what they record
    beside the tensors: the full config, and the data's fingerprints and files
    (`fastbert.training.checkpoint.Checkpoint.data`), which a resumed run must match."""

    path: Path
    config: dict[str, Any]
    data: dict[str, Any]


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped training after a step; ``checkpoint`` holds that step."""

    def __init__(self, signum: int, step: int, checkpoint: Path | None) -> None:
        super().__init__(f"interrupted by signal {signum} after step {step}")
        self.signum, self.step, self.checkpoint = signum, step, checkpoint


def train(
    model: nn.Module,
    cfg: FinetuneConfig,
    train_feats: Features,
    evaluate: Evaluator | None,
    *,
    device: torch.device,
    class_weights: np.ndarray | None = None,
    mlm: dict[str, Any] | None = None,
    log: Callable[[str], None] = print,
    run: RunFolder | None = None,
    resume: Checkpoint | None = None,
    callbacks: Sequence[Any] = (),
) -> History:
    """Fit ``model`` (a head from `fastbert.model.heads`) in place and restore its best weights.

    Under DDP (an initialised process group) ``cfg.batch_size`` is the global batch;
    each rank takes a contiguous slice of every global batch. On the CPU, large allocations
    come from the heap meanwhile (`fastbert.training.heap`: no page faults for the per-step
    embedding gradient).

    ``callbacks`` (`fastbert.training.callbacks`) are called after each step and evaluation and
    may stop the run; early stopping, the progress bar (``cfg.progress``), ``log.jsonl`` and
    TensorBoard (with a ``run`` folder) are callbacks too, called before yours.

    With a ``run`` folder, checkpoints are written there (every ``cfg.checkpoint_every`` steps,
    at epoch ends, and when SIGINT or SIGTERM arrives: the current step is finished, a
    checkpoint written, and `TrainingInterrupted` raised). ``resume`` continues from a
    checkpoint: the same data and config then give the very weights of an uninterrupted run.
    """
    heap = heap_allocations() if device.type == "cpu" else contextlib.nullcontext()
    with heap, _signals_to_flag(run is not None) as interrupted:
        loop = _Loop(model, cfg, train_feats, evaluate, device, class_weights, mlm, log, run, interrupted)
        if resume is not None:
            loop.restore(resume)
        return loop.run(CallbackList([*built_in_callbacks(cfg, run, loop.rank), *callbacks]))


def built_in_callbacks(cfg: FinetuneConfig, run: RunFolder | None, rank: int) -> list[Any]:
    """Early stopping (every rank: they must stop together), then on rank 0 the progress bar,
    ``log.jsonl`` and TensorBoard."""
    found: list[Any] = []
    if cfg.early_stopping_patience is not None:
        found.append(EarlyStopping(cfg.early_stopping_patience))
    if rank != 0:
        return found
    if cfg.progress:
        found.append(ProgressBar())
    if run is not None:
        found.append(JsonLog(run.path / LOG_FILE, cfg.log_every))
    if "tensorboard" in cfg.report_to:
        if run is None:
            raise ValueError("report_to tensorboard writes into the output folder: give out= (--out)")
        from fastbert.training.tensorboard import TensorBoard

        found.append(TensorBoard(run.path / TENSORBOARD_DIR, cfg.log_every))
    return found


@contextlib.contextmanager
def _signals_to_flag(enabled: bool) -> Iterator[list[int]]:
    """While training with a run folder, SIGINT and SIGTERM only set a flag (the signal number)
    that the loop checks after each step; the previous handlers come back afterwards."""
    flag: list[int] = []
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum: int, frame: Any) -> None:
        if flag:  # a second Ctrl-C: stop now (the checkpoints already written stay whole)
            raise KeyboardInterrupt
        flag.append(signum)
        name = signal.Signals(signum).name
        print(
            f"{name}: finishing this step and writing a checkpoint (again to stop at once)",
            file=sys.stderr,
            flush=True,
        )

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _stopping(state: TrainingState) -> bool:
    """Whether a callback has asked to stop (a call, so that a type checker does not take the
    flag for a constant across the callbacks that may set it)."""
    return state.should_stop


class _Loop:
    """One training run's state between steps, and the steps."""

    def __init__(
        self,
        model: nn.Module,
        cfg: FinetuneConfig,
        feats: Features,
        evaluate: Evaluator | None,
        device: torch.device,
        class_weights: np.ndarray | None,
        mlm: dict[str, Any] | None,
        log: Callable[[str], None],
        run: RunFolder | None,
        interrupted: list[int],
    ) -> None:
        self.model, self.cfg, self.feats, self.evaluate = model, cfg, feats, evaluate
        self.device, self.class_weights, self.mlm, self.log = device, class_weights, mlm, log
        self.run_folder, self.interrupted = run, interrupted
        self.rank, self.world = distributed()
        self.precision = resolve_precision(device, cfg.precision)
        self.history = History(precision=self.precision.dtype)
        self.metric, self.higher = cfg.resolved_metric()
        model.to(device)
        self.opt = build_optimizer(model, cfg)
        # The plan is made of optimizer steps: each entry is one step's global batch, cut into
        # `grad_accum` micro-batches and each of those into `world` contiguous slices. So
        # accumulation and DDP see the very examples (and the loss denominator) of one large
        # batch: batch 32 with grad_accum=2, or on 2 ranks, trains like batch 32 on one process
        # (tests/test_recipe.py, tests/test_ddp.py).
        self.steps_per_epoch = len(self._plan(0))
        self.total_steps = cfg.max_steps or max(1, math.ceil(self.steps_per_epoch * cfg.epochs))
        self.sched = linear_schedule(self.opt, self.total_steps, int(cfg.warmup_ratio * self.total_steps))
        # fp16's small gradients underflow: scale the loss up, and the gradients back down
        # before clipping and the step (a no-op for fp32 and bf16).
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.precision.scaled)
        self.cw = (
            torch.tensor(class_weights, dtype=torch.float32, device=device)
            if class_weights is not None
            else None
        )
        self.gen = torch.Generator().manual_seed(cfg.seed + 7919 * self.rank)
        self.best_state: dict[str, Tensor] | None = None
        self.at = Position()
        self.written: dict[int, Path] = {}
        self.rate = RecentRate()

    def _plan(self, epoch: int) -> list[np.ndarray]:
        cfg = self.cfg
        return bucketed_batches(
            self.feats.lengths, cfg.batch_size, seed=cfg.seed, epoch=epoch, token_budget=cfg.token_budget,
            pool=cfg.bucket_pool,
        )  # fmt: skip

    def restore(self, checkpoint: Checkpoint) -> None:
        """Continue where ``checkpoint`` left off (weights, optimizer, schedule, position, RNGs)."""
        restore_model(checkpoint, self.model)
        restore_optimizer(checkpoint, self.opt)
        self.sched.load_state_dict(checkpoint.scheduler)
        # The learning rate of the next step, from this run's schedule: the same as the
        # checkpoint's unless `epochs` changed, and then that of the new length from now on.
        step = self.sched.last_epoch
        for group, base, factor in zip(
            self.opt.param_groups, self.sched.base_lrs, self.sched.lr_lambdas, strict=True
        ):
            group["lr"] = base * factor(step)
        if checkpoint.scaler is not None and self.scaler.is_enabled():
            self.scaler.load_state_dict(checkpoint.scaler)
        known = {f.name for f in dataclasses.fields(History)}
        self.history = History(**{k: v for k, v in checkpoint.history.items() if k in known})
        self.history.precision = self.precision.dtype
        self.best_state = checkpoint.best
        self.at = dataclasses.replace(checkpoint.position)
        restore_rng(checkpoint, self.gen)  # last: nothing after it may draw a random number

    # ------------------------------------------------------------------ the run
    def _state(self) -> TrainingState:
        return TrainingState(
            step=self.at.step,
            total_steps=self.total_steps,
            epoch=self.at.epoch,
            epochs=math.ceil(self.total_steps / max(self.steps_per_epoch, 1)),
            steps_in_epoch=self.steps_per_epoch,
            step_in_epoch=self.at.position,
            metric=self.metric,
            higher_is_better=self.higher,
            history=self.history,
            learning_rate=self._learning_rate(),
        )

    def _learning_rate(self) -> float:
        """The rate of the next step: the top of the groups (the head's, under ``lr_decay``)."""
        return max(group["lr"] for group in self.opt.param_groups)

    def _record_stop(self, state: TrainingState) -> bool:
        """Put a stop a callback asked for into the history (once); True when it is new."""
        if not state.should_stop or self.history.stop_reason is not None:
            return False
        self.history.stop_reason = state.stop_reason or "stopped by a callback"
        return True

    def run(self, callbacks: CallbackList) -> History:
        cfg, at, history = self.cfg, self.at, self.history
        wrapped: nn.Module = self.model
        if self.world > 1:
            wrapped = nn.parallel.DistributedDataParallel(
                self.model,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=False,
            )
        if self.rank == 0 and at.step == 0:
            self.log(f"precision: {self.precision.reason}")
        self.start = time.perf_counter()
        self.model.train()
        state = self._state()
        # A run that had stopped (early stopping, a callback) before its checkpoint was written
        # stays stopped when resumed: the uninterrupted run trained no further either.
        state.should_stop = history.stop_reason is not None
        callbacks.call("on_train_begin", state)
        every_epoch = cfg.eval_epochs if cfg.eval_epochs is not None else cfg.eval_steps is None
        while at.step < self.total_steps and not _stopping(state):
            plan = self._plan(at.epoch)
            state.epoch, state.steps_in_epoch, state.step_in_epoch = at.epoch, len(plan), at.position
            callbacks.call("on_epoch_begin", state)
            self.rate.restart()
            for idx in plan[at.position :]:
                if at.step >= self.total_steps:
                    break
                # The gradient norm costs a pass over the gradients without clipping: only on
                # the steps that log it.
                logged = is_logging_step(at.step + 1, self.total_steps, cfg.log_every)
                state.learning_rate = self._learning_rate()
                loss, norm = self._step(wrapped, idx, measure_norm=logged)
                history.train_loss.append(loss)
                at.step += 1
                at.position += 1
                at.samples += len(idx)
                history.steps.append(at.step)
                state.step, state.step_in_epoch, state.loss = at.step, at.position, loss
                state.grad_norm = float(norm) if norm is not None and logged else None
                state.samples_per_second = self.rate.add(len(idx))
                callbacks.call("on_step_end", state)
                if cfg.eval_steps is not None and at.step % cfg.eval_steps == 0:
                    self._evaluate(state, callbacks)
                every = cfg.checkpoint_every
                if self.interrupted or (every is not None and at.step % every == 0):
                    self._checkpoint(state)
                if _stopping(state):
                    break
            if _stopping(state):
                break
            at.epoch += 1
            at.position = 0
            if every_epoch and not self._evaluated_last_step():
                self._evaluate(state, callbacks)
            callbacks.call("on_epoch_end", state)
            if cfg.checkpoint_epochs:
                self._checkpoint(state)
        history.train_seconds = self._seconds()
        history.train_samples_per_second = at.samples / max(history.train_seconds, 1e-9)
        if not state.should_stop and not self._evaluated_last_step():
            self._evaluate(state, callbacks)
        self._record_stop(state)
        history.stopped_early = history.stop_reason is not None
        callbacks.call("on_train_end", state)
        if self.best_state is not None and cfg.restore_best:
            self.model.load_state_dict(self.best_state)
        self.model.eval()
        return history

    def _evaluated_last_step(self) -> bool:
        evals = self.history.evals
        return self.evaluate is None or (bool(evals) and evals[-1]["step"] == self.at.step)

    def _seconds(self) -> float:
        return self.at.seconds + time.perf_counter() - self.start

    def _step(self, wrapped: nn.Module, idx: np.ndarray, measure_norm: bool) -> tuple[float, Tensor | None]:
        """One optimizer step on the global batch ``idx``; returns its (global) loss and, when
        clipping or ``measure_norm``, the gradients' global L2 norm before clipping."""
        cfg, task, feats, device = self.cfg, self.cfg.task, self.feats, self.device
        rank, world = self.rank, self.world
        den = None
        if task != "mlm" and feats.labels is not None:
            # The step's global denominator: every micro-batch and rank divides its summed loss
            # by it, so the step's gradient is the mean over all its labels. DDP averages
            # gradients over ranks, hence the / world.
            den = loss_denominator(task, feats.labels[idx], self.class_weights) / world
        micros = [m for m in np.array_split(idx, cfg.grad_accum) if len(m)]
        running = 0.0
        for micro_idx in micros:
            part = np.array_split(micro_idx, world)[rank] if world > 1 else micro_idx
            weight = 1.0
            if len(part) == 0:
                # Fewer examples than ranks (a short last batch): run one row with weight 0,
                # so that this rank still joins DDP's gradient all-reduce.
                part, weight = micro_idx[:1], 0.0
            b = make_batch(feats, part, device)
            if task == "mlm":
                assert self.mlm is not None
                inputs, labels = mask_tokens(b, generator=self.gen, **self.mlm)
                labels = labels.to(device)
                inputs = inputs.to(device)
            else:
                inputs, labels = b["input_ids"], b["labels"]
            with autocast_for(device, self.precision):
                logits = wrapped(inputs, b["attention_mask"], b["token_type_ids"])
            loss = task_loss(task, logits, labels, self.cw, den, cfg.label_smoothing)
            if den is None:  # mlm: masked-token counts are only known per micro-batch and rank
                loss = loss / len(micros)
            loss = loss * weight
            self.scaler.scale(loss).backward()
            running += float(loss.detach())
        if world > 1:  # log the global loss, not rank 0's share of it
            total = torch.tensor([running], dtype=torch.float64, device=device)
            torch.distributed.all_reduce(total)
            running = float(total) / world
        self.scaler.unscale_(self.opt)
        norm = None
        if cfg.max_grad_norm is not None:
            norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm)
        elif measure_norm:
            norm = torch.nn.utils.get_total_norm(
                [p.grad for p in self.model.parameters() if p.grad is not None]
            )
        self.scaler.step(self.opt)
        self.scaler.update()
        self.sched.step()
        self.opt.zero_grad(set_to_none=True)
        return running, norm

    def _evaluate(self, state: TrainingState, callbacks: CallbackList) -> None:
        """Evaluate, keep the best weights, and tell the callbacks (which may stop the run)."""
        if self.evaluate is None:
            return
        history, step = self.history, self.at.step
        result = self.evaluate(self.model)
        result["step"] = step
        history.evals.append(result)
        score = float(result.get(self.metric, math.nan))
        if improves(score, history.best_score, self.higher):
            history.best_score, history.best_step = score, step
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        if self.rank == 0:
            best = (
                "none yet"
                if history.best_score is None
                else f"{history.best_score:.4f} at step {history.best_step}"
            )
            epoch = self.at.epoch + (0 if self.at.position == 0 else 1)
            self.log(
                f"eval at step {step} of {self.total_steps} (epoch {epoch}): {self.metric} {score:.4f} "
                f"(best {best})"
            )
        self.model.train()
        metrics = {k: float(v) for k, v in result.items() if isinstance(v, int | float) and k != "step"}
        callbacks.call("on_evaluate", state, metrics)
        if self._record_stop(state) and self.rank == 0:
            self.log(f"{history.stop_reason}; stopping at step {step}")
        self.rate.restart()

    def _checkpoint(self, state: TrainingState) -> None:
        """Write a checkpoint of this step (rank 0), keep the last few; after a signal, stop."""
        # A stop asked for at this step (a callback in on_step_end) goes into the checkpoint, so
        # that a run resumed from it stays stopped.
        self._record_stop(state)
        folder = self.written.get(self.at.step)
        if self.run_folder is not None and self.rank == 0 and folder is None:
            began = time.perf_counter()
            self.at.seconds += began - self.start  # the clock so far, saved with the position
            self.start = began
            folder = save_checkpoint(
                self.run_folder.path,
                model=self.model,
                best=self.best_state,
                optimizer=self.opt,
                scheduler=self.sched,
                scaler=self.scaler.state_dict() if self.scaler.is_enabled() else None,
                generator=self.gen,
                position=self.at,
                history=dataclasses.asdict(self.history),
                config=self.run_folder.config,
                data=self.run_folder.data,
            )
            self.written = {self.at.step: folder}  # the last step of an epoch: written once
            prune(self.run_folder.path, self.cfg.keep_checkpoints, self.history.best_step)
            self.history.checkpoint_seconds += time.perf_counter() - began
            self.rate.restart()
        if self.interrupted:
            raise TrainingInterrupted(self.interrupted[0], self.at.step, folder)
