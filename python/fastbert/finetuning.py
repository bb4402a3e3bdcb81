"""`fastbert.finetune`: the product's main job, from data to a trained, calibrated `FineTunedModel`.

``finetune`` reads data (`fastbert.data`), checks train/dev leakage, tokenizes everything once in
Rust (`fastbert.features`), builds our encoder with a task head (`fastbert.model`), trains it with
BERT's recipe (`fastbert.training`), evaluating on dev as it goes (`fastbert.evaluation`), and
fits a temperature and decision thresholds on the dev predictions of the checkpoint it keeps.

(This module is not called ``finetune.py``: importing a submodule binds its name on the package,
and ``fastbert.finetune`` must stay the function.)
"""

from __future__ import annotations

import logging
import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from fastbert.atomic_folder import check_writable
from fastbert.config import FinetuneConfig, default_model_dir, improves
from fastbert.data.examples import Examples, data_fingerprint, load_examples
from fastbert.data.leakage import check_leakage
from fastbert.data.splits import stratified_split
from fastbert.evaluation.metrics import scalar_metrics
from fastbert.evaluation.mlm import mlm_eval_loss
from fastbert.evaluation.posthoc import fit_on_dev
from fastbert.evaluation.predictions import EvalPredictions, eval_predictions
from fastbert.evaluation.scoring import score_outputs
from fastbert.features.arrays import Features, WindowFeatures
from fastbert.features.featurize import featurize, text_lengths
from fastbert.features.inference import DocumentOutputs, predict_documents
from fastbert.features.window_pool import WindowMeanPool, slot_features
from fastbert.model.build import apply_strategy, build_model, check_max_length
from fastbert.model.checkpoint import check_model_folder
from fastbert.model.device import resolve_device
from fastbert.model.heads import Head, SequenceClassifier
from fastbert.model.kernel_dispatch import enable_kernels, kernels_supported
from fastbert.predictor import FineTunedModel
from fastbert.text.tokenizer import Tokenizer
from fastbert.training.checkpoint import (
    CHECKPOINTS,
    Checkpoint,
    check_same_data,
    latest_checkpoint,
    load_checkpoint,
    prune,
    resumed_config,
)
from fastbert.training.distributed import init_distributed_from_env
from fastbert.training.loop import RUN_RECORDS, RunFolder, train
from fastbert.training.loss import class_weight_vector
from fastbert.training.masking import mlm_spec
from fastbert.training.sampling import resample_features
from fastbert.training.seeds import run_seeds, seed_everything

__all__ = ["finetune"]

log = logging.getLogger("fastbert")

#: Examples per forward pass when evaluating on dev (prediction's default).
EVAL_BATCH_SIZE = 64


