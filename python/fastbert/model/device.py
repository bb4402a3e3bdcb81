"""Where a model runs and in which precision: the device name rule and the autocast rule."""

from __future__ import annotations

import contextlib
from typing import Any

import torch

__all__ = ["autocast_for", "resolve_device"]


def resolve_device(name: str) -> torch.device:
    """``auto``: the first CUDA device when there is one, else the CPU; any other name as given."""
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
