"""Masked-language-model evaluation: the loss on dev tokens masked the same way at every evaluation."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from fastbert.config import FinetuneConfig
from fastbert.features.arrays import Features
from fastbert.features.batches import eval_batches, make_batch
from fastbert.model.device import autocast_for
from fastbert.training.loss import task_loss
from fastbert.training.masking import mask_tokens

__all__ = ["mlm_eval_loss"]


@torch.no_grad()
def mlm_eval_loss(
    model: nn.Module,
    feats: Features,
    cfg: FinetuneConfig,
    spec: dict[str, Any],
    batch_size: int,
    device: torch.device,
) -> dict[str, Any]:
    """``loss`` (mean over masked tokens), ``perplexity`` and ``masked_tokens`` of ``model`` on
    ``feats``; ``spec`` is `fastbert.training.masking.mlm_spec`'s."""
    model.eval()
    gen = torch.Generator().manual_seed(1234)  # the same masks at every evaluation
    total, count = 0.0, 0
    for idx in eval_batches(feats.lengths, batch_size):
        b = make_batch(feats, idx, torch.device("cpu"))
        inputs, labels = mask_tokens(b, generator=gen, **spec)
        n = int((labels != -100).sum())
        if n == 0:
            continue
        with autocast_for(device, cfg.precision):
            logits = model(inputs.to(device), b["attention_mask"].to(device), b["token_type_ids"].to(device))
        total += float(task_loss("mlm", logits, labels.to(device), None)) * n
        count += n
    loss = total / max(count, 1)
    return {"loss": loss, "perplexity": float(np.exp(min(loss, 50.0))), "masked_tokens": count}
