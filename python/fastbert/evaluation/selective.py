"""Selective prediction: answer only when confident enough, abstain otherwise.

A model that ranks its confident answers first can trade coverage (the share of items it
answers) for risk (the error rate on those). Geifman & El-Yaniv (2017, "Selective
Classification for Deep Neural Networks") summarise the trade by the risk–coverage curve and
the area under it (AURC; lower is better), and pick the confidence threshold on held-out data
that meets a target coverage or a target accuracy.

The curve has one point per distinct confidence value ``τ`` (answer when ``confidence >= τ``):
items with equal confidence are answered or refused together, which is what a threshold can do.
Without ties it is the usual curve with one point per item, and AURC is the mean of the risks.

Thresholds are placed halfway between two adjacent distinct confidences, not on one of them, so
that recomputing a dev item's confidence with float noise (a different batch, another device)
does not move it across the threshold.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["abstain_threshold", "aurc", "parse_abstain", "risk_coverage"]


def _checked(confidence: Any, correct: Any) -> tuple[np.ndarray, np.ndarray]:
    conf = np.asarray(confidence, dtype=np.float64).reshape(-1)
    ok = np.asarray(correct, dtype=bool).reshape(-1)
    if conf.shape != ok.shape:
        raise ValueError(f"confidence has {conf.size} values but correct has {ok.size}")
    if np.isnan(conf).any():
        raise ValueError("confidence holds nan")
    return conf, ok


def risk_coverage(confidence: Any, correct: Any) -> dict[str, np.ndarray]:
    """The risk–coverage curve, from the most confident cut to answering everything.

    Returns ``threshold`` (answer when ``confidence >= threshold``), ``coverage`` and ``risk``
    (error rate of the answered items), one entry per distinct confidence, highest first.
    """
    conf, ok = _checked(confidence, correct)
    n = conf.size
    if n == 0:
        empty = np.zeros(0)
        return {"threshold": empty, "coverage": empty, "risk": empty}
    order = np.argsort(-conf, kind="stable")
    sorted_conf = conf[order]
    errors = np.cumsum(~ok[order])
    # The last item of each run of equal confidences ends a cut.
    ends = np.flatnonzero(np.append(sorted_conf[1:] != sorted_conf[:-1], True))
    answered = ends + 1
    return {
        "threshold": sorted_conf[ends],
        "coverage": answered / n,
        "risk": errors[ends] / answered,
    }


def aurc(confidence: Any, correct: Any) -> dict[str, float]:
    """Area under the risk–coverage curve (``aurc``) and its excess over an oracle ranking (``e_aurc``).

    The area is the step integral ``Σ risk · Δcoverage``. The oracle answers every correct
    item before any wrong one (Geifman et al., 2019, "Bias-Reduced Uncertainty Estimation"); its
    area depends only on the error rate, so ``e_aurc`` isolates the quality of the ranking.
    Both are 0 for no items.
    """
    conf, ok = _checked(confidence, correct)
    n = conf.size
    if n == 0:
        return {"aurc": 0.0, "e_aurc": 0.0}
    curve = risk_coverage(conf, ok)
    widths = np.diff(curve["coverage"], prepend=0.0)
    area = float(np.dot(curve["risk"], widths))
    k = np.arange(1, n + 1)
    oracle = float(np.mean(np.maximum(k - int(ok.sum()), 0) / k))
    return {"aurc": area, "e_aurc": area - oracle}


def parse_abstain(abstain: Any) -> tuple[str, float]:
    """``{"coverage": 0.9}`` or ``{"accuracy": 0.95}`` → ``("coverage", 0.9)``; anything else raises."""
    if not isinstance(abstain, dict) or len(abstain) != 1:
        raise ValueError(f'abstain must be {{"coverage": c}} or {{"accuracy": a}}, not {abstain!r}')
    ((target, value),) = abstain.items()
    if target not in ("coverage", "accuracy"):
        raise ValueError(f'abstain takes "coverage" or "accuracy", not {target!r}')
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ValueError(f"abstain {target} must be a number in (0, 1], not {value!r}")
    return target, float(value)


def abstain_threshold(confidence: Any, correct: Any, abstain: Any) -> float:
    """The confidence threshold, chosen on held-out (dev) items, that meets ``abstain``'s target.

    ``{"coverage": c}``: the highest threshold that still answers at least a share ``c`` of the
    items (ties may make it answer more). ``{"accuracy": a}``: the threshold that answers the
    most items while the answered ones are at least ``a`` accurate; ``inf`` (answer nothing)
    when no cut reaches ``a``. The targets hold on the items given; on new data they hold only
    as far as those items represent it. Answer an item when its ``confidence >= threshold``.
    """
    target, value = parse_abstain(abstain)
    curve = risk_coverage(confidence, correct)
    cuts = curve["threshold"]
    if cuts.size == 0:
        raise ValueError("no held-out items to choose an abstention threshold on")
    if target == "coverage":
        # Float tolerance: coverage 0.9 of 10 items must accept the cut at exactly 9/10.
        meets = curve["coverage"] >= value - 1e-12
    else:
        meets = 1.0 - curve["risk"] >= value - 1e-12
    hits = np.flatnonzero(meets)
    if hits.size == 0:
        return float("inf")
    j = int(hits[0] if target == "coverage" else hits[-1])
    if j + 1 == cuts.size:
        return float("-inf")  # the cut answers everything
    return float((cuts[j] + cuts[j + 1]) / 2)
