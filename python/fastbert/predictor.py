"""`FineTunedModel`: a trained model that predicts, evaluates and saves; `load`, `predict`, `evaluate`.

A `FineTunedModel` is what `fastbert.finetune` returns and `fastbert.load` reads back from a
saved folder (`fastbert.io`). Every prediction featurizes its input once (`fastbert.features`),
runs the model over it and merges windows back into texts (`fastbert.features.inference`);
evaluation scores that one pass (`fastbert.evaluation`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fastbert.config import FinetuneConfig, Task
from fastbert.data.examples import Examples, load_examples
from fastbert.data.labels import label_values
from fastbert.evaluation.mlm import mlm_eval_loss
from fastbert.evaluation.posthoc import abstain_cut
from fastbert.evaluation.predictions import EvalPredictions, eval_predictions
from fastbert.evaluation.scoring import score_outputs
from fastbert.evaluation.slices import evaluation_slices
from fastbert.evaluation.thresholds import decide
from fastbert.features.featurize import featurize, text_lengths
from fastbert.features.inference import DocumentOutputs, predict_documents, word_rows
from fastbert.io import SavedModel, load_model, save_model
from fastbert.model.heads import Head
from fastbert.text.align import token_to_word_predictions
from fastbert.text.tokenizer import Tokenizer
from fastbert.training.loop import RUN_RECORDS, History
from fastbert.training.masking import mlm_spec

__all__ = ["Evaluation", "FineTunedModel", "evaluate", "load", "predict"]


@dataclass
class Evaluation:
    """One pass of a model over labelled examples: its metrics, and the predictions they came from
    (``None`` for an MLM model, whose metric is a loss)."""

    metrics: dict[str, Any]
    predictions: EvalPredictions | None


class FineTunedModel:
    """A trained encoder + head with its tokenizer: predict, evaluate, save."""

    def __init__(
        self,
        model: Head,
        tokenizer: Tokenizer,
        cfg: FinetuneConfig,
        label_names: list[str] | None,
        *,
        source_dir: Path,
        thresholds: np.ndarray | None = None,
        history: History | None = None,
        metrics: dict[str, Any] | None = None,
        data_info: dict[str, Any] | None = None,
        temperature: float = 1.0,
        eval_predictions: EvalPredictions | None = None,
        seed_summary: dict[str, Any] | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.config = cfg
        self.label_names = label_names
        self.source_dir = source_dir
        #: Decision thresholds tuned on dev (`fastbert.evaluation.thresholds`): ``(1,)`` on
        #: P(label_names[1]) for binary tasks, ``(C,)`` per label for multilabel; ``None``: argmax / 0.5.
        self.thresholds = thresholds
        #: Divides the logits in `predict_proba` (temperature scaling fitted on dev; 1: none).
        self.temperature = temperature
        #: The dev predictions the report and abstention thresholds are computed from.
        self.eval_predictions = eval_predictions
        #: ``finetune(seeds=[...])``: the spread of the dev metrics over the seeds (`fastbert.training.seeds`).
        self.seed_summary = seed_summary
        self.history = history
        self.metrics = metrics or {}
        self.data_info = data_info or {}
        self.device = next(model.parameters()).device

    @classmethod
    def from_saved(cls, saved: SavedModel) -> FineTunedModel:
        """The model of a folder read by `fastbert.io.load_model`."""
        return cls(
            saved.model,
            saved.tokenizer,
            saved.config,
            saved.label_names,
            source_dir=saved.source_dir,
            thresholds=saved.thresholds,
            history=saved.history,
            metrics=saved.metrics,
            data_info=saved.data_info,
            temperature=saved.temperature,
            eval_predictions=saved.eval_predictions,
            seed_summary=saved.seed_summary,
        )

    @property
    def task(self) -> Task:
        return self.config.task

    # -- prediction ------------------------------------------------------------
    def _examples(self, texts: Any, pairs: Any = None) -> Examples:
        if isinstance(texts, str):
            raise TypeError("pass a list of texts, not a single str")
        texts = list(texts)
        if self.task == "token" and texts and isinstance(texts[0], str):
            raise TypeError("token models predict on pre-split words: pass a list of word lists")
        return Examples(
            texts=texts,
            pairs=list(pairs) if pairs is not None else None,
            labels=None,
            label_names=self.label_names,
            source="<predict>",
            rows=np.arange(1, len(texts) + 1),
        )

    def names_description(self) -> str | None:
        """``"the model's labels: neg, pos"``, for messages about data scored against them."""
        if not self.label_names:
            return None
        shown = ", ".join(self.label_names[:5]) + (", ..." if len(self.label_names) > 5 else "")
        return f"the model's labels: {shown}"

    def _outputs(self, ex: Examples, batch_size: int) -> DocumentOutputs:
        """The model over ``ex``, featurized once; one output row per text (windows merged)."""
        if not len(ex):  # no text: the shapes of an empty answer, without tokenizing or running
            classes = 1 if self.task == "regression" else len(self.label_names or [])
            if self.task == "token":
                return DocumentOutputs(np.zeros((0, 0, classes), np.float32), np.zeros((0, 0), np.int64))
            return DocumentOutputs(np.zeros((0, classes), dtype=np.float32))
        feats = featurize(self.tokenizer, ex, self.config)
        return predict_documents(self.model, feats, self.config, batch_size, self.device)

    def logits(
        self, texts: Sequence[Any], pairs: Sequence[str] | None = None, batch_size: int = 64
    ) -> np.ndarray:
        """Logits per text, (n, C); token tasks (n, L, C) per token. Under a ``chunk_*`` long-text
        policy the windows are merged (`fastbert.features.inference`): token columns are then the
        text's own tokens, special tokens excluded, and ``chunk_vote`` gives log vote shares."""
        return self._outputs(self._examples(texts, pairs), batch_size).logits

    def predict_proba(
        self,
        texts: Sequence[Any],
        pairs: Sequence[str] | None = None,
        batch_size: int = 64,
        *,
        calibrated: bool = True,
    ) -> Any:
        """Class probabilities: (n, C) (softmax; sigmoid for multilabel). Token models: a list of
        (words, C) arrays per sentence. Regression has no probabilities.

        ``calibrated``: divide the logits by the temperature fitted on dev (``self.temperature``);
        ``False`` gives the raw model probabilities."""
        if self.task == "regression":
            raise ValueError("a regression model has no probabilities; use predict()")
        out = self._outputs(self._examples(texts, pairs), batch_size)
        return self._probabilities(out, [len(w) for w in texts], calibrated)

    def _probabilities(self, out: DocumentOutputs, word_counts: list[int], calibrated: bool) -> Any:
        logits = torch.from_numpy(out.logits)
        if calibrated:
            logits = logits / self.temperature
        if self.task == "multilabel":
            return torch.sigmoid(logits).numpy()
        probs = torch.softmax(logits, -1).numpy()
        if self.task == "token":
            # Each word's distribution is its first sub-token's; NaN for words truncated away.
            assert out.word_ids is not None
            return word_rows(probs, out.word_ids, word_counts)
        return probs

    def predict(
        self,
        texts: Sequence[Any],
        pairs: Sequence[str] | None = None,
        batch_size: int = 64,
        *,
        abstain: dict[str, float] | None = None,
    ) -> list[Any]:
        """Labels (classification), lists of labels (multilabel), floats (regression), or
        per-word tag lists (token; ``texts`` = word lists). Labels that were integers in the
        training data come back as ints (`fastbert.data.labels.label_values`), others as names.

        Decisions use the dev-tuned ``thresholds`` on calibrated probabilities. ``abstain``
        (classification and pair): ``{"coverage": c}`` or ``{"accuracy": a}`` answers only
        when the predicted class's calibrated probability clears the dev threshold for that
        target (`fastbert.evaluation.selective`); an abstained item is ``None`` in the returned list."""
        if self.task == "mlm":
            raise ValueError("an MLM model is an encoder to fine-tune further, not a predictor")
        if abstain is not None and self.task not in ("classification", "pair"):
            raise ValueError(f"abstain is for classification and pair models, not {self.task!r}")
        names = self.label_names or []
        out = self._outputs(self._examples(texts, pairs), batch_size)
        if self.task == "regression":
            return [float(v) for v in out.logits[:, 0]]
        if self.task == "token":
            assert out.word_ids is not None
            words = token_to_word_predictions(out.word_ids, out.logits, "first")
            outside = names.index("O") if "O" in names else 0
            return [
                [names[int(k)] if k >= 0 else names[outside] for k in words[i, : len(w)]]
                for i, w in enumerate(texts)
            ]
        probs = self._probabilities(out, [], calibrated=True)
        chosen = decide(self.task, probs, self.thresholds)
        values = label_values(names)  # integer labels come back as ints
        if self.task == "multilabel":
            return [[values[j] for j in np.flatnonzero(row)] for row in chosen]
        labels: list[Any] = [values[int(k)] for k in chosen]
        if abstain is not None:
            cut = abstain_cut(self.eval_predictions, self.temperature, self.thresholds, abstain)
            confident = probs[np.arange(len(labels)), chosen] >= cut
            labels = [lab if ok else None for lab, ok in zip(labels, confident, strict=True)]
        return labels

    # -- evaluation ------------------------------------------------------------
    def evaluate(
        self, data: Any, batch_size: int = 64, *, slice_by: Any = None, **columns: Any
    ) -> dict[str, Any]:
        """Metrics on labelled ``data`` (any input `finetune` accepts).

        ``slice_by``: a column of ``data`` (or one value per example); the result then has
        ``slices``, the metrics per value and per length bucket (`fastbert.evaluation.slices`)."""
        ex = load_examples(
            data,
            self.config.task,
            label_names=self.label_names,
            split="eval",
            numbered_labels=False,
            names_from=self.names_description(),
            text_column=columns.get("text_column", self.config.text_column),
            text_pair_column=columns.get("text_pair_column", self.config.text_pair_column),
            label_column=columns.get("label_column", self.config.label_column),
        )
        evaluation = self.evaluate_examples(ex, batch_size)
        result = evaluation.metrics
        if slice_by is not None:
            if evaluation.predictions is None:
                raise ValueError("an MLM model's loss has no slices")
            result["slices"] = evaluation_slices(
                evaluation.predictions, data, slice_by, self.temperature, self.thresholds
            )
        return result

    def evaluate_examples(self, ex: Examples, batch_size: int = 64) -> Evaluation:
        """One pass over loaded examples: the metrics `evaluate` reports and the predictions
        they were scored from (what the report, slices and abstention read)."""
        feats = featurize(self.tokenizer, ex, self.config)
        if self.task == "mlm":
            spec = mlm_spec(self.tokenizer, self.config)
            return Evaluation(
                mlm_eval_loss(self.model, feats, self.config, spec, batch_size, self.device), None
            )
        out = predict_documents(self.model, feats, self.config, batch_size, self.device)
        lengths = text_lengths(self.tokenizer, ex.texts, ex.pairs, split_into_words=self.task == "token")
        preds = eval_predictions(self.task, self.label_names, ex.labels, out, lengths)
        metrics = score_outputs(self.config, ex, feats, out, preds, self.temperature, self.thresholds)
        return Evaluation(metrics, preds)

    # -- files -----------------------------------------------------------------
    def save(self, directory: str | Path, *, overwrite: bool = False) -> Path:
        """Write a Hugging Face folder (`fastbert.io`), whole: a replaced folder is swapped out in
        one step. A run's checkpoints and logs in it are kept (`fastbert.training.loop.RUN_RECORDS`)."""
        return save_model(self._saved(), Path(directory), overwrite=overwrite, keep=RUN_RECORDS)

    def _saved(self) -> SavedModel:
        return SavedModel(
            model=self.model,
            tokenizer=self.tokenizer,
            config=self.config,
            label_names=self.label_names,
            source_dir=self.source_dir,
            thresholds=self.thresholds,
            temperature=self.temperature,
            metrics=self.metrics,
            data_info=self.data_info,
            history=self.history,
            eval_predictions=self.eval_predictions,
            seed_summary=self.seed_summary,
        )

    def __repr__(self) -> str:
        n = len(self.label_names) if self.label_names else 0
        return f"FineTunedModel(task={self.task!r}, labels={n}, device={self.device})"


# ----------------------------------------------------------------------------- load / predict / evaluate
def load(directory: str | Path, device: str = "auto") -> FineTunedModel:
    """Load a folder written by `FineTunedModel.save`."""
    return FineTunedModel.from_saved(load_model(Path(directory), device=device))


def predict(model_or_dir: FineTunedModel | str | Path, texts: Sequence[Any], **kwargs: Any) -> list[Any]:
    """``load(dir).predict(texts)``, or ``model.predict(texts)``."""
    ft = model_or_dir if isinstance(model_or_dir, FineTunedModel) else load(model_or_dir)
    return ft.predict(texts, **kwargs)


def evaluate(model_or_dir: FineTunedModel | str | Path, data: Any, **kwargs: Any) -> dict[str, Any]:
    """``load(dir).evaluate(data)``, or ``model.evaluate(data)``: metrics on labelled data."""
    ft = model_or_dir if isinstance(model_or_dir, FineTunedModel) else load(model_or_dir)
    return ft.evaluate(data, **kwargs)
