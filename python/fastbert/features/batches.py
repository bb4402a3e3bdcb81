"""Batches of `Features` rows as tensors, and a model run over them in prediction's order."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from fastbert.features.arrays import Features
from fastbert.model.device import autocast_for

__all__ = ["eval_batches", "make_batch", "predict_logits"]


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


def eval_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Deterministic batches sorted by length (for prediction); callers restore the order."""
    order = np.argsort(lengths, kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


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
