"""Every encoder family through `fastbert.finetune`: each task and each strategy trains, the saved
folder loads in the family's ``AutoModelFor…`` class of transformers with the same outputs, and
the LoRA adapter loads in PEFT with the same outputs.

The checkpoints are tiny random ``<Family>ForMaskedLM`` models saved by transformers, with a
tokenizer of the family's kind trained on ``../shared/data/raw_text`` (`family_checkpoints`);
the data are small slices of the shared data sets. They check mechanics, not quality; the
encoders' numerical parity with transformers is `tests/families/`.
"""

from __future__ import annotations

import csv
import inspect
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from family_checkpoints import MODEL_TYPES, write_checkpoint

import fastbert
from fastbert.model.encoder import FAMILIES

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f"shared data not found at {DATA}")

#: Each task with the full strategy, each other strategy on classification, and LoRA on tokens.
CASES = [
    ("classification", "full"),
    ("pair", "full"),
    ("multilabel", "full"),
    ("regression", "full"),
    ("token", "full"),
    ("mlm", "full"),
    ("classification", "frozen"),
    ("classification", "freeze_lower"),
    ("classification", "lora"),
    ("token", "lora"),
]
AUTO_CLASS = {
    "token": "AutoModelForTokenClassification",
    "mlm": "AutoModelForMaskedLM",
}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("families")
    return {m: write_checkpoint(root / m, m) for m in MODEL_TYPES}


def tsv_rows(path: Path, n: int) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        return [row for _, row in zip(range(n), reader, strict=False)]


def conll_sentences(n: int, skip: int = 0) -> list[tuple[list[str], list[str]]]:
    blocks = (DATA / "conll2003" / "train.txt").read_text(encoding="utf-8").split("\n\n")
    sentences = []
    for block in blocks[skip:]:
        rows = [
            line.split() for line in block.splitlines() if line.strip() and not line.startswith("-DOCSTART-")
        ]
        if rows:
            sentences.append(([r[0] for r in rows], [r[-1] for r in rows]))
        if len(sentences) == n:
            break
    return sentences


def task_data(task: str) -> tuple[Any, Any, list[Any], list[str] | None]:
    """(train, dev, a few inputs to compare outputs on, their pair texts or None)."""
    if task == "classification":
        rows = [
            {"text": r["sentence"], "label": r["label"]} for r in tsv_rows(DATA / "sst2" / "train.tsv", 48)
        ]
        return rows[:32], rows[32:], [r["text"] for r in rows[32:36]], None
    if task == "pair":
        rows = tsv_rows(DATA / "mrpc" / "train.tsv", 48)
        pairs = [
            {"sentence1": r["sentence1"], "sentence2": r["sentence2"], "label": r["label"]} for r in rows
        ]
        return (
            pairs[:32],
            pairs[32:],
            [r["sentence1"] for r in rows[32:36]],
            [r["sentence2"] for r in rows[32:36]],
        )
    if task == "multilabel":
        rows = [
            {"text": r["text"], "labels": r["labels"]}
            for r in tsv_rows(DATA / "goemotions" / "train.tsv", 64)
        ]
        seen = {label for r in rows[:32] for label in r["labels"].split(",")}
        dev = [r for r in rows[32:] if set(r["labels"].split(",")) <= seen]
        return rows[:32], dev, [r["text"] for r in dev[:4]], None
    if task == "regression":
        rows = tsv_rows(DATA / "stsb" / "train.tsv", 48)
        pairs = [
            {"sentence1": r["sentence1"], "sentence2": r["sentence2"], "score": r["score"]} for r in rows
        ]
        return (
            pairs[:32],
            pairs[32:],
            [r["sentence1"] for r in rows[32:36]],
            [r["sentence2"] for r in rows[32:36]],
        )
    if task == "token":
        sentences = conll_sentences(48)
        return sentences[:32], sentences[32:], [words for words, _ in sentences[32:36]], None
    lines = (DATA / "raw_text" / "wikitext2_valid.txt").read_text(encoding="utf-8").splitlines()
    texts = [line.strip() for line in lines if len(line.split()) > 8][:48]
    return [{"text": t} for t in texts[:32]], [{"text": t} for t in texts[32:]], texts[32:36], None