def finetune(
    train_data: Any,
    eval_data: Any = None,
    *,
    eval: Any = None,
    task: str | None = None,
    model: str | Path | None = None,
    config: FinetuneConfig | None = None,
    seeds: Sequence[int] | None = None,
    out: str | Path | None = None,
    resume: str | Path | None = None,
    overwrite: bool = False,
    callbacks: Sequence[Any] = (),
    **options: Any,
) -> FineTunedModel:
    """Fine-tune a BERT-family encoder on ``train_data`` and return the trained model.

    ``train_data``/``eval_data``: a CSV/TSV/JSONL/Parquet/CoNLL path, a DataFrame, a
    ``datasets.Dataset``, a list of dicts/tuples, or loaded `fastbert.data.Examples`. Without
    ``eval_data`` a stratified dev split is taken; ``eval=`` is the same argument by keyword
    (``finetune(train, eval=dev)``). ``options`` are `FinetuneConfig` fields (``epochs=2,
    lr=3e-5, ...``). ``seeds``: train once per seed and return the run with the best dev
    selection metric, its ``seed_summary`` holding every metric's mean ± std over the seeds
    (`fastbert.training.seeds`).

    ``callbacks``: objects with ``on_step_end``, ``on_evaluate``, ``on_train_end``, ... methods
    (`fastbert.training.callbacks`), called as training goes; one can stop the run.

    ``out``: the run's folder. ``out/log.jsonl`` logs the run as it goes (`fastbert.training.callbacks.JsonLog`).
    Checkpoints go to ``out/checkpoints`` as training goes (every
    ``checkpoint_every`` steps and at epoch ends; SIGINT or SIGTERM finishes the step, writes
    one and raises `fastbert.training.loop.TrainingInterrupted`), and the trained model is saved
    there at the end (a non-empty ``out`` needs ``overwrite``). ``resume``: a run folder to
    continue from its newest checkpoint, on the same data with the same config (only the fields
    in `fastbert.config.RESUMABLE_CHANGES` may differ); ``out`` defaults to it. Resumed, a run
    ends with the weights an uninterrupted one would have had.
    """
    if eval is not None:
        if eval_data is not None:
            raise TypeError("finetune() got the dev data twice: pass eval_data or eval, not both")
        eval_data = eval
    if task is not None:
        options["task"] = task
    if model is not None:
        options["model"] = str(model)
    checkpoint = None
    if resume is not None:
        checkpoint = _latest(Path(resume))
        given = {**(config.to_dict() if config is not None else {}), **options}
        cfg = resumed_config(checkpoint, given)
        if out is not None and Path(out).resolve() != Path(resume).resolve():
            raise ValueError(f"a resumed run goes on in its own folder {resume}; out {out} cannot differ")
        out = resume
    else:
        cfg = replace(config, **options) if config is not None else FinetuneConfig(**options)
    cfg.validate()
    if seeds is not None:
        if out is not None:
            raise ValueError(
                "seeds and out together are not supported: each seed's run would write to the same folder"
            )
        return run_seeds(
            lambda one: finetune(train_data, eval_data, config=one, callbacks=callbacks), cfg, seeds
        )
    run_dir = None if out is None else Path(out).resolve()
    if run_dir is not None and checkpoint is None:
        check_writable(run_dir, "out")
        if run_dir.is_dir() and any(run_dir.iterdir()) and not overwrite:
            raise FileExistsError(f"{run_dir} exists and is not empty; pass overwrite=True to replace it")
        # A fresh run must not resume from, or keep, the checkpoints and logs of the run it replaces.
        for record in (run_dir / name for name in RUN_RECORDS):
            if record.is_dir():
                shutil.rmtree(record)
            else:
                record.unlink(missing_ok=True)
    init_distributed_from_env()
    seed_everything(cfg.seed, cfg.deterministic)
    model_dir = Path(cfg.model) if cfg.model else default_model_dir()
    check_model_folder(model_dir)
    check_max_length(cfg, model_dir)
    tok = Tokenizer.from_pretrained(model_dir)

    train_ex, dev_ex = _load_data(train_data, eval_data, cfg)
    train_ex, leakage = check_leakage(train_ex, dev_ex, cfg.leakage, cfg.leakage_threshold)
    fingerprints = {"train_sha256": data_fingerprint(train_ex), "dev_sha256": data_fingerprint(dev_ex)}
    if checkpoint is not None:
        check_same_data(checkpoint, fingerprints, {"train": train_ex.source, "dev": dev_ex.source})
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
    train_rows, trained = _training_rows(net, train_feats, cfg)
    weights = None
    if cfg.task in ("classification", "pair", "token") and train_rows.labels is not None:
        weights = class_weight_vector(cfg, train_rows.labels, names)

    ft = FineTunedModel(net, tok, cfg, train_ex.label_names, source_dir=model_dir)
    dev = DevEvaluations(ft, dev_ex, dev_feats)
    if checkpoint is not None:  # the best so far was chosen before the resume
        dev.best_score = checkpoint.history.get("best_score")
        log.info(f"resuming from {checkpoint.folder} (step {checkpoint.position.step})")
    history = train(
        trained,
        cfg,
        train_rows,
        dev,
        device=device,
        class_weights=weights,
        mlm=mlm_spec(tok, cfg) if cfg.task == "mlm" else None,
        log=(lambda m: log.info(m)),
        run=None
        if run_dir is None
        else RunFolder(run_dir, cfg.to_dict(), {**fingerprints, **_paths(train_data, eval_data)}),
        resume=checkpoint,
        callbacks=callbacks,
    )
    ft.history = history
    # The weights train() kept are those of the best evaluation (or the last, when nothing was
    # better or restore_best is off): score the dev pass made of those weights, not a new one.
    kept = dev.best if cfg.restore_best and history.best_step is not None else dev.last
    if kept is None:  # resumed after that evaluation: the same weights give the same pass
        kept = evaluate_on_dev(ft, dev_ex, dev_feats, dev.lengths)
    ft.metrics = _final_metrics(ft, dev, kept)
    ft.data_info = {
        **fingerprints,
        "train_examples": len(train_ex.texts),
        "dev_examples": len(dev_ex.texts),
        "train_source": train_ex.source,
        "dev_source": dev_ex.source,
        "leakage": leakage,
    }
    if run_dir is not None:
        ft.save(run_dir, overwrite=True)  # keeps the run's checkpoints and logs (RUN_RECORDS)
        # The run is over and its model saved: of its checkpoints only the last is worth its
        # space (a longer run goes on from it: resume with more epochs).
        prune(run_dir, keep=1, best_step=None)
    return ft


