"""The training recipe: batches, loss, AdamW, warm-up/decay, clipping, accumulation,
evaluation, early stopping with the best weights restored, seeds, and DDP.

Everything here works on pre-tokenized `Features`; turning data into features and
metrics into reports is `fastbert.api`'s job.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fastbert.batching import bucketed_batches, eval_batches
from fastbert.config import FinetuneConfig
from fastbert.heap import heap_allocations

IGNORE = -100


@dataclass
class Features:
    """Token ids of every example, padded to the longest example, plus targets.

    input_ids, token_type_ids: (n, L) int32; lengths: (n,) real tokens per row.
    labels: classification/pair (n,) int64; multilabel (n, C) float32; regression (n,)
    float32; token (n, L) int64 with -100 on ignored tokens; mlm None.
    word_ids: (n, L) int32, -1 for none (token and mlm tasks).
    """

    input_ids: np.ndarray
    token_type_ids: np.ndarray
    lengths: np.ndarray
    labels: np.ndarray | None = None
    word_ids: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.lengths)


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


# ----------------------------------------------------------------------------- setup
def seed_everything(seed: int, deterministic: bool = False) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        # cuBLAS needs this to be deterministic; harmless on the CPU.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def autocast_for(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast where the GPU supports it (``auto``), fp32 on the CPU."""
    if device.type != "cuda" or precision == "fp32":
        return contextlib.nullcontext()
    if precision in ("auto", "bf16") and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if precision == "fp16":
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def distributed() -> tuple[int, int]:
    """(rank, world size); (0, 1) unless running under an initialised process group."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def init_distributed_from_env() -> bool:
    """Join the process group that ``torchrun`` describes in the environment, if any."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or torch.distributed.is_initialized():
        return torch.distributed.is_initialized()
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    torch.distributed.init_process_group(backend)
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return True


# ----------------------------------------------------------------------------- optimizer
def build_optimizer(model: nn.Module, cfg: FinetuneConfig) -> torch.optim.AdamW:
    """AdamW; no weight decay on biases and LayerNorm weights (BERT's recipe)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if name.endswith("bias") or "LayerNorm" in name or p.ndim < 2 else decay).append(p)
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    # The fused kernel does the same arithmetic in one pass over each tensor: on the CPU the
    # unfused (foreach) update spent about 15% of a MiniLM training step in separate sqrt, lerp,
    # addcdiv, ... passes (profiled). HF Trainer's default optimizer is the fused one too.
    params = decay + no_decay
    fused = bool(params) and all(
        p.device.type in ("cpu", "cuda") and p.dtype in (torch.float32, torch.float16, torch.bfloat16)
        for p in params
    )
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.adam_betas, eps=cfg.adam_eps, fused=fused or None)


def linear_schedule(
    opt: torch.optim.Optimizer, total_steps: int, warmup_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up from 0 to the peak, then linear decay to 0 at ``total_steps``."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return step / max(1, warmup_steps)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


# ----------------------------------------------------------------------------- batches
def make_batch(feats: Features, idx: np.ndarray, device: torch.device) -> dict[str, Tensor]:
    """Rows ``idx`` cut to their longest member, as tensors (right padding, pad id 0 masked out)."""
    width = int(feats.lengths[idx].max()) if len(idx) else 0
    ids = torch.from_numpy(feats.input_ids[idx, :width].astype(np.int64))
    mask = (torch.arange(width)[None, :] < torch.from_numpy(feats.lengths[idx])[:, None]).long()
    batch = {
        "input_ids": ids.to(device),
        "attention_mask": mask.to(device),
        "token_type_ids": torch.from_numpy(feats.token_type_ids[idx, :width].astype(np.int64)).to(device),
    }
    if feats.labels is not None:
        labels = feats.labels[idx]
        if labels.ndim == 2 and labels.dtype == np.int64:  # token labels
            labels = labels[:, :width]
        batch["labels"] = torch.from_numpy(np.ascontiguousarray(labels)).to(device)
    if feats.word_ids is not None:
        batch["word_ids"] = torch.from_numpy(feats.word_ids[idx, :width].astype(np.int64)).to(device)
    return batch


def mask_tokens(
    batch: dict[str, Tensor],
    *,
    vocab_size: int,
    mask_id: int,
    special_ids: Tensor,
    probability: float,
    whole_word: bool,
    generator: torch.Generator,
) -> tuple[Tensor, Tensor]:
    """BERT's masking: select ``probability`` of the real tokens (whole words when asked);
    of those, 80% become [MASK], 10% a random token, 10% stay. Returns (inputs, labels)."""
    ids = batch["input_ids"]
    real = batch["attention_mask"].bool() & ~torch.isin(ids, special_ids)
    if whole_word:
        words = batch["word_ids"]
        # One draw per (row, word); every sub-token of a drawn word is selected.
        draw = torch.rand(
            ids.shape[0], int(words.max().item()) + 1 if words.numel() else 1, generator=generator
        )
        selected = torch.gather(draw, 1, words.clamp_min(0)) < probability
        selected &= real & (words >= 0)
    else:
        selected = (torch.rand(ids.shape, generator=generator) < probability) & real
    labels = torch.where(selected, ids, torch.full_like(ids, IGNORE))
    roll = torch.rand(ids.shape, generator=generator)
    inputs = ids.clone()
    inputs[selected & (roll < 0.8)] = mask_id
    random_tokens = torch.randint(vocab_size, ids.shape, generator=generator)
    swap = selected & (roll >= 0.8) & (roll < 0.9)
    inputs[swap] = random_tokens[swap]
    return inputs, labels


# ----------------------------------------------------------------------------- loss
def task_loss(
    task: str,
    logits: Tensor,
    labels: Tensor,
    class_weights: Tensor | None,
    denominator: float | None = None,
) -> Tensor:
    """The task's loss, summed and divided by ``denominator`` (defaults to the mean).

    A shared denominator lets DDP ranks that see different numbers of labelled
    tokens still add up to exactly the global mean.
    """
    if task in ("classification", "pair"):
        total = F.cross_entropy(logits.float(), labels, weight=class_weights, reduction="sum")
        count = class_weights[labels].sum() if class_weights is not None else labels.numel()
    elif task == "multilabel":
        total = F.binary_cross_entropy_with_logits(logits.float(), labels.float(), reduction="sum")
        count = labels.numel()
    elif task == "regression":
        total = F.mse_loss(logits.float().squeeze(-1), labels.float(), reduction="sum")
        count = labels.numel()
    elif task in ("token", "mlm"):
        flat = logits.float().reshape(-1, logits.shape[-1])
        target = labels.reshape(-1)
        total = F.cross_entropy(flat, target, weight=class_weights, ignore_index=IGNORE, reduction="sum")
        keep = target != IGNORE
        count = class_weights[target[keep]].sum() if class_weights is not None else keep.sum()
    else:
        raise ValueError(f"unknown task {task!r}")
    den = denominator if denominator is not None else float(count)
    return total / max(den, 1e-12)


def loss_denominator(task: str, labels: np.ndarray, class_weights: np.ndarray | None) -> float:
    """The global denominator of `task_loss` for a batch's labels (numpy, known to every rank)."""
    if task in ("token", "mlm"):
        keep = labels[labels != IGNORE]
        return float(class_weights[keep].sum()) if class_weights is not None else float(keep.size)
    if task in ("classification", "pair") and class_weights is not None:
        return float(class_weights[labels].sum())
    return float(labels.size)