def hf_inputs(
    hf: Any, tok: fastbert.Tokenizer, texts: list[Any], pairs: list[str] | None, task: str
) -> dict[str, Any]:
    """The batch fastbert feeds its model, in the arguments the transformers model takes."""
    batch = tok(
        texts,
        pairs,
        is_split_into_words=task == "token",
        padding=True,
        truncation=True,
        max_length=32,
        return_tensors="pt",
    )
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    takes_types = "token_type_ids" in inspect.signature(hf.forward).parameters
    if takes_types and getattr(hf.config, "type_vocab_size", 0) > 1:
        inputs["token_type_ids"] = batch["token_type_ids"]
    return inputs


def quick(task: str, strategy: str) -> dict[str, Any]:
    options: dict[str, Any] = {
        "task": task,
        "strategy": strategy,
        "epochs": 1,
        "batch_size": 8,
        "max_length": 32,
        "progress": False,
        "seed": 0,
        "lr": 1e-3 if strategy == "lora" else 1e-4,
    }
    if strategy == "freeze_lower":
        options["freeze_layers"] = 1
    return options


def test_every_family_is_registered() -> None:
    assert set(MODEL_TYPES) <= set(FAMILIES)


# PEFT 0.21 calls a transformers method that transformers 5 deprecates.
@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")
@pytest.mark.parametrize("model_type", MODEL_TYPES)
@pytest.mark.parametrize(("task", "strategy"), CASES)
def test_family_trains_and_saves_for_transformers(
    checkpoints: dict[str, Path], tmp_path: Path, model_type: str, task: str, strategy: str
) -> None:
    import transformers

    ckpt = checkpoints[model_type]
    train, dev, texts, pairs = task_data(task)
    ft = fastbert.finetune(train, dev, model=ckpt, **quick(task, strategy))
    assert (
        ft.history is not None and ft.history.steps and all(math.isfinite(x) for x in ft.history.train_loss)
    )
    encoder_before = getattr(
        transformers.AutoModelForMaskedLM.from_pretrained(ckpt), FAMILIES[model_type].prefix
    ).state_dict()
    encoder_after = ft.model.encoder.state_dict()
    changed = [
        k
        for k, v in encoder_before.items()
        if k in encoder_after and not torch.equal(v, encoder_after[k].cpu())
    ]
    if strategy in ("frozen", "lora"):
        assert not changed, changed[:3]  # LoRA's adapters sit beside the frozen weights until saving
    elif strategy == "freeze_lower":
        assert changed and not any(k.startswith("embeddings.") for k in changed)
    else:
        assert changed

    out = ft.save(tmp_path / "model")
    saved = json.loads((out / "config.json").read_text(encoding="utf-8"))
    assert saved["model_type"] == model_type
    auto = getattr(transformers, AUTO_CLASS.get(task, "AutoModelForSequenceClassification"))
    hf = auto.from_pretrained(out).eval()
    assert type(hf).__name__ == saved["architectures"][0]
    inputs = hf_inputs(hf, ft.tokenizer, texts, pairs, task)
    with torch.no_grad():
        want = hf(**inputs).logits
        ft.model.eval()
        ours = ft.model(
            inputs["input_ids"],
            inputs["attention_mask"],
            torch.zeros_like(inputs["input_ids"])
            if "token_type_ids" not in inputs
            else inputs["token_type_ids"],
        )
    real = inputs["attention_mask"].bool()
    if task in ("token", "mlm"):
        torch.testing.assert_close(ours[real], want[real], atol=1e-5, rtol=1e-4)
    else:
        torch.testing.assert_close(ours, want, atol=1e-5, rtol=1e-4)

    if task != "mlm":
        again = fastbert.load(out)
        assert again.predict(texts, pairs) == ft.predict(texts, pairs)
    if strategy == "lora":
        check_peft_adapter(ckpt, out, ft, texts, pairs, task)


