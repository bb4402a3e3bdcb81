"""`EvalPredictions`: a model's raw outputs on one labelled set, and every score computed from them.

One forward pass over the dev (or any labelled) set is kept as model outputs *before*
calibration, with the labels and the token lengths. From it come the task metrics (under any
temperature and decision thresholds), the calibration and selective-prediction curves, slices
and bootstrap intervals (`fastbert.report`), without running the model again. `FineTunedModel.save`
writes it as ``eval_predictions.npz`` so that ``fastbert report DIR`` rebuilds the report from
the folder alone.

Shapes, ``n`` examples, ``C`` labels:

- ``classification``/``pair``: ``outputs (n, C)`` logits, ``labels (n,)`` class ids.
- ``multilabel``: ``outputs (n, C)`` logits, ``labels (n, C)`` 0/1.
- ``regression``: ``outputs (n,)`` predictions, ``labels (n,)`` targets.
- ``token``: one row per *word*, all sentences concatenated: ``outputs (words, C)`` the
  log-probabilities of each word's first sub-token, i.e. its logits up to a shift per row
  (``nan`` for words cut off by truncation: they are predicted
  outside any entity, as `FineTunedModel.predict` does), ``labels (words,)`` tag ids;
  ``word_offsets (n + 1,)`` marks sentence ``i`` as rows ``word_offsets[i]:word_offsets[i + 1]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from fastbert import metrics as metrics_mod
from fastbert.thresholds import decide

if TYPE_CHECKING:
    from fastbert.api import FineTunedModel
    from fastbert.data import Examples

__all__ = ["FILENAME", "EvalPredictions", "collect_predictions", "text_lengths"]

#: The file name inside a saved model folder.
FILENAME = "eval_predictions.npz"
_GROUP = "group:"
#: Texts tokenized per call when measuring lengths.
_LENGTH_CHUNK = 256


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


@dataclass
class EvalPredictions:
    """Raw model outputs on a labelled set (see the module docstring for the shapes)."""

    task: str
    label_names: list[str] | None
    outputs: np.ndarray
    labels: np.ndarray
    #: ``(n,)`` tokens per example before truncation, special tokens included.
    lengths: np.ndarray
    #: Token tasks: ``(n + 1,)`` word row offsets per sentence; ``None`` otherwise.
    word_offsets: np.ndarray | None = None
    #: Slice columns: name → ``(n,)`` values as strings (`fastbert.slices`).
    groups: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.lengths.shape[0])

    @property
    def names(self) -> list[str]:
        return list(self.label_names or [])

    # -- selection ---------------------------------------------------------------
    def subset(self, indices: Any) -> EvalPredictions:
        """The examples (sentences, for token tasks) at ``indices``, in that order."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        offsets = None
        if self.word_offsets is not None:
            starts, ends = self.word_offsets[idx], self.word_offsets[idx + 1]
            rows = np.concatenate([np.arange(s, e) for s, e in zip(starts, ends, strict=True)] or [[]])
            rows = rows.astype(np.int64)
            offsets = np.concatenate(([0], np.cumsum(ends - starts))).astype(np.int64)
            outputs, labels = self.outputs[rows], self.labels[rows]
        else:
            outputs, labels = self.outputs[idx], self.labels[idx]
        return EvalPredictions(
            self.task,
            self.label_names,
            outputs,
            labels,
            self.lengths[idx],
            offsets,
            {k: v[idx] for k, v in self.groups.items()},
        )

    # -- probabilities and decisions ---------------------------------------------
    def probabilities(self, temperature: float = 1.0) -> np.ndarray:
        """Softmax (sigmoid for multilabel) of ``outputs / temperature``; ``nan`` rows stay ``nan``."""
        if self.task == "regression":
            raise ValueError("a regression model has no probabilities")
        z = self.outputs.astype(np.float64) / float(temperature)
        if self.task == "multilabel":
            return 1.0 / (1.0 + np.exp(-z))
        return _softmax(z)

    def decisions(self, temperature: float = 1.0, thresholds: np.ndarray | None = None) -> np.ndarray:
        """Predicted class ids ``(n,)`` / words ``(words,)``, or an ``(n, C)`` bool matrix for multilabel.

        A token row with ``nan`` outputs (a word truncated away) is predicted ``O`` (else label 0).
        """
        probs = self.probabilities(temperature)
        if self.task == "token":
            names = self.names
            outside = names.index("O") if "O" in names else 0
            missing = np.isnan(probs).any(axis=-1)
            return np.where(missing, outside, np.nan_to_num(probs, nan=-1.0).argmax(-1))
        return decide(self.task, probs, thresholds)

    def confidence_and_correct(
        self, temperature: float = 1.0, thresholds: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Single-label tasks: the probability of each predicted class, and whether it is right.

        These are what selective prediction ranks and thresholds (`fastbert.selective`).
        """
        if self.task not in ("classification", "pair"):
            raise ValueError(f"selective prediction is for classification and pair models, not {self.task!r}")
        probs = self.probabilities(temperature)
        chosen = decide(self.task, probs, thresholds)
        return probs[np.arange(chosen.size), chosen], chosen == self.labels

    def calibration_inputs(self) -> tuple[np.ndarray, np.ndarray, str] | None:
        """(logits, labels, kind) that temperature scaling fits and calibration is measured on;
        ``None`` for regression. Token tasks use the words the model saw (truncated words have
        no logits)."""
        if self.task == "regression":
            return None
        if self.task == "multilabel":
            return self.outputs, self.labels, "sigmoid"
        if self.task == "token":
            seen = ~np.isnan(self.outputs).any(axis=-1)
            return self.outputs[seen], self.labels[seen], "softmax"
        return self.outputs, self.labels, "softmax"

    def tags(self, temperature: float = 1.0) -> tuple[list[list[str]], list[list[str]]]:
        """Token tasks: (true tags, predicted tags), one list per sentence."""
        names = self.names
        pred = self.decisions(temperature)
        assert self.word_offsets is not None
        bounds = zip(self.word_offsets[:-1], self.word_offsets[1:], strict=True)
        spans = [(int(s), int(e)) for s, e in bounds]
        true_tags = [[names[int(k)] for k in self.labels[s:e]] for s, e in spans]
        pred_tags = [[names[int(k)] for k in pred[s:e]] for s, e in spans]
        return true_tags, pred_tags

    def metrics(self, temperature: float = 1.0, thresholds: np.ndarray | None = None) -> dict[str, Any]:
        """The task's metrics (`fastbert.metrics`), as `FineTunedModel.evaluate` reports them."""
        if self.task == "regression":
            return metrics_mod.regression_metrics(
                self.labels.astype(np.float64), self.outputs.astype(np.float64)
            )
        if self.task == "token":
            return metrics_mod.entity_scores(*self.tags(temperature))
        chosen = self.decisions(temperature, thresholds)
        if self.task == "multilabel":
            return metrics_mod.multilabel_metrics(self.labels > 0.5, chosen, self.names)
        return metrics_mod.classification_metrics(self.labels, chosen, self.names)

    # -- files --------------------------------------------------------------------
    def save(self, file: str | Path | IO[bytes]) -> None:
        """Write an ``.npz`` (compressed, no pickled objects) to a path or an open binary file."""
        arrays: dict[str, np.ndarray] = {
            "task": np.array(self.task),
            "label_names": np.array(self.names, dtype=str),
            "outputs": self.outputs,
            "labels": self.labels,
            "lengths": self.lengths,
        }
        if self.word_offsets is not None:
            arrays["word_offsets"] = self.word_offsets
        for name, values in self.groups.items():
            arrays[_GROUP + name] = np.asarray(values, dtype=str)
        np.savez_compressed(file, **arrays)  # type: ignore[arg-type]

    @classmethod
    def load(cls, path: str | Path) -> EvalPredictions:
        with np.load(path, allow_pickle=False) as z:
            task = str(z["task"])
            names = [str(s) for s in z["label_names"]]
            return cls(
                task=task,
                label_names=names if task not in ("regression", "mlm") else None,
                outputs=z["outputs"],
                labels=z["labels"],
                lengths=z["lengths"],
                word_offsets=z["word_offsets"] if "word_offsets" in z.files else None,
                groups={k[len(_GROUP) :]: z[k] for k in z.files if k.startswith(_GROUP)},
            )


def text_lengths(ft: FineTunedModel, texts: Sequence[Any], pairs: Sequence[str] | None) -> np.ndarray:
    """``(n,)`` tokens per example *before* truncation, special tokens included.

    Slicing by this length shows what truncation costs: texts longer than ``max_length`` land in
    the buckets past it. Tokenized in chunks, so that padding stays bounded on long texts.
    """
    split = ft.task == "token"
    out = []
    for start in range(0, len(texts), _LENGTH_CHUNK):
        part = list(texts[start : start + _LENGTH_CHUNK])
        part_pairs = None if pairs is None else list(pairs[start : start + _LENGTH_CHUNK])
        enc = ft.tokenizer(part, part_pairs, padding=True, is_split_into_words=split)
        out.append(enc["attention_mask"].sum(1))
    return np.concatenate(out).astype(np.int64) if out else np.zeros(0, dtype=np.int64)


def collect_predictions(ft: FineTunedModel, ex: Examples, batch_size: int = 64) -> EvalPredictions:
    """Run ``ft`` over the labelled examples ``ex`` and keep its raw outputs.

    Goes through the model's own prediction methods (`FineTunedModel.logits`, and for token
    tasks the uncalibrated per-word `predict_proba`), so it scores exactly what ``predict`` would
    answer. Per-word log-probabilities stand in for token logits: a softmax, with or without a
    temperature, is unchanged by the per-row shift between the two.
    """
    task = ft.task
    if task == "mlm":
        raise ValueError("an MLM model has no predictions to score; see FineTunedModel.evaluate")
    if ex.labels is None:
        raise ValueError("the examples have no labels to score against")
    texts = list(ex.texts)
    lengths = text_lengths(ft, texts, ex.pairs)
    if task == "token":
        words = ft.predict_proba(texts, batch_size=batch_size, calibrated=False)
        labels = [np.asarray(lab, dtype=np.int64) for lab in ex.labels]
        counts = np.array([len(lab) for lab in labels], dtype=np.int64)
        c = len(ft.label_names or [])
        probs = np.concatenate(words).astype(np.float64) if words else np.zeros((0, c))
        # Floored at float32's smallest normal number: an underflowed 0 would be an infinite logit.
        outputs = np.log(np.maximum(probs, np.finfo(np.float32).tiny))  # nan rows stay nan
        return EvalPredictions(
            task,
            ft.label_names,
            outputs,
            np.concatenate(labels) if labels else np.zeros(0, dtype=np.int64),
            lengths,
            np.concatenate(([0], np.cumsum(counts))).astype(np.int64),
        )
    logits = ft.logits(texts, ex.pairs, batch_size)
    if task == "regression":
        return EvalPredictions(task, None, logits[:, 0], np.asarray(ex.labels, dtype=np.float32), lengths)
    return EvalPredictions(task, ft.label_names, logits, np.asarray(ex.labels), lengths)