def _paths(train_data: Any, eval_data: Any) -> dict[str, str | None]:
    """The data files of a run, recorded in its checkpoints so that ``fastbert finetune --resume``
    finds them again (``None``: data given in memory, or no dev file)."""

    def path(data: Any) -> str | None:
        return str(Path(data).resolve()) if isinstance(data, (str, Path)) else None

    return {"train_data": path(train_data), "eval_data": path(eval_data)}


def _latest(run_dir: Path) -> Checkpoint:
    folder = latest_checkpoint(run_dir)
    if folder is None:
        raise FileNotFoundError(
            f"{run_dir}: no complete checkpoint to resume from (in {run_dir / CHECKPOINTS})"
        )
    return load_checkpoint(folder)


def _load_data(train_data: Any, eval_data: Any, cfg: FinetuneConfig) -> tuple[Examples, Examples]:
    """The training and dev examples; dev is split off the training data when not given."""
    columns = (cfg.text_column, cfg.text_pair_column, cfg.label_column)
    train_ex = load_examples(
        train_data, cfg.task, text_column=columns[0], text_pair_column=columns[1], label_column=columns[2]
    )
    if eval_data is None:
        split_seed = cfg.seed if cfg.split_seed is None else cfg.split_seed
        train_ex, dev_ex = stratified_split(train_ex, cfg.dev_fraction, split_seed)
    else:
        first = train_ex.first_label()
        dev_ex = load_examples(
            eval_data,
            cfg.task,
            text_column=columns[0],
            text_pair_column=columns[1],
            label_column=columns[2],
            label_names=train_ex.label_names,
            split="eval",
            numbered_labels=False,
            names_from=None if first is None else f"the training data's, e.g. {first}",
        )
    _warn_about_small_classes(train_ex, eval_data is None)
    return train_ex, dev_ex


#: Classes named in the warning about classes with too few training examples.
SHOWN_CLASSES = 5


def _warn_about_small_classes(train_ex: Examples, split: bool) -> None:
    """Warn, with the counts, when a class has fewer than two training examples: it cannot be
    learned, and a dev split (``split``) may have taken its only other example."""
    labels = train_ex.labels
    names = train_ex.label_names
    if names is None or labels is None or isinstance(labels, list):  # regression, MLM, token tags
        return
    counts = labels.sum(axis=0) if labels.ndim == 2 else np.bincount(labels, minlength=len(names))
    small = [(names[k], int(counts[k])) for k in np.argsort(counts, kind="stable") if counts[k] < 2]
    if not small:
        return
    shown = ", ".join(f"{name!r}: {n}" for name, n in small[:SHOWN_CLASSES])
    more = f" and {len(small) - SHOWN_CLASSES} more" if len(small) > SHOWN_CLASSES else ""
    after = " after the dev split" if split else ""
    log.warning(
        f"{len(small)} of {len(names)} classes have fewer than 2 training examples{after} "
        f"({len(train_ex)} in all; {shown}{more}): they can hardly be learned. Give each class more "
        "examples, or pass dev data so that none is split off"
    )


