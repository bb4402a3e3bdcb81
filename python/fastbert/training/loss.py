"""The task losses, with the global denominator that accumulation and DDP share, and class weights."""

from __future__ import annotations

import numpy as np
import torch.nn.functional as F
from torch import Tensor

from fastbert.config import FinetuneConfig

__all__ = ["IGNORE", "class_weight_vector", "loss_denominator", "task_loss"]

#: The label cross-entropy skips: special tokens, continuation sub-tokens, unmasked MLM tokens.
IGNORE = -100


def task_loss(
    task: str,
    logits: Tensor,
    labels: Tensor,
    class_weights: Tensor | None,
    denominator: float | None = None,
    label_smoothing: float = 0.0,
) -> Tensor:
    """The task's loss, summed and divided by ``denominator`` (defaults to the mean);
    ``label_smoothing`` for the cross-entropy of classification, pair and token tasks.

    A shared denominator lets DDP ranks that see different numbers of labelled
    tokens still add up to exactly the global mean.
    """
    if task in ("classification", "pair"):
        total = F.cross_entropy(
            logits.float(), labels, weight=class_weights, reduction="sum", label_smoothing=label_smoothing
        )
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
        smoothing = label_smoothing if task == "token" else 0.0
        total = F.cross_entropy(
            flat,
            target,
            weight=class_weights,
            ignore_index=IGNORE,
            reduction="sum",
            label_smoothing=smoothing,
        )
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


def class_weight_vector(cfg: FinetuneConfig, labels: np.ndarray, names: list[str]) -> np.ndarray | None:
    """The cross-entropy's class weights, ``(C,)`` float32: ``"balanced"`` is n / (C · count)."""
    if cfg.class_weights is None:
        return None
    k = len(names)
    if cfg.class_weights == "balanced":
        flat = labels[labels >= 0] if labels.ndim > 1 else labels
        counts = np.bincount(flat.reshape(-1), minlength=k).astype(np.float64)
        return (flat.size / (k * np.maximum(counts, 1))).astype(np.float32)
    if isinstance(cfg.class_weights, dict):
        unknown = sorted(set(cfg.class_weights) - set(names))
        if unknown:
            raise ValueError(f"class_weights names labels that are not in the data: {unknown}")
        return np.array([float(cfg.class_weights.get(n, 1.0)) for n in names], dtype=np.float32)
    raise ValueError(f"class_weights must be None, 'balanced' or a dict, not {cfg.class_weights!r}")
