"""How far predicted probabilities are from observed frequencies, and temperature scaling to close the gap.

- :func:`reliability_bins` / :func:`calibration_errors`: the reliability diagram's bins and the
  expected and maximum calibration errors (ECE, MCE) of Naeini et al. (2015), as Guo et al.
  (2017, "On Calibration of Modern Neural Networks") compute them: ``n_bins`` equal-width bins
  over ``[0, 1]``, each bin ``(lo, hi]``; ECE is the gap ``|accuracy - confidence|`` of each
  bin weighted by its share of the items, MCE the largest gap of a non-empty bin.
- :func:`fit_temperature`: one scalar ``T`` that divides the logits, fitted on dev data by
  minimising the negative log-likelihood (Guo et al., 2017). ``T > 1`` softens an overconfident
  model, ``T < 1`` sharpens an underconfident one; the argmax never changes.
- :func:`negative_log_likelihood`: the quantity it minimises, in numpy, for reports.

What "confidence" and "outcome" are is the caller's choice: for single-label models the
top-label confidence (the largest probability) and whether the argmax is right; for multi-label
models each label's probability and whether the label is present (`fastbert.report`).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

__all__ = [
    "DEFAULT_BINS",
    "calibration_errors",
    "fit_temperature",
    "negative_log_likelihood",
    "reliability_bins",
]

#: Guo et al. (2017) use 15 bins; so do most libraries that report ECE.
DEFAULT_BINS = 15

Kind = Literal["softmax", "sigmoid"]


# ---------------------------------------------------------------- calibration error
def reliability_bins(
    confidence: np.ndarray, outcome: np.ndarray, n_bins: int = DEFAULT_BINS
) -> dict[str, list[float] | list[int]]:
    """Per bin: ``count``, mean ``confidence`` and mean ``outcome`` (accuracy), and the bin ``edges``.

    ``confidence``: ``(n,)`` probabilities in ``[0, 1]``; ``outcome``: ``(n,)`` 0/1 (or bool).
    Bin ``b`` holds ``edges[b] < confidence <= edges[b + 1]`` (a confidence of exactly 0 falls in
    the first bin). An empty bin has count 0 and ``nan`` means.
    """
    conf = np.asarray(confidence, dtype=np.float64).reshape(-1)
    hit = np.asarray(outcome, dtype=np.float64).reshape(-1)
    if conf.shape != hit.shape:
        raise ValueError(f"confidence has {conf.size} values but outcome has {hit.size}")
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, not {n_bins}")
    if conf.size and (np.isnan(conf).any() or conf.min() < 0 or conf.max() > 1):
        raise ValueError("confidence must lie in [0, 1]")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # searchsorted(side="left") finds the first edge >= c, so c lands in (edges[b], edges[b + 1]].
    which = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    count = np.bincount(which, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(which, weights=conf, minlength=n_bins) / count
        mean_hit = np.bincount(which, weights=hit, minlength=n_bins) / count
    return {
        "edges": edges.tolist(),
        "count": count.tolist(),
        "confidence": mean_conf.tolist(),
        "accuracy": mean_hit.tolist(),
    }


def calibration_errors(
    confidence: np.ndarray, outcome: np.ndarray, n_bins: int = DEFAULT_BINS
) -> dict[str, float]:
    """``{"ece": ..., "mce": ...}`` over equal-width bins (both 0 for no items)."""
    bins = reliability_bins(confidence, outcome, n_bins)
    count = np.asarray(bins["count"], dtype=np.float64)
    filled = count > 0
    if not filled.any():
        return {"ece": 0.0, "mce": 0.0}
    gap = np.abs(np.asarray(bins["accuracy"])[filled] - np.asarray(bins["confidence"])[filled])
    return {"ece": float(np.dot(count[filled], gap) / count.sum()), "mce": float(gap.max())}


# ---------------------------------------------------------------- likelihood
def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def negative_log_likelihood(
    logits: np.ndarray, labels: np.ndarray, kind: Kind, temperature: float = 1.0
) -> float:
    """Mean NLL of ``labels`` under ``logits / temperature``.

    ``softmax``: ``logits (n, C)``, ``labels (n,)`` class ids; cross-entropy per item.
    ``sigmoid``: ``logits (n, C)``, ``labels (n, C)`` 0/1; binary cross-entropy per entry.
    """
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    if z.size == 0:
        return float("nan")
    if kind == "softmax":
        y = np.asarray(labels, dtype=np.int64).reshape(-1)
        return float(-_log_softmax(z)[np.arange(y.size), y].mean())
    y = np.asarray(labels, dtype=np.float64)
    # log(1 + exp(-|z|)) + max(z, 0) - y z: the numerically safe BCE with logits.
    return float((np.logaddexp(0.0, -np.abs(z)) + np.maximum(z, 0.0) - y * z).mean())


# ---------------------------------------------------------------- temperature scaling
#: ``log T`` is kept in ``[-LOG_T_LIMIT, LOG_T_LIMIT]``: a dev set that is perfectly separated
#: would otherwise drive ``T`` to 0 (infinitely sharp) and one without signal to infinity.
LOG_T_LIMIT = 5.0


def fit_temperature(logits: np.ndarray, labels: np.ndarray, kind: Kind, max_iter: int = 100) -> float:
    """The ``T > 0`` that minimises :func:`negative_log_likelihood` of ``labels`` under ``logits / T``.

    L-BFGS on ``log T`` (so ``T`` stays positive without a constraint), in float64 on the CPU;
    the NLL is convex in ``1 / T``, so a local minimum is the global one. Returns 1.0 when there
    is nothing to fit (no items) or when the fit would not lower the NLL.
    """
    import torch
    import torch.nn.functional as F

    z = torch.as_tensor(np.asarray(logits, dtype=np.float64))
    if z.numel() == 0:
        return 1.0
    if kind == "softmax":
        y = torch.as_tensor(np.asarray(labels, dtype=np.int64).reshape(-1))

        def loss_at(log_t: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(z / log_t.exp(), y)
    elif kind == "sigmoid":
        yf = torch.as_tensor(np.asarray(labels, dtype=np.float64))

        def loss_at(log_t: torch.Tensor) -> torch.Tensor:
            return F.binary_cross_entropy_with_logits(z / log_t.exp(), yf)
    else:
        raise ValueError(f"kind must be 'softmax' or 'sigmoid', not {kind!r}")

    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = loss_at(log_t.clamp(-LOG_T_LIMIT, LOG_T_LIMIT))
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    fitted = float(log_t.detach().clamp(-LOG_T_LIMIT, LOG_T_LIMIT))
    with torch.no_grad():
        if not loss_at(torch.tensor(fitted, dtype=torch.float64)) < loss_at(
            torch.tensor(0.0, dtype=torch.float64)
        ):
            return 1.0
    return float(np.exp(fitted))
