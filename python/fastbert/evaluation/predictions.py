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

from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from fastbert.evaluation import metrics as metrics_mod
from fastbert.evaluation.calibration import Kind
from fastbert.evaluation.thresholds import decide
from fastbert.features.inference import DocumentOutputs, word_rows

__all__ = ["FILENAME", "EvalPredictions", "eval_predictions"]

#: The file name inside a saved model folder.
FILENAME = "eval_predictions.npz"
_GROUP = "group:"


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
            spans = [np.arange(s, e, dtype=np.int64) for s, e in zip(starts, ends, strict=True)]
            rows = np.concatenate(spans) if spans else np.zeros(0, dtype=np.int64)
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

    def calibration_inputs(self) -> tuple[np.ndarray, np.ndarray, Kind] | None:
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
        """The task's metrics (`fastbert.evaluation.metrics`): the one scoring path of evaluation,
        during training, after it and in the report."""
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
        # Any: numpy's stub would match a key named like savez's own keywords against them.
        arrays: dict[str, Any] = {
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
        np.savez_compressed(file, **arrays)

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


def eval_predictions(
    task: str,
    label_names: list[str] | None,
    labels: Any,
    outputs: DocumentOutputs,
    lengths: np.ndarray,
) -> EvalPredictions:
    """A model's outputs on labelled examples (one per text, `fastbert.features.predict_documents`)
    as `EvalPredictions`: what ``predict`` would answer, before calibration.

    ``labels`` are the examples' (`fastbert.data.Examples.labels`); ``lengths`` their token
    counts before truncation (`fastbert.features.featurize.text_lengths`). Token tasks keep
    per-word log-probabilities of each word's first sub-token in place of logits: a softmax, with
    or without a temperature, is unchanged by the per-row shift between the two.
    """
    if task == "mlm":
        raise ValueError("an MLM model has no predictions to score; see FineTunedModel.evaluate")
    if labels is None:
        raise ValueError("the examples have no labels to score against")
    if task == "token":
        word_labels = [np.asarray(lab, dtype=np.int64) for lab in labels]
        counts = np.array([len(lab) for lab in word_labels], dtype=np.int64)
        assert outputs.word_ids is not None
        probs = torch.softmax(torch.from_numpy(outputs.logits), -1).numpy()
        words = word_rows(probs, outputs.word_ids, counts)
        c = len(label_names or [])
        flat = np.concatenate(words).astype(np.float64) if words else np.zeros((0, c))
        # Floored at float32's smallest normal number: an underflowed 0 would be an infinite logit.
        log_probs = np.log(np.maximum(flat, np.finfo(np.float32).tiny))  # nan rows stay nan
        return EvalPredictions(
            task,
            label_names,
            log_probs,
            np.concatenate(word_labels) if word_labels else np.zeros(0, dtype=np.int64),
            lengths,
            np.concatenate(([0], np.cumsum(counts))).astype(np.int64),
        )
    logits = outputs.logits
    if task == "regression":
        return EvalPredictions(task, None, logits[:, 0], np.asarray(labels, dtype=np.float32), lengths)
    return EvalPredictions(task, label_names, logits, np.asarray(labels), lengths)
