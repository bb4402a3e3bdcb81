"""Saving and loading fine-tuned models as standard Hugging Face folders, as plain data (`SavedModel`).

A saved folder holds ``config.json`` (with ``id2label``), ``model.safetensors`` and
the tokenizer files, so ``transformers.AutoModelFor…`` loads it as it is; plus
``fastbert.json`` (the full config, data hashes, seed, library versions, metrics)
and, for LoRA runs, a PEFT adapter in ``adapter/``.

Writing goes to a hidden sibling folder that replaces the target in one step at the end
(`fastbert.atomic_folder`): an interrupted save leaves the old model or the new one under the
target name, never a mix, and the next save or load cleans up after it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import platform
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fastbert._version import __version__
from fastbert.atomic_folder import recover, write_folder
from fastbert.config import FinetuneConfig
from fastbert.conversions import json_ready, read_json_object
from fastbert.evaluation.metrics import scalar_metrics, with_stored_confusion
from fastbert.evaluation.predictions import FILENAME as PREDICTIONS_FILE
from fastbert.evaluation.predictions import EvalPredictions
from fastbert.evaluation.report import json_text, report_from_meta, write_report
from fastbert.model.build import build_model, lora_targets
from fastbert.model.device import resolve_device
from fastbert.model.heads import Head
from fastbert.model.kernel_dispatch import enable_kernels, kernels_supported
from fastbert.model.lora import LoRALinear, base_model_name, merged_state_dict, save_peft_adapter
from fastbert.text.tokenizer import Tokenizer
from fastbert.training.distributed import distributed
from fastbert.training.loop import History

__all__ = ["META_FILE", "SavedModel", "load_model", "read_meta", "rebuild_report", "save_model", "versions"]

#: fastbert's own record in a saved folder: the config, labels, thresholds, metrics, history.
META_FILE = "fastbert.json"
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json")
PROBLEM_TYPE = {
    "classification": "single_label_classification",
    "pair": "single_label_classification",
    "multilabel": "multi_label_classification",
    "regression": "regression",
}
PEFT_TASK = {"token": "TOKEN_CLS", "mlm": "FEATURE_EXTRACTION"}


@dataclass
class SavedModel:
    """Everything a saved folder holds, as plain data: what `save_model` writes and `load_model` reads."""

    model: Head
    tokenizer: Tokenizer
    config: FinetuneConfig
    label_names: list[str] | None
    #: The checkpoint folder the model was fine-tuned from (its tokenizer files are copied).
    source_dir: Path
    thresholds: np.ndarray | None = None
    temperature: float = 1.0
    metrics: dict[str, Any] = field(default_factory=dict)
    data_info: dict[str, Any] = field(default_factory=dict)
    history: History | None = None
    eval_predictions: EvalPredictions | None = None
    seed_summary: dict[str, Any] | None = None


def versions() -> dict[str, str]:
    """The versions of fastbert and what it ran on, for ``fastbert.json``."""
    out = {
        "fastbert": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }
    try:
        import tokenizers

        out["tokenizers"] = tokenizers.__version__
    except ImportError:
        pass
    return out


def save_model(ft: SavedModel, target: Path, *, overwrite: bool = False, keep: tuple[str, ...] = ()) -> Path:
    """Write ``ft`` to the folder ``target``, whole or not at all (`fastbert.atomic_folder`):
    with ``overwrite`` an existing model is replaced in one step, so that the folder always
    holds the old model or the new one."""
    target = target.resolve()
    if distributed()[0] != 0:
        # Under DDP every rank holds the same weights and would race rank 0 for the same folder:
        # only rank 0 writes. No barrier (a script that saves on rank 0 alone would hang), so the
        # folder may not exist yet when this returns on another rank.
        return target
    return write_folder(target, lambda folder: _write(ft, folder), overwrite=overwrite, keep=keep)


def _write(ft: SavedModel, folder: Path) -> None:
    from safetensors.torch import save_file

    cfg = ft.config
    model = ft.model
    hf = model.encoder.config.to_hf_dict()
    hf["architectures"] = [model.family.class_name(hf["model_type"], cfg.task)]
    if "classifier_pooling" in hf and cfg.task not in ("token", "mlm") and cfg.pooling != "attention":
        # ModernBERT's sequence classifier pools as its config says (ModernBERT-base: "mean"):
        # write what this model was trained with, so transformers predicts the same.
        hf["classifier_pooling"] = cfg.pooling
    if cfg.task != "mlm":
        names = ft.label_names or ["LABEL_0"]
        hf["id2label"] = {str(i): n for i, n in enumerate(names)}
        hf["label2id"] = {n: i for i, n in enumerate(names)}
        hf["problem_type"] = PROBLEM_TYPE.get(cfg.task)
    hf["torch_dtype"] = "float32"
    (folder / "config.json").write_text(json.dumps(hf, indent=2) + "\n", encoding="utf-8")

    state = merged_state_dict(model)
    for key in model.tied_keys():
        # Saved once (safetensors refuses shared tensors); transformers re-ties them on load.
        state.pop(key, None)
    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in state.items()}
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})

    for name in TOKENIZER_FILES:
        src = ft.source_dir / name
        if src.is_file():
            shutil.copyfile(src, folder / name)

    if cfg.strategy == "lora":
        save_peft_adapter(
            model,
            folder / "adapter",
            task_type=PEFT_TASK.get(cfg.task, "SEQ_CLS"),
            base_dir=ft.source_dir,
            rank=cfg.lora_rank,
            alpha=cfg.lora_alpha,
            dropout=cfg.lora_dropout,
            targets=lora_targets(model, cfg),
            head_modules=[] if cfg.task == "mlm" else _trained_task_modules(model),
        )

    meta = {
        "format": 1,
        "task": cfg.task,
        "config": cfg.to_dict(),
        "label_names": ft.label_names,
        "thresholds": ft.thresholds,
        "temperature": ft.temperature,
        "seed": cfg.seed,
        "seed_summary": ft.seed_summary,
        "data": ft.data_info,
        "metrics": _saved_metrics(ft),
        "history": None if ft.history is None else _saved_history(ft.history),
        "versions": versions(),
        # A name that means the same on every machine (`base_model_name`), and where it was here.
        "base_model": base_model_name(Path(ft.source_dir)),
        "base_model_path": str(ft.source_dir),
    }
    meta_json = json_text(json_ready(meta))
    (folder / META_FILE).write_text(meta_json, encoding="utf-8")
    _write_report(ft, folder, json.loads(meta_json))


def _trained_task_modules(model: Head) -> list[str]:
    """The task layers with parameters (``classifier``; DistilBERT's ``pre_classifier`` too): PEFT's
    ``modules_to_save``."""
    return [n for n in model.task_module_names if any(True for _ in getattr(model, n).parameters())]


def _saved_metrics(ft: SavedModel) -> dict[str, Any]:
    """The metrics ``fastbert.json`` keeps. The confusion matrix is stored once: in report.json,
    which rebuilds it from ``eval_predictions.npz``; only without that file is it kept here (in
    `fastbert.evaluation.metrics.stored_confusion`'s form), for the report to read."""
    metrics = with_stored_confusion(ft.metrics)
    if ft.eval_predictions is not None:
        metrics.pop("confusion_matrix", None)
    return metrics


def _saved_history(history: History) -> dict[str, Any]:
    """``history`` for ``fastbert.json``, each evaluation's numbers only. `fastbert.finetune` keeps
    no more; a history loaded from a folder of an older version may still hold a confusion matrix
    per evaluation (651 MB for 5,000 classes), which is not written again."""
    return {**history.__dict__, "evals": [scalar_metrics(e) for e in history.evals]}


def _write_report(ft: SavedModel, folder: Path, meta: dict[str, Any]) -> None:
    """``eval_predictions.npz`` and the evaluation report (`fastbert.evaluation.report`).

    The report is built from ``fastbert.json`` as written (``meta``) and from the predictions
    file's contents, exactly what ``fastbert report DIR`` reads, so a rebuild equals it.
    """
    if ft.eval_predictions is not None:
        ft.eval_predictions.save(folder / PREDICTIONS_FILE)
    write_report(folder, report_from_meta(meta, ft.eval_predictions))


def read_meta(folder: Path) -> dict[str, Any]:
    """A saved folder's ``fastbert.json``; raises naming the file when the folder has none or it is not JSON."""
    meta_path = folder / META_FILE
    if not meta_path.is_file():
        raise FileNotFoundError(f"{meta_path}: not a folder saved by fastbert (no {META_FILE})")
    return read_json_object(meta_path)


def rebuild_report(folder: str | Path) -> dict[str, Any]:
    """Rebuild and rewrite a saved model folder's report from ``fastbert.json`` and ``eval_predictions.npz``."""
    folder = Path(folder)
    meta = read_meta(folder)
    npz = folder / PREDICTIONS_FILE
    preds = EvalPredictions.load(npz) if npz.is_file() else None
    report = report_from_meta(meta, preds)
    write_report(folder, report)
    return report


def load_model(folder: Path, device: str = "auto") -> SavedModel:
    """Read a folder written by `save_model`; the model is on ``device``, in evaluation mode.

    A save of ``folder`` that a crash interrupted is finished or rolled back first (where the
    folder can be written: a reader without write access gets the folder as it is)."""
    from safetensors.torch import load_file

    with contextlib.suppress(OSError):
        recover(folder)
    meta = read_meta(folder)
    cfg = FinetuneConfig.from_dict(meta["config"])
    # The saved weights are merged: load them into a plain model, whatever the training strategy was.
    cfg.strategy = "full"
    names = meta.get("label_names")
    num_labels = 1 if cfg.task == "regression" else len(names or [])
    model = build_model(cfg, folder, num_labels, load_weights=False)
    state = load_file(str(folder / "model.safetensors"))
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = model.tied_keys()
    missing = [k for k in missing if k not in tied]
    if missing or unexpected:
        raise ValueError(
            f"{folder / 'model.safetensors'}: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    dev = resolve_device(device)
    model.to(dev).eval()
    if cfg.use_kernels and kernels_supported(dev):
        enable_kernels(model)
    assert not any(isinstance(m, LoRALinear) for m in model.modules())
    thresholds = meta.get("thresholds")
    predictions = folder / PREDICTIONS_FILE
    return SavedModel(
        model=model,
        tokenizer=Tokenizer.from_pretrained(folder),
        config=cfg,
        label_names=names,
        source_dir=folder,
        thresholds=np.asarray(thresholds) if thresholds is not None else None,
        metrics=meta.get("metrics") or {},
        data_info=meta.get("data") or {},
        history=_history(meta.get("history")),
        temperature=float(meta.get("temperature") or 1.0),
        eval_predictions=EvalPredictions.load(predictions) if predictions.is_file() else None,
        seed_summary=meta.get("seed_summary"),
    )


def _history(saved: dict[str, Any] | None) -> History | None:
    """The `History` saved in ``fastbert.json`` (``None`` when there was none)."""
    if not saved:
        return None
    known = {f.name for f in dataclasses.fields(History)}
    return History(**{k: v for k, v in saved.items() if k in known})