def _training_rows(net: Head, feats: Features, cfg: FinetuneConfig) -> tuple[Features, nn.Module]:
    """The rows training cuts batches from, and the module it trains on them."""
    rows: Features = feats
    trained: nn.Module = net
    if cfg.long_text == "chunk_mean_pool":
        # One training example per text: its windows' mean vector is classified (fastbert.features.window_pool).
        assert isinstance(feats, WindowFeatures) and isinstance(net, SequenceClassifier)
        rows, trained = slot_features(feats), WindowMeanPool(net, feats.input_ids.shape[1])
    return resample_features(rows, cfg.sampling, cfg.seed), trained


@dataclass
class DevPass:
    """One evaluation on dev: its metrics, and (but for MLM) the outputs they were scored from."""

    metrics: dict[str, Any]
    outputs: DocumentOutputs | None = None
    predictions: EvalPredictions | None = None


class DevEvaluations:
    """The ``evaluate`` callback of `fastbert.training.train`: scores dev with the model as it is,
    returns the scalar metrics, and keeps the pass of the best evaluation so far and of the last one.

    "Best" is `fastbert.config.improves` on the selection metric, the rule train() keeps its best
    weights by, so `best` holds the dev pass of the weights train() restores.
    """

    def __init__(self, ft: FineTunedModel, ex: Examples, feats: Features) -> None:
        self.ft, self.ex, self.feats = ft, ex, feats
        cfg = ft.config
        self.metric, self.higher = cfg.resolved_metric()
        # Token counts before truncation, for the report's length slices: the dev texts do not change.
        self.lengths = text_lengths(ft.tokenizer, ex.texts, ex.pairs, split_into_words=cfg.task == "token")
        self.best: DevPass | None = None
        self.best_score: float | None = None
        self.last: DevPass | None = None

    def __call__(self, model: nn.Module) -> dict[str, Any]:
        dev = evaluate_on_dev(self.ft, self.ex, self.feats, self.lengths)
        self.last = dev
        score = float(dev.metrics.get(self.metric, math.nan))
        if improves(score, self.best_score, self.higher):
            self.best, self.best_score = dev, score
        # train() keeps what this returns in History.evals, one entry per evaluation, saved in
        # checkpoints and fastbert.json: numbers only. With 5,000 classes each entry's confusion
        # matrix made fastbert.json 651 MB; the kept pass's full metrics stay in `best`/`last`.
        return scalar_metrics(dev.metrics)


def evaluate_on_dev(ft: FineTunedModel, ex: Examples, feats: Features, lengths: Any) -> DevPass:
    """One evaluation of ``ft``'s model as it is on the dev examples ``ex`` (featurized as ``feats``;
    ``lengths``: their token counts before truncation)."""
    cfg = ft.config
    if cfg.task == "mlm":
        spec = mlm_spec(ft.tokenizer, cfg)
        return DevPass(mlm_eval_loss(ft.model, feats, cfg, spec, EVAL_BATCH_SIZE, ft.device))
    out = predict_documents(ft.model, feats, cfg, EVAL_BATCH_SIZE, ft.device)
    preds = eval_predictions(cfg.task, ft.label_names, ex.labels, out, lengths)
    return DevPass(score_outputs(cfg, ex, feats, out, preds), out, preds)


def _final_metrics(ft: FineTunedModel, dev: DevEvaluations, kept: DevPass) -> dict[str, Any]:
    """Fit the temperature and thresholds on the kept dev pass (`fastbert.evaluation.posthoc`) and
    score it under them: what ``predict`` would now answer on dev."""
    if kept.predictions is None or kept.outputs is None:  # MLM: a loss, nothing to fit
        return dict(kept.metrics)
    ft.eval_predictions = kept.predictions
    ft.temperature, ft.thresholds = fit_on_dev(kept.predictions, ft.config)
    return score_outputs(
        ft.config, dev.ex, dev.feats, kept.outputs, kept.predictions, ft.temperature, ft.thresholds
    )
