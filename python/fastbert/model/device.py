"""Where a model runs and in which precision: the device name rule and the autocast rule."""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

__all__ = ["RunPrecision", "autocast_for", "cpu_bf16_feature", "resolve_device", "resolve_precision"]

#: CPU flags (``/proc/cpuinfo``) with bf16 arithmetic in hardware, best first.
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


def resolve_device(name: str) -> torch.device:
    """``auto``: the first CUDA device when there is one, else the CPU; any other name as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def cpu_bf16_feature(cpuinfo: str | None = None) -> str | None:
    """The flag that gives this CPU native bf16 (``amx_bf16``, ``avx512_bf16``), or ``None``.

    Read from ``/proc/cpuinfo`` (``cpuinfo``: its text, for tests); where there is none (macOS,
    Windows), oneDNN's own check answers, naming no flag."""
    if cpuinfo is None:
        return _detected_cpu_bf16()
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
    return next((f for f in BF16_CPU_FLAGS if f in flags), None)


@functools.cache
def _detected_cpu_bf16() -> str | None:
    try:
        return cpu_bf16_feature(Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace"))
    except OSError:
        supported = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
        return "bf16 (oneDNN)" if supported is not None and supported() else None


@dataclass(frozen=True)
class RunPrecision:
    """The precision a run actually uses (``fp32``, ``bf16`` or ``fp16``), and why, in words."""

    dtype: str
    reason: str

    @property
    def scaled(self) -> bool:
        """fp16 needs its loss scaled (``torch.amp.GradScaler``): its small gradients underflow."""
        return self.dtype == "fp16"


def resolve_precision(device: torch.device, requested: str) -> RunPrecision:
    """What ``precision=requested`` runs as on ``device``.

    - ``fp32``: fp32.
    - CUDA: ``auto`` and ``bf16`` are bf16 autocast where the GPU has bf16, else fp32;
      ``fp16`` is fp16 autocast with a gradient scaler.
    - CPU: ``auto`` is fp32 (bf16 would change every CPU result for a speed-up we have not
      measured); ``bf16`` is bf16 autocast where the CPU has native bf16 (`cpu_bf16_feature`),
      else fp32; ``fp16`` is fp32 (CPU autocast's fp16 is slow and has no scaler here).
    """
    if requested == "fp32":
        return RunPrecision("fp32", "fp32 as asked")
    if device.type == "cuda":
        if requested == "fp16":
            return RunPrecision("fp16", "fp16 autocast with a gradient scaler, as asked")
        if torch.cuda.is_bf16_supported():
            return RunPrecision("bf16", f"bf16 autocast ({requested})")
        return RunPrecision("fp32", f"fp32: {requested} asked, but this GPU has no bf16")
    if requested == "bf16":
        feature = cpu_bf16_feature()
        if feature:
            return RunPrecision("bf16", f"bf16 autocast: the CPU has native bf16 ({feature})")
        return RunPrecision(
            "fp32", "fp32: bf16 asked, but this CPU has no native bf16 (avx512_bf16 or amx_bf16)"
        )
    if requested == "fp16":
        return RunPrecision("fp32", "fp32: fp16 asked, which runs on CUDA only")
    return RunPrecision("fp32", f"fp32 ({requested} on the {device.type.upper()})")


def autocast_for(
    device: torch.device, precision: RunPrecision | str
) -> contextlib.AbstractContextManager[Any]:
    """The autocast context of ``precision`` (resolved by `resolve_precision` when a name)."""
    run = precision if isinstance(precision, RunPrecision) else resolve_precision(device, precision)
    if run.dtype == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if run.dtype == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)