def check_peft_adapter(
    base_dir: Path,
    out: Path,
    ft: fastbert.FineTunedModel,
    texts: list[Any],
    pairs: list[str] | None,
    task: str,
) -> None:
    """The adapter folder loads in PEFT over the base checkpoint and gives fastbert's logits."""
    peft = pytest.importorskip("peft")
    import transformers

    auto = getattr(transformers, AUTO_CLASS.get(task, "AutoModelForSequenceClassification"))
    base = auto.from_pretrained(base_dir, num_labels=len(ft.label_names or []))
    model = peft.PeftModel.from_pretrained(base, out / "adapter").eval()
    inputs = hf_inputs(base, ft.tokenizer, texts, pairs, task)
    with torch.no_grad():
        theirs = model(**inputs).logits.numpy()
    ours = ft.logits(texts, pairs)
    if task == "token":
        for i in range(len(texts)):
            n = int(inputs["attention_mask"][i].sum())
            np.testing.assert_allclose(ours[i, :n], theirs[i, :n], atol=1e-5)
    else:
        np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_modernbert_mean_pooling_is_saved_as_its_classifier_pooling(
    checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    """ModernBERT's transformers classifier pools as ``classifier_pooling`` says: a model trained
    with ``pooling="mean"`` must be saved saying "mean", or transformers predicts otherwise."""
    import transformers

    train, dev, texts, _ = task_data("classification")
    ft = fastbert.finetune(
        train, dev, model=checkpoints["modernbert"], pooling="mean", **quick("classification", "full")
    )
    out = ft.save(tmp_path / "model")
    hf = transformers.AutoModelForSequenceClassification.from_pretrained(out).eval()
    assert hf.config.classifier_pooling == "mean"
    inputs = hf_inputs(hf, ft.tokenizer, texts, None, "classification")
    with torch.no_grad():
        want = hf(**inputs).logits.numpy()
    np.testing.assert_allclose(ft.logits(texts), want, atol=1e-5)


@pytest.mark.parametrize("model_type", MODEL_TYPES)
@pytest.mark.parametrize(
    ("task", "long_text"),
    [("classification", "head_tail"), ("classification", "chunk_mean_pool"), ("token", "chunk_vote")],
)
def test_long_text_policies_run_on_every_family(
    checkpoints: dict[str, Path], model_type: str, task: str, long_text: str
) -> None:
    """Texts longer than ``max_length`` (16 tokens here) go through each policy on every family's
    tokenizer and special tokens: training, and prediction for texts of any length."""
    train, dev, texts, _ = task_data(task)
    options = {**quick(task, "full"), "max_length": 16, "long_text": long_text}
    ft = fastbert.finetune(train, dev, model=checkpoints[model_type], **options)
    preds = ft.predict(texts)
    assert len(preds) == len(texts)
    if task == "token":  # a tag for every word, also past the first window
        assert [len(p) for p in preds] == [len(words) for words in texts]
        assert max(len(words) for words in texts) > 16


def test_deberta_v3_mlm_head_in_the_new_layout_is_used_or_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """DeBERTa-v3's released checkpoints keep their MLM head as ``lm_predictions.*``, which
    transformers reads only under ``"legacy": false``: with it the head loads; without it the
    warning says how to use it."""
    import logging

    from family_checkpoints import hf_config
    from family_tokenizers import write_tokenizer
    from transformers import AutoModelForMaskedLM

    from fastbert.config import FinetuneConfig
    from fastbert.model.build import build_model

    write_tokenizer(tmp_path, "deberta-unigram")
    vocab = fastbert.Tokenizer.from_pretrained(tmp_path).vocab_size
    config = hf_config("deberta-v2", vocab, {"pad": 0, "cls": 1, "sep": 2}, legacy=False)
    torch.manual_seed(0)
    AutoModelForMaskedLM.from_config(config).save_pretrained(tmp_path)
    cfg = FinetuneConfig(task="mlm")
    with caplog.at_level(logging.WARNING, logger="fastbert"):
        model = build_model(cfg, tmp_path, num_labels=0)
    assert not caplog.records
    from safetensors.torch import load_file

    saved = load_file(str(tmp_path / "model.safetensors"))
    key = "lm_predictions.lm_head.dense.weight"
    assert torch.equal(model.state_dict()[key], saved[key])

    settings = json.loads((tmp_path / "config.json").read_text(encoding="utf-8"))
    settings["legacy"] = True
    (tmp_path / "config.json").write_text(json.dumps(settings), encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="fastbert"):
        build_model(cfg, tmp_path, num_labels=0)
    assert '"legacy": false' in caplog.text


def test_roberta_max_length_counts_the_positions_it_keeps_apart(checkpoints: dict[str, Path]) -> None:
    """RoBERTa's positions start after the padding index: 130 positions take 128 tokens."""
    train, dev, _, _ = task_data("classification")
    with pytest.raises(ValueError, match=r"more than the 128 tokens .*130 .* RoBERTa keeps 2 apart"):
        fastbert.finetune(
            train, dev, model=checkpoints["roberta"], **{**quick("classification", "full"), "max_length": 129}
        )
