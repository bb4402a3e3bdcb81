"""fastbert.data: every input kind, every error message, the dev split and the fingerprint;
the real data sets of shared/data loaded and counted against the tables in their SOURCE.md."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastbert import data as fd
from fastbert.data import DataError, data_fingerprint, load_examples, stratified_split
from fastbert.evaluation.metrics import get_entities

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def write(tmp_path: Path, name: str, content: str | bytes) -> str:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", newline="")
    return str(path)


# ---------------------------------------------------------------- real data sets
def source_table(folder: str) -> dict[str, list[str]]:
    """``{file: [cells after the file name]}`` from the split table(s) of ``folder/SOURCE.md``."""
    path = DATA / folder / "SOURCE.md"
    if not path.is_file():
        pytest.skip(f"shared data set {folder} not found at {DATA}")
    rows = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.match(r"\|\s*([\w.]+\.(?:tsv|txt|conll))(?:\s*\([^)]*\))?\s*\|(.*)\|\s*$", line)
        if m:
            rows[m.group(1)] = [c.strip() for c in m.group(2).split("|")]
    return rows


def number(cell: str) -> int:
    """The first number of a table cell: ``"1,379 (labeled; ...)"`` → 1379."""
    return int(re.match(r"[\d,]+", cell.strip()).group().replace(",", ""))


def counts_by_name(ex: fd.Examples) -> dict[str, int]:
    return {
        ex.label_names[k]: int(c) for k, c in enumerate(np.bincount(ex.labels, minlength=len(ex.label_names)))
    }


SPLITS3 = ["train", "dev", "test"]


@pytest.mark.parametrize("split", SPLITS3)
def test_sst2(split):
    table = source_table("sst2")[f"{split}.tsv"]  # sentences | pos (1) | neg (0)
    ex = load_examples(DATA / "sst2" / f"{split}.tsv", "classification", split=split)
    assert len(ex) == number(table[0])
    assert counts_by_name(ex) == {"1": number(table[1]), "0": number(table[2])}
    assert ex.rows[0] == 2 and ex.row_unit == "line"  # line 1 is the header


@pytest.mark.parametrize("split", SPLITS3)
def test_mrpc_pairs_keep_literal_quotes(split):
    table = source_table("mrpc")[f"{split}.tsv"]  # pairs | label 1 | label 0
    ex = load_examples(DATA / "mrpc" / f"{split}.tsv", "pair", split=split)
    assert len(ex) == len(ex.pairs) == number(table[0])
    assert counts_by_name(ex) == {"1": number(table[1]), "0": number(table[2])}
    if split == "train":  # a QUOTE_NONE reader keeps the quotes of the first sentence
        assert ex.texts[0].startswith('Amrozi accused his brother, whom he called "the witness"')
        assert any("\x12" in t for t in ex.texts + ex.pairs)  # the documented U+0012 quirk, kept verbatim


@pytest.mark.parametrize("split", SPLITS3)
def test_stsb_regression(split):
    table = source_table("stsb")[f"{split}.tsv"]
    ex = load_examples(DATA / "stsb" / f"{split}.tsv", "regression")
    assert len(ex) == number(table[0]) and ex.labels.dtype == np.float32 and ex.label_names is None
    assert ex.labels.min() >= 0 and ex.labels.max() <= 5
    assert ex.texts[0] == "A plane is taking off." or split != "train"
    assert len(ex.pairs) == len(ex)  # sentence2 found: pair regression
    assert "task='regression'" in error(DATA / "stsb" / f"{split}.tsv", "pair", label_column="score")


@pytest.mark.parametrize("split", SPLITS3)
def test_goemotions_multilabel_with_labels_txt(split):
    table = source_table("goemotions")[f"{split}.tsv"]  # examples | 1 label | 2 labels | 3+ labels
    names = fd.read_label_names(DATA / "goemotions" / "labels.txt")
    assert len(names) == 28 and names[0] == "admiration" and names[-1] == "neutral"
    ex = load_examples(DATA / "goemotions" / f"{split}.tsv", "multilabel", label_names=names, split=split)
    assert ex.label_names == names and ex.labels.shape == (number(table[0]), 28)
    per_example = Counter(np.minimum(ex.labels.sum(axis=1), 3).astype(int).tolist())
    assert [per_example[1], per_example[2], per_example[3]] == [number(c) for c in table[1:4]]
    if split == "train":
        freq = ex.labels.sum(axis=0)
        assert names[int(freq.argmax())] == "neutral" and freq.max() == 14219
        assert names[int(freq.argmin())] == "grief" and freq.min() == 77
        # without labels.txt the names are the sorted label set, the same 28 names
        assert load_examples(DATA / "goemotions" / "dev.tsv", "multilabel").label_names == sorted(names)


def test_banking77_train_and_test_with_training_names():
    tables = source_table("banking77")
    train = load_examples(DATA / "banking77" / "train.tsv", "classification")
    assert len(train) == number(tables["train.tsv"][0])
    low, high = (int(x) for x in re.findall(r"\d+", tables["train.tsv"][1]))
    counts = np.bincount(train.labels)
    assert len(train.label_names) == 77 and (counts.min(), counts.max()) == (low, high)
    assert train.label_names == sorted(train.label_names)
    test = load_examples(
        DATA / "banking77" / "test.tsv", "classification", label_names=train.label_names, split="test"
    )
    assert len(test) == number(tables["test.tsv"][0])
    assert set(np.bincount(test.labels).tolist()) == {int(re.findall(r"\d+", tables["test.tsv"][1])[0])}


CEFR = ["A1", "A2", "B1", "B2", "C1", "C2"]


@pytest.mark.parametrize("part", ["wikiauto", "score"])
@pytest.mark.parametrize("split", SPLITS3)
def test_cefr_sp_needs_its_label_column(part, split):
    path = DATA / "cefr_sp" / f"{part}_{split}.tsv"
    table = source_table("cefr_sp")[path.name]  # sentences | A1 | A2 | B1 | B2 | C1 | C2
    with pytest.raises(DataError, match=r"label.*level_max.*label_column"):
        load_examples(path, "classification")
    ex = load_examples(path, "classification", label_column="level_max", label_names=CEFR, split=split)
    assert len(ex) == number(table[0])
    assert [counts_by_name(ex)[n] for n in CEFR] == [number(c) for c in table[1:7]]


@pytest.mark.parametrize("split", SPLITS3)
def test_conll2003_tokens_and_entities(split):
    name = {"train": "train.txt", "dev": "dev.txt", "test": "test.txt"}[split]
    table = source_table("conll2003")[name]  # sentences | tokens | LOC / MISC / ORG / PER
    ex = load_examples(DATA / "conll2003" / name, "token", split=split)
    assert len(ex) == number(table[0])
    assert sum(len(w) for w in ex.texts) == number(table[1])
    assert ex.label_names == ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    assert all(len(w) == len(t) for w, t in zip(ex.texts, ex.labels, strict=True))
    entities = Counter(e[0] for tags in ex.labels for e in get_entities([ex.label_names[i] for i in tags]))
    assert [entities[t] for t in ("LOC", "MISC", "ORG", "PER")] == [number(x) for x in table[2].split("/")]
    assert not any("-DOCSTART-" in w for w in ex.texts[:50])
    lines = (DATA / "conll2003" / name).read_text(encoding="utf-8").split("\n")
    for words, row in zip(ex.texts[:200], ex.rows[:200], strict=True):  # rows are the first word's line
        assert lines[row - 1].split(" ")[0] == words[0] and (row == 1 or lines[row - 2] == "")


@pytest.mark.parametrize("split", SPLITS3)
def test_wnut17_tokens(split):
    table = source_table("wnut17")[f"{split}.conll"]  # sentences | tokens | B- tags
    ex = load_examples(DATA / "wnut17" / f"{split}.conll", "token", split=split)
    assert len(ex) == number(table[0])
    assert sum(len(w) for w in ex.texts) == number(table[1])
    b_ids = [i for i, n in enumerate(ex.label_names) if n.startswith("B-")]
    assert sum(int(np.isin(t, b_ids).sum()) for t in ex.labels) == number(table[2])
    assert len(ex.label_names) == 13 and "B-creative-work" in ex.label_names


def test_wnut17_dev_with_training_tags():
    train = load_examples(DATA / "wnut17" / "train.conll", "token")
    if not (DATA / "wnut17" / "dev.conll").is_file():
        pytest.skip("wnut17 dev missing")
    dev = load_examples(DATA / "wnut17" / "dev.conll", "token", label_names=train.label_names, split="dev")
    assert dev.label_names == train.label_names
    assert any("Dubbz\ufeff" in w for w in dev.texts)  # the documented U+FEFF token, kept


# ---------------------------------------------------------------- formats
def test_tsv_has_no_quoting(tmp_path):
    path = write(tmp_path, "a.tsv", 'text\tlabel\n"quoted" start\tpos\nmid "x\tneg\n')
    ex = load_examples(path, "classification")
    assert ex.texts == ['"quoted" start', 'mid "x'] and ex.label_names == ["neg", "pos"]
    assert ex.labels.tolist() == [1, 0] and ex.rows.tolist() == [2, 3] and ex.where(1) == f"{path}, line 3"


def test_csv_quoting_multiline_fields_and_line_numbers(tmp_path):
    path = write(tmp_path, "a.csv", 'text,label\n"a, ""b""\nc",1\r\n\nplain,0\n')
    ex = load_examples(path, "classification")
    assert ex.texts == ['a, "b"\nc', "plain"] and ex.labels.tolist() == [1, 0]
    assert ex.rows.tolist() == [2, 5]  # the first record spans lines 2-3, line 4 is blank


def test_jsonl_json_array_and_crlf(tmp_path):
    rows = [{"sentence": "good", "label": "pos"}, {"sentence": "bad", "label": "neg"}]
    jsonl = write(tmp_path, "a.jsonl", "\r\n".join(json.dumps(r) for r in rows) + "\r\n\r\n")
    arr = write(tmp_path, "a.json", json.dumps(rows))
    for path in (jsonl, arr):
        ex = load_examples(path, "classification")
        assert ex.texts == ["good", "bad"] and ex.labels.tolist() == [1, 0]
    assert load_examples(arr, "classification").row_unit == "record"


def test_parquet_dataframe_dataset_dict_and_lists(tmp_path):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"Review": ["fine", "awful", "ok"], "Target": [2, 10, 2]})
    frame = load_examples(df, "classification")
    assert frame.source == "<DataFrame>" and frame.label_names == ["2", "10"]  # ints sort numerically
    assert frame.labels.tolist() == [0, 1, 0]
    pytest.importorskip("pyarrow")
    path = str(tmp_path / "a.parquet")
    df.to_parquet(path)
    assert load_examples(path, "classification").labels.tolist() == [0, 1, 0]
    records = df.to_dict("records")
    for data in (
        records,
        list(zip(df.Review, df.Target, strict=True)),
        {"text": list(df.Review), "label": [2, 10, 2]},
    ):
        ex = load_examples(data, "classification")
        assert ex.texts == ["fine", "awful", "ok"] and ex.labels.tolist() == [0, 1, 0]
    fp = {data_fingerprint(load_examples(d, "classification")) for d in (df, path, records)}
    assert len(fp) == 1  # same content, same fingerprint, whatever the source


def test_datasets_classlabel_order_is_kept():
    datasets = pytest.importorskip("datasets")
    features = datasets.Features(
        {"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos", "neutral"])}
    )
    ds = datasets.Dataset.from_dict({"text": ["a", "b", "c"], "label": [2, 0, 1]}, features=features)
    ex = load_examples(ds, "classification")
    assert ex.label_names == ["neg", "pos", "neutral"] and ex.labels.tolist() == [2, 0, 1]
    # with the training names in another order, ids follow the names
    ex = load_examples(ds, "classification", label_names=["neutral", "neg", "pos"], split="dev")
    assert ex.labels.tolist() == [0, 1, 2]
    tok = datasets.Dataset.from_dict(
        {"tokens": [["EU", "rejects"]], "ner_tags": [[1, 0]]},
        features=datasets.Features(
            {
                "tokens": datasets.Sequence(datasets.Value("string")),
                "ner_tags": datasets.Sequence(datasets.ClassLabel(names=["O", "B-ORG", "I-ORG"])),
            }
        ),
    )
    ex = load_examples(tok, "token", split="dev")
    assert ex.label_names == ["O", "B-ORG", "I-ORG"] and ex.labels[0].tolist() == [1, 0]


def test_token_inputs(tmp_path):
    conll = write(
        tmp_path,
        "a.conll",
        "-DOCSTART- -X- O\n\nEU NNP B-ORG\nrejects VBZ O\n\n\t\nPeter\tB-PER\nBlackburn\tI-PER\n",
    )
    ex = load_examples(conll, "token")
    assert ex.texts == [["EU", "rejects"], ["Peter", "Blackburn"]] and ex.rows.tolist() == [3, 7]
    assert ex.label_names == ["O", "B-ORG", "I-ORG", "B-PER", "I-PER"]  # BIO order, both B-/I- per type
    assert [t.tolist() for t in ex.labels] == [[1, 0], [3, 4]]
    tuples = load_examples([(["EU", "rejects"], ["B-ORG", "O"])], "token", split="dev")
    assert tuples.labels[0].tolist() == [1, 0]
    jsonl = write(tmp_path, "t.jsonl", json.dumps({"tokens": ["a", "b"], "ner_tags": ["NN", "VB"]}) + "\n")
    assert load_examples(jsonl, "token").label_names == ["NN", "VB"]  # not BIO: sorted


def test_mlm_inputs(tmp_path):
    path = write(tmp_path, "raw.txt", "first line\n\n  \nsecond line\n")
    ex = load_examples(path, "mlm")
    assert ex.texts == ["first line", "second line"] and ex.labels is None and ex.rows.tolist() == [1, 4]
    assert load_examples(["a b", "c"], "mlm").texts == ["a b", "c"]


def test_pair_and_multilabel_variants(tmp_path):
    ex = load_examples([("a", "b", 1), ("c", "d", 0)], "pair")
    assert ex.texts == ["a", "c"] and ex.pairs == ["b", "d"] and ex.labels.tolist() == [1, 0]
    reg = load_examples([("a", "b", "1.5"), ("c", "d", 2)], "regression")
    assert reg.pairs == ["b", "d"] and reg.labels.tolist() == [1.5, 2.0] and reg.labels.dtype == np.float32
    assert load_examples([("a", 0.5), ("c", 2)], "regression").pairs is None
    ml = load_examples([{"text": "x", "labels": ["b", "a"]}, {"text": "y", "labels": []}], "multilabel")
    assert ml.label_names == ["a", "b"] and ml.labels.tolist() == [[1, 1], [0, 0]]
    ml = load_examples([("x", "b|a"), ("y", "c")], "multilabel")
    assert ml.label_names == ["a", "b", "c"] and ml.labels.tolist() == [[1, 1, 0], [0, 0, 1]]
    # integer labels against non-numeric names are ids into them
    ex = load_examples([("x", 1), ("y", 0)], "classification", label_names=["neg", "pos"])
    assert ex.labels.tolist() == [1, 0]


# ---------------------------------------------------------------- errors
def error(data, task="classification", **kw) -> str:
    with pytest.raises(DataError) as info:
        load_examples(data, task, **kw)
    return str(info.value)


def test_missing_column_lists_the_columns(tmp_path):
    path = write(tmp_path, "a.csv", "body_text,stars_x\nhi,1\n")
    msg = error(path)
    assert "a.csv" in msg and "['body_text', 'stars_x']" in msg and "label_column" in msg
    assert "no column 'nope'" in error(path, label_column="nope")


def test_empty_texts_and_labels_name_the_line(tmp_path):
    assert re.search(
        r"a\.tsv, line 3: empty text", error(write(tmp_path, "a.tsv", "text\tlabel\nok\t1\n  \t0\n"))
    )
    assert re.search(
        r"b\.tsv, line 2: empty label", error(write(tmp_path, "b.tsv", "text\tlabel\nok\t \nx\t0\n"))
    )
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"text": ["a", "b"], "label": [1.0, float("nan")]})
    assert "<DataFrame>, row 2: missing label" in error(df)
    assert "row 1: missing text" in error([{"text": None, "label": 1}, {"text": "b", "label": 0}])


def test_unseen_eval_label_names_label_line_and_source(tmp_path):
    path = write(tmp_path, "dev.tsv", "text\tlabel\na\tpos\nb\tmeh\n")
    msg = error(path, label_names=["neg", "pos"], split="dev")
    assert "dev.tsv, line 3" in msg and "'meh'" in msg and "neg, pos" in msg
    tok = write(tmp_path, "dev.conll", "a\tO\nb\tB-NEW\n")
    assert re.search(r"dev\.conll, line 1: tag 'B-NEW'", error(tok, "token", label_names=["O", "B-X", "I-X"]))


def test_single_class_training_set(tmp_path):
    path = write(tmp_path, "a.tsv", "text\tlabel\na\tpos\nb\tpos\n")
    assert "'pos'" in error(path) and "two classes" in error(path)
    assert len(load_examples(path, "classification", split="test")) == 2  # fine for evaluation


def test_file_type_and_encoding_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.tsv"):
        load_examples(tmp_path / "nope.tsv", "classification")
    assert "unsupported file type '.xlsx'" in error(write(tmp_path, "a.xlsx", "x"))
    assert "binary" in error(write(tmp_path, "b.csv", b"PAR1\x00\x01rest"))
    assert "binary" in error(write(tmp_path, "c.tsv", b"text\tlabel\n\x00\x00\x01\t1\n"))
    msg = error(write(tmp_path, "d.tsv", b"text\tlabel\nok\t1\ncaf\xe9\t0\n"))
    assert "d.tsv, line 3: not valid UTF-8" in msg and "0xe9" in msg
    assert "UTF-16" in error(write(tmp_path, "e.csv", "text,label\n".encode("utf-16")))
    assert "not a Parquet file" in error(write(tmp_path, "f.parquet", "text,label\n"))
    assert "folder" in error(str(tmp_path))


def test_malformed_rows(tmp_path):
    assert "line 3: 3 tab-separated fields" in error(
        write(tmp_path, "a.tsv", "text\tlabel\na\t1\nb\t0\textra\n")
    )
    assert "line 2: not valid JSON" in error(
        write(tmp_path, "a.jsonl", '{"text": "a", "label": 1}\n{"text": \n')
    )
    assert "expected a JSON object" in error(write(tmp_path, "b.jsonl", '["a", 1]\n'))
    assert "line 2: expected a token and its tag" in error(
        write(tmp_path, "a.conll", "a O\nlonely\n"), "token"
    )
    assert "2 words but 1 tags" in error([(["a", "b"], ["O"])], "token")
    assert "mix numbers and names" in error([("a", 1), ("b", "pos")])
    assert "not a number" in error([("a", "high"), ("b", 0.5)], "regression")
    assert "not a class" in error([("a", 0.5), ("b", 1)])
    assert "expects (text, pair, label)" in error([("a", 1)], "pair")
    assert "appears twice" in error(write(tmp_path, "d.csv", "text,Text,label\na,b,1\n"))
    assert "no examples" in error(write(tmp_path, "e.tsv", "text\tlabel\n"))


# ---------------------------------------------------------------- round trips through files
texts = st.text(
    st.characters(codec="utf-8", exclude_characters="\t\n\r\x00\ufeff"), min_size=1, max_size=12
).filter(lambda s: s.strip() != "")


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(texts, st.sampled_from(["neg", "pos", "a b", "x,y", ' "q" '])), min_size=2, max_size=12
    )
)
def test_files_round_trip(rows):
    """What a standard writer writes (csv, json), or a plain TAB join, reads back unchanged."""
    want = load_examples(rows, "classification", split="test")
    with tempfile.TemporaryDirectory() as d:
        tsv, csv_path, jsonl = (os.path.join(d, f"x.{e}") for e in ("tsv", "csv", "jsonl"))
        with open(tsv, "w", encoding="utf-8", newline="") as f:
            f.write("text\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in rows))
        with open(csv_path, "w", encoding="utf-8", newline="") as f:
            csv.writer(f).writerows([("text", "label"), *rows])
        with open(jsonl, "w", encoding="utf-8") as f:
            f.writelines(json.dumps({"text": t, "label": y}) + "\n" for t, y in rows)
        for path in (tsv, csv_path, jsonl):
            got = load_examples(path, "classification", split="test")
            assert got.texts == want.texts and got.labels.tolist() == want.labels.tolist()
            assert got.label_names == want.label_names and data_fingerprint(got) == data_fingerprint(want)


# ---------------------------------------------------------------- split
@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.integers(0, 5), min_size=2, max_size=200),
    st.sampled_from([0.1, 0.2, 0.5]),
    st.integers(0, 3),
)
def test_stratified_split_invariants(labels, frac, seed):
    names = [str(k) for k in range(6)]
    ex = fd.Examples(
        [f"t{i}" for i in range(len(labels))],
        None,
        np.array(labels),
        names,
        "<list>",
        np.arange(1, len(labels) + 1),
    )
    train, dev = stratified_split(ex, frac, seed)
    n = len(labels)
    assert sorted(train.rows.tolist() + dev.rows.tolist()) == list(range(1, n + 1))
    assert len(dev) >= 1 and len(train) >= 1
    counts = Counter(labels)
    dev_counts = Counter(dev.labels.tolist())
    train_counts = Counter(train.labels.tolist())
    if any(c > 1 for c in counts.values()):  # else every class is a singleton and one must go
        assert set(train_counts) == set(counts)  # every class keeps an example in train
    if len(dev) > 1 or any(c > 1 for c in counts.values()):
        target = min(n - 1, max(1, round(n * frac)))
        assert len(dev) <= target
        for k, c in counts.items():  # each class within one of its proportional share (capped at c - 1)
            assert dev_counts[k] <= min(c - 1, int(np.ceil(c * target / n)))
            assert dev_counts[k] >= min(c - 1, int(np.floor(c * target / n))) - 0
    again = stratified_split(ex, frac, seed)
    assert again[1].rows.tolist() == dev.rows.tolist()  # deterministic
    assert np.all(np.diff(train.rows) > 0) and np.all(np.diff(dev.rows) > 0)  # original order kept


def test_split_other_tasks_and_errors():
    reg = fd.Examples(
        ["t"] * 100, None, np.linspace(0, 5, 100, dtype=np.float32), None, "<list>", np.arange(1, 101)
    )
    _, dev = stratified_split(reg, 0.1, 0)
    assert len(dev) == 10 and np.histogram(dev.labels, bins=10, range=(0, 5))[0].tolist() == [1] * 10
    ml = load_examples([(f"t{i}", "a,b" if i % 10 == 0 else "a") for i in range(50)], "multilabel")
    _, dev = stratified_split(ml, 0.2, 1)
    assert dev.labels[:, 1].sum() == 1 and dev.labels.shape == (10, 2)
    tok = load_examples(
        [(["w"] * 3, ["O", "B-X", "I-X"] if i % 5 else ["O"] * 3) for i in range(20)], "token"
    )
    assert len(stratified_split(tok, 0.25)[1]) == 5
    mlm = load_examples([f"text {i}" for i in range(9)], "mlm")
    assert len(stratified_split(mlm, 0.3)[1]) == 3
    with pytest.raises(DataError, match="cannot be split"):
        stratified_split(mlm.subset([0]))
    with pytest.raises(ValueError, match="dev_fraction"):
        stratified_split(mlm, 1.0)


# ---------------------------------------------------------------- fingerprint
def test_fingerprint_sees_every_field():
    base = load_examples([("a", "x"), ("b", "y")], "classification")
    fps = {
        data_fingerprint(base),
        data_fingerprint(load_examples([("a", "x"), ("b", "x")], "classification", split="test")),
        data_fingerprint(load_examples([("a", "x"), ("c", "y")], "classification")),
        data_fingerprint(load_examples([("a", "x"), ("b", "y")], "classification", label_names=["y", "x"])),
        data_fingerprint(load_examples([("a", "b", "x"), ("b", "b", "y")], "pair")),
        data_fingerprint(load_examples([("a", 1.0), ("b", 2.0)], "regression")),
        data_fingerprint(load_examples([(["a"], ["O"]), (["b"], ["O"])], "token")),
    }
    assert len(fps) == 7
    renamed = base.subset([0, 1])
    renamed.label_names = ["x", "z"]  # same ids, other meaning
    assert data_fingerprint(renamed) != data_fingerprint(base)
    moved = base.subset([0, 1])
    moved.rows, moved.source = moved.rows + 10, "elsewhere.tsv"  # where it came from does not count
    assert data_fingerprint(moved) == data_fingerprint(base)


def test_fingerprint_is_stable_across_processes():
    code = (
        "from fastbert.data import load_examples, data_fingerprint;"
        "print(data_fingerprint(load_examples([('a', 'x'), ('b', 'y')], 'classification')))"
    )
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for seed in ("1", "2")
    }
    here = data_fingerprint(load_examples([("a", "x"), ("b", "y")], "classification"))
    assert outs == {here}
