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
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from fastbert.config import FinetuneConfig

if TYPE_CHECKING:
    from fastbert.api import FineTunedModel

log = logging.getLogger("fastbert")


def run_seeds(
    train_one: Callable[[FinetuneConfig], FineTunedModel], cfg: FinetuneConfig, seeds: Sequence[int]
) -> FineTunedModel:
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
    best: FineTunedModel | None = None
    best_seed, best_score = seeds[0], math.nan
    for seed in seeds:
        ft = train_one(replace(cfg, seed=seed, split_seed=split_seed))
        runs.append(ft.metrics)
        score = float(ft.metrics.get(metric, math.nan))
        log.info("seed %d: %s %.4f", seed, metric, score)
        if best is None or _better(score, best_score, higher):
            best, best_seed, best_score = ft, seed, score
    assert best is not None
    best.seed_summary = {
        "seeds": seeds,
        "selected_by": metric,
        "returned_seed": best_seed,
        "metrics": summarize(runs),
    }
    return best


def _better(score: float, best: float, higher: bool) -> bool:
    if math.isnan(score):
        return False
    if math.isnan(best):
        return True
    return score > best if higher else score < best


def summarize(runs: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``{metric: {"mean", "std", "values"}}`` for every number that every run reports.

    ``std`` is the sample standard deviation (``ddof=1``: the seeds are a sample of all seeds);
    NaN for a single run. Nested results (per-class tables, window-level metrics) are left out.
    """
    if not runs:
        return {}
    names = [k for k, v in runs[0].items() if _is_number(v) and all(_is_number(r.get(k)) for r in runs)]
    out = {}
    for name in names:
        values = [float(r[name]) for r in runs]
        out[name] = {
            "mean": float(np.mean(values)),
            "std": float(np.std(values, ddof=1)) if len(values) > 1 else math.nan,
            "values": values,
        }
    return out


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float | np.number) and not isinstance(v, bool | np.bool_)


def format_seed_summary(summary: dict[str, Any]) -> str:
    """Text for the command line: one ``metric  mean ± std`` line per metric."""
    seeds = ", ".join(str(s) for s in summary["seeds"])
    lines = [
        f"dev metrics over seeds {seeds} (mean ± sample std); the model kept is seed "
        f"{summary['returned_seed']}'s, the best {summary['selected_by']}:"
    ]
    metrics = summary["metrics"]
    width = max((len(k) for k in metrics), default=0)
    for name, s in metrics.items():
        lines.append(f"  {name:<{width}}  {s['mean']:.4f} ± {s['std']:.4f}")
    return "\n".join(lines)
