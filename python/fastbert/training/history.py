"""`History`: what happened during a training run, saved in checkpoints and ``fastbert.json``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["History"]


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
    #: Of ``train_seconds``, those spent writing checkpoints.
    checkpoint_seconds: float = 0.0
    #: Why the run stopped before its last step (early stopping, a callback), or ``None``.
    stop_reason: str | None = None
    #: The precision that ran (``fp32``, ``bf16``, ``fp16``; `fastbert.model.device.resolve_precision`);
    #: ``None`` in folders saved before it was recorded.
    precision: str | None = None
