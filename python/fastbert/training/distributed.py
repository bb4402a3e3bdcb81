"""DDP set-up: the process group ``torchrun`` describes, and this process's rank in it.

Under DDP ``FinetuneConfig.batch_size`` is the global batch: every rank computes the same batch
plan and takes a contiguous slice of each global batch (`fastbert.training.loop`).
"""

from __future__ import annotations

import os

import torch

__all__ = ["distributed", "init_distributed_from_env"]


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
