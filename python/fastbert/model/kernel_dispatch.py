"""Where the Triton kernels take over from the PyTorch paths of the model.

Two places, both switched per model instance so that a reference model and a fast
one can live side by side (the convergence test trains both):

- attention: the encoder's ``attention_fn`` gets :func:`fastbert.kernels.varlen_attention`,
  which runs on the packed ``(tokens, heads, head_dim)`` layout the model already uses,
  with attention-probability dropout drawn inside the kernel (counter-based Philox);
- LoRA: every :class:`fastbert.model.lora.LoRALinear` sets ``fused = True``, and while its
  adapter dropout is active its forward calls :func:`fastbert.kernels.lora_linear`
  (the frozen layer on cuBLAS, the adapter in Triton through a counter-based dropout
  mask, :mod:`fastbert.kernels.lora_dropout`). Without dropout (evaluation,
  ``lora_dropout = 0``) the layer folds the adapter into the weight on any device
  (:mod:`fastbert.kernels.lora_merged`), kernels on or off.

`kernels_supported` decides whether a device gets them: CUDA with Triton installed.
On the CPU the model keeps the PyTorch path; Triton's interpreter
(``TRITON_INTERPRET=1``) can still run them there, but only when a caller enables them
explicitly (the tests do), never by default: it is orders of magnitude slower.
"""

from __future__ import annotations

import importlib.util
import logging

import torch

from fastbert.model.heads import Head
from fastbert.model.lora import LoRALinear

__all__ = ["disable_kernels", "enable_kernels", "kernels_supported"]

log = logging.getLogger("fastbert")

#: The largest head size the attention kernel takes (``MAX_HEAD_DIM`` of `fastbert.kernels.attention`,
#: not imported from there because that imports Triton): any size up to it works, padded inside
#: the kernel to a power of two.
MAX_HEAD_DIM = 128


def kernels_supported(device: torch.device) -> bool:
    """True when ``device`` is a CUDA device and Triton can be imported."""
    return device.type == "cuda" and importlib.util.find_spec("triton") is not None


def enable_kernels(net: Head) -> list[str]:
    """Route ``net``'s attention and LoRA layers through the Triton kernels.

    ``net`` is a head from `fastbert.model.heads`. Returns what was switched ("attention",
    "lora"); attention stays on PyTorch (and is not listed) when the head size is larger
    than the kernel takes.
    """
    from fastbert.kernels import varlen_attention

    switched = []
    encoder = net.encoder
    head_dim = encoder.config.hidden_size // encoder.config.num_attention_heads
    if not net.family.kernel_attention:
        log.info(
            "attention kernel skipped: %s's attention is not plain dot-product attention", net.family.name
        )
    elif head_dim <= MAX_HEAD_DIM:
        encoder.attention_fn = varlen_attention
        switched.append("attention")
    else:
        log.info("attention kernel skipped: head size %d is above the kernel's %d", head_dim, MAX_HEAD_DIM)
    adapters = [m for m in net.modules() if isinstance(m, LoRALinear)]
    for m in adapters:
        m.fused = True
    if adapters:
        switched.append("lora")
    return switched


def disable_kernels(net: Head) -> None:
    """Back to the PyTorch reference paths."""
    net.encoder.attention_fn = None
    for m in net.modules():
        if isinstance(m, LoRALinear):
            m.fused = False
