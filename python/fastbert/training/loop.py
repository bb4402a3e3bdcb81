"""The training loop: BERT's recipe over pre-tokenized `Features`.

Batches (`fastbert.training.batching`), the loss (`fastbert.training.loss`), AdamW with warm-up
and decay (`fastbert.training.optim`), clipping, accumulation, evaluation every epoch or every
``eval_steps``, early stopping with the best weights restored, and DDP
(`fastbert.training.distributed`). Turning data into features is `fastbert.features`' job;
what an evaluation scores is the ``evaluate`` callback's (`fastbert.finetuning`).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from fastbert.config import FinetuneConfig, improves
from fastbert.features.arrays import Features
from fastbert.features.batches import make_batch
from fastbert.model.device import autocast_for
from fastbert.training.batching import bucketed_batches
from fastbert.training.distributed import distributed
from fastbert.training.heap import heap_allocations
from fastbert.training.loss import loss_denominator, task_loss
from fastbert.training.masking import mask_tokens
from fastbert.training.optim import build_optimizer, linear_schedule

__all__ = ["Evaluator", "History", "train"]


@dataclass
class History:
    """What happened during training (saved in fastbert.json)."""

    steps: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    evals: list[dict[str, Any]] = field(default_factory=list)
    best_step: int | None = None
    best_score: float | None = None
    stopped_early: bool = False
    train_seconds: float = 0.0
    train_samples_per_second: float = 0.0


# ----------------------------------------------------------------------------- train
Evaluator = Callable[[nn.Module], dict[str, Any]]


def train(
    model: nn.Module,
    cfg: FinetuneConfig,
    train_feats: Features,
    evaluate: Evaluator | None,
    *,
    device: torch.device,
    class_weights: np.ndarray | None = None,
    mlm: dict[str, Any] | None = None,
    progress: Callable[[Iterator[Any], int], Iterator[Any]] | None = None,
    log: Callable[[str], None] = print,
) -> History:
    """Fit ``model`` (a head from `fastbert.model.heads`) in place and restore its best weights.

    Under DDP (an initialised process group) ``cfg.batch_size`` is the global batch;
    each rank takes a contiguous slice of every global batch. On the CPU, large allocations
    come from the heap meanwhile (`fastbert.training.heap`: no page faults for the per-step
    embedding gradient).
    """
    heap = heap_allocations() if device.type == "cpu" else contextlib.nullcontext()
    with heap:
        return _train(
            model,
            cfg,
            train_feats,
            evaluate,
            device=device,
            class_weights=class_weights,
            mlm=mlm,
            progress=progress,
            log=log,
        )


def _train(
    model: nn.Module,
    cfg: FinetuneConfig,
    train_feats: Features,
    evaluate: Evaluator | None,
    *,
    device: torch.device,
    class_weights: np.ndarray | None,
    mlm: dict[str, Any] | None,
    progress: Callable[[Iterator[Any], int], Iterator[Any]] | None,
    log: Callable[[str], None],
) -> History:
    rank, world = distributed()
    task = cfg.task
    history = History()
    metric, higher = cfg.resolved_metric()
    model.to(device)
    wrapped: nn.Module = model
    if world > 1:
        wrapped = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=False
        )
    opt = build_optimizer(model, cfg)
    # The plan is made of optimizer steps: each entry is one step's global batch, cut into
    # `grad_accum` micro-batches and each of those into `world` contiguous slices. So accumulation
    # and DDP see the very examples (and the loss denominator) of one large batch: batch 32 with
    # grad_accum=2, or on 2 ranks, trains like batch 32 on one process (tests/test_recipe.py,
    # tests/test_ddp.py). Before, the plan was cut at micro-batch size and steps paired up
    # different examples than the same batch_size without accumulation.
    steps_per_epoch = len(
        bucketed_batches(
            train_feats.lengths,
            cfg.batch_size,
            seed=cfg.seed,
            token_budget=cfg.token_budget,
            pool=cfg.bucket_pool,
        )
    )
    total_steps = max(1, math.ceil(steps_per_epoch * cfg.epochs))
    sched = linear_schedule(opt, total_steps, int(cfg.warmup_ratio * total_steps))
    cw = (
        torch.tensor(class_weights, dtype=torch.float32, device=device) if class_weights is not None else None
    )
    gen = torch.Generator().manual_seed(cfg.seed + 7919 * rank)
    best_state: dict[str, Tensor] | None = None
    bad_evals = 0
    step = 0
    samples = 0
    start = time.perf_counter()

    def run_eval() -> bool:
        """Evaluate, keep the best weights; True when training should stop."""
        nonlocal best_state, bad_evals
        if evaluate is None:
            return False
        result = evaluate(model)
        result["step"] = step
        history.evals.append(result)
        score = float(result.get(metric, math.nan))
        if improves(score, history.best_score, higher):
            history.best_score, history.best_step = score, step
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            bad_evals = 0
        else:
            bad_evals += 1
        if rank == 0:
            best = (
                "none yet"
                if history.best_score is None
                else f"{history.best_score:.4f} at step {history.best_step}"
            )
            log(f"step {step}: {metric} {score:.4f} (best {best})")
        model.train()
        return cfg.early_stopping_patience is not None and bad_evals > cfg.early_stopping_patience

    model.train()
    epoch = 0
    stop = False
    while step < total_steps and not stop:
        plan = bucketed_batches(
            train_feats.lengths,
            cfg.batch_size,
            seed=cfg.seed,
            epoch=epoch,
            token_budget=cfg.token_budget,
            pool=cfg.bucket_pool,
        )
        iterator: Iterator[Any] = iter(plan)
        if progress is not None and rank == 0:
            iterator = progress(iterator, min(len(plan), total_steps - step))
        for idx in iterator:
            if step >= total_steps:
                break
            den = None
            if task != "mlm" and train_feats.labels is not None:
                # The step's global denominator: every micro-batch and rank divides its summed
                # loss by it, so the step's gradient is the mean over all its labels. DDP
                # averages gradients over ranks, hence the / world.
                den = loss_denominator(task, train_feats.labels[idx], class_weights) / world
            micros = [m for m in np.array_split(idx, cfg.grad_accum) if len(m)]
            running = 0.0
            for micro_idx in micros:
                part = np.array_split(micro_idx, world)[rank] if world > 1 else micro_idx
                weight = 1.0
                if len(part) == 0:
                    # Fewer examples than ranks (a short last batch): run one row with weight 0,
                    # so that this rank still joins DDP's gradient all-reduce.
                    part, weight = micro_idx[:1], 0.0
                b = make_batch(train_feats, part, device)
                if task == "mlm":
                    assert mlm is not None
                    inputs, labels = mask_tokens(b, generator=gen, **mlm)
                    labels = labels.to(device)
                    inputs = inputs.to(device)
                else:
                    inputs, labels = b["input_ids"], b["labels"]
                with autocast_for(device, cfg.precision):
                    logits = wrapped(inputs, b["attention_mask"], b["token_type_ids"])
                loss = task_loss(task, logits, labels, cw, den)
                if den is None:  # mlm: masked-token counts are only known per micro-batch and rank
                    loss = loss / len(micros)
                loss = loss * weight
                loss.backward()
                running += float(loss.detach())
            samples += len(idx)
            if world > 1:  # log the global loss, not rank 0's share of it
                total = torch.tensor([running], dtype=torch.float64, device=device)
                torch.distributed.all_reduce(total)
                running = float(total) / world
            if cfg.max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            history.steps.append(step)
            history.train_loss.append(running)
            if hasattr(iterator, "set_postfix"):  # a tqdm bar: show loss and throughput
                rate = samples / max(time.perf_counter() - start, 1e-9)
                iterator.set_postfix(
                    loss=f"{history.train_loss[-1]:.4f}", samples_s=f"{rate:.1f}", refresh=False
                )
            if cfg.eval_steps is not None and step % cfg.eval_steps == 0 and run_eval():
                stop = history.stopped_early = True
                break
        epoch += 1
        if not stop and cfg.eval_steps is None and run_eval():
            stop = history.stopped_early = True
    history.train_seconds = time.perf_counter() - start
    history.train_samples_per_second = samples / max(history.train_seconds, 1e-9)
    if evaluate is not None and (not history.evals or history.evals[-1]["step"] != step) and not stop:
        run_eval()
    if best_state is not None and cfg.restore_best:
        model.load_state_dict(best_state)
    model.eval()
    return history
