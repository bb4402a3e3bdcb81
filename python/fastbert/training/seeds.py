"""``finetune(..., seeds=[0, 1, 2])``: the same run under several seeds, and the spread of its dev metrics.

Fine-tuning BERT on small data swings by several points from seed to seed (Dodge et al., 2020,
*Fine-Tuning Pretrained Language Models: Weight Initializations, Data Orders, and Early
Stopping*); one run's score says little without its spread. Every run differs only in
``seed`` (initialisation of the head, batch order, dropout); the dev split, when taken from the
training data, stays that of the config's ``seed`` (``split_seed``), so every run is scored on
the same dev examples and a run here equals ``finetune(..., seed=s, split_seed=<config seed>)``.

The model returned is the run with the best dev selection metric (the earliest seed on ties),
and ``model.seed_summary`` holds the spread. Its dev score is the best of several draws, so it
is optimistic: report the mean ± std, not the returned model's score.
"""

from __future__ import annotations

import logging
import math
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, Protocol, TypeVar

import numpy as np
import torch

from fastbert.config import FinetuneConfig, improves
from fastbert.conversions import is_number

__all__ = ["SeedRun", "run_seeds", "seed_everything", "summarize"]

log = logging.getLogger("fastbert")


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and PyTorch (which seeds fastbert's dropout); optionally deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        # cuBLAS needs this to be deterministic; harmless on the CPU.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)


class SeedRun(Protocol):
    """What `run_seeds` reads and sets on a trained model (`fastbert.FineTunedModel` is one)."""

    metrics: dict[str, Any]
    seed_summary: dict[str, Any] | None


Run = TypeVar("Run", bound=SeedRun)


def run_seeds(train_one: Callable[[FinetuneConfig], Run], cfg: FinetuneConfig, seeds: Sequence[int]) -> Run:
    """Train with ``cfg`` once per seed; return the best run with ``seed_summary`` set.

    ``train_one(config)`` trains one model (`fastbert.finetune` with its data bound). Only the
    best model so far is kept in memory.
    """
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("seeds must name at least one seed")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct, got {seeds}")
    metric, higher = cfg.resolved_metric()
    split_seed = cfg.split_seed if cfg.split_seed is not None else cfg.seed
    runs: list[dict[str, Any]] = []
    best: Run | None = None
    best_seed, best_score = seeds[0], math.nan
    for seed in seeds:
        ft = train_one(replace(cfg, seed=seed, split_seed=split_seed))
        runs.append(ft.metrics)
        score = float(ft.metrics.get(metric, math.nan))
        log.info("seed %d: %s %.4f", seed, metric, score)
        if best is None or improves(score, best_score, higher):
            best, best_seed, best_score = ft, seed, score
    assert best is not None
    best.seed_summary = {
        "seeds": seeds,
        "selected_by": metric,
        "returned_seed": best_seed,
        "metrics": summarize(runs),
    }
    return best


def summarize(runs: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``{metric: {"mean", "std", "values"}}`` for every number that every run reports.

    ``std`` is the sample standard deviation (``ddof=1``: the seeds are a sample of all seeds);
    NaN for a single run. Nested results (per-class tables, window-level metrics) are left out.
    """
    if not runs:
        return {}
    names = [k for k, v in runs[0].items() if is_number(v) and all(is_number(r.get(k)) for r in runs)]
    out = {}
    for name in names:
        values = [float(r[name]) for r in runs]
        out[name] = {
            "mean": float(np.mean(values)),
            "std": float(np.std(values, ddof=1)) if len(values) > 1 else math.nan,
            "values": values,
        }
    return out