# ----------------------------------------------------------------------------- predict
@torch.no_grad()
def predict_logits(
    model: nn.Module, feats: Features, batch_size: int, device: torch.device, precision: str
) -> np.ndarray:
    """Logits in example order: (n, C) for sequence tasks, (n, L, C) for token tasks."""
    model.eval()
    outputs: list[tuple[np.ndarray, np.ndarray]] = []
    for idx in eval_batches(feats.lengths, batch_size * 2):
        b = make_batch(feats, idx, device)
        with autocast_for(device, precision):
            out = model(b["input_ids"], b["attention_mask"], b["token_type_ids"])
        outputs.append((idx, out.float().cpu().numpy()))
    if not outputs:
        return np.zeros((0, 0), dtype=np.float32)
    first = outputs[0][1]
    if first.ndim == 3:
        width = feats.input_ids.shape[1]
        result = np.zeros((len(feats), width, first.shape[-1]), dtype=np.float32)
        for idx, out in outputs:
            result[idx, : out.shape[1]] = out
    else:
        result = np.zeros((len(feats), first.shape[-1]), dtype=np.float32)
        for idx, out in outputs:
            result[idx] = out
    return result


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
    """Fit ``model`` (a head from `fastbert.heads`) in place and restore its best weights.

    Under DDP (an initialised process group) ``cfg.batch_size`` is the global batch;
    each rank takes a contiguous slice of every global batch. On the CPU, large allocations
    come from the heap meanwhile (`fastbert.heap`: no page faults for the per-step
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
        score = float(result.get(metric, float("nan")))
        better = history.best_score is None or (
            score > history.best_score if higher else score < history.best_score
        )
        if better and not math.isnan(score):
            history.best_score, history.best_step = score, step
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            bad_evals = 0
        else:
            bad_evals += 1
        if rank == 0:
            log(
                f"step {step}: {metric} {score:.4f} (best {history.best_score:.4f} at step {history.best_step})"
            )
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


def copy_state(model: nn.Module) -> dict[str, Tensor]:
    return copy.deepcopy(model.state_dict())
