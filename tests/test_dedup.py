"""`fastbert.find_duplicates`, its Rust core and the `fastbert dedup` command.

- The Rust fingerprints (normalisation, exact hash, shingle keys, MinHash signatures) equal
  the readable pure-Python reference (`fastbert._minhash_reference`) bit for bit, on real
  text and on generated text (hypothesis).
- Properties of the text → numbers mapping: deterministic (and independent of threads and
  batch sizes), invariant under case, spacing and punctuation, exact copies always found,
  no crash on any Unicode string (empty, lone surrogates, ...).
- Quality against brute-force Jaccard similarity on real text with synthetic near duplicates
  (a few words replaced, dropped or inserted): recall of the pairs whose true similarity is
  at least threshold + 0.05, and how close the reported estimates are to the truth.
- The API (iterables, text files, tables, errors naming split/file and line), the leakage
  check `finetune` runs, and the command line.
"""

from __future__ import annotations

import json
import logging
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastbert
from fastbert import _core
from fastbert.data import DataError, load_examples
from fastbert.data import duplicates as dedup
from fastbert.data.leakage import check_leakage
from fastbert.errors import LeakageError
from fastbert.text import minhash_reference as ref

# Characters assigned long ago, so that the category and lowercase tables of the Rust
# crates (Unicode 8+) and of Python's unicodedata agree on every one of them.
OLD_CHARS = (
    [chr(c) for c in range(0x20, 0x7F)]
    + [chr(c) for c in range(0xA0, 0x250)]  # Latin-1, Latin Extended-A/B
    + [chr(c) for c in range(0x300, 0x370)]  # combining diacritical marks
    + [chr(c) for c in range(0x391, 0x3CA) if c != 0x3A2]  # Greek, both sigmas
    + [chr(c) for c in range(0x400, 0x460)]  # Cyrillic
    + [chr(c) for c in range(0x2010, 0x2028)]  # general punctuation
    + [chr(c) for c in range(0x4E00, 0x4E40)]  # CJK
    + [chr(c) for c in range(0x1F600, 0x1F640)]  # emoji
    + ["\t", "\n", "\r", "\x00", "\x07", "\u00ad", "\u200b", "\u3000", "\ufffd", "\u0130", "\u1e9e", "½", "²"]
)
OLD_TEXT = st.text(alphabet=st.sampled_from(OLD_CHARS), max_size=60)
# Every code point, lone surrogates and unassigned ones included.
ANY_TEXT = st.text(alphabet=st.characters(exclude_categories=()), max_size=40)


def raw_lines(data_dir: Path, name: str) -> list[str]:
    return (data_dir / "raw_text" / name).read_text(encoding="utf-8").split("\n")


def fingerprints(texts: list[str], num_perm: int, ngram: int, unit: str) -> tuple:
    exact, sigs, empty = _core.minhash_signatures(texts, num_perm, ngram, unit)
    return exact.tolist(), sigs.tolist(), empty.tolist()


def reference(texts: list[str], num_perm: int, ngram: int, unit: str) -> tuple:
    return (
        [ref.exact_hash(t) for t in texts],
        [ref.signature(t, num_perm, ngram, unit) for t in texts],
        [not ref.normalized_words(t) for t in texts],
    )


# ----------------------------------------------------------------------- fast path = reference
@pytest.mark.parametrize("unit", ["char", "word"])
def test_fingerprints_match_the_reference_on_real_text(data_dir: Path, unit: str) -> None:
    rng = random.Random(0)
    texts = [
        *rng.sample(raw_lines(data_dir, "wnut17_twitter.txt"), 150),  # emoji, URLs, C1 controls
        *rng.sample(raw_lines(data_dir, "wikitext2_valid.txt"), 40),  # long lines, @-@, <unk>
        *rng.sample(raw_lines(data_dir, "tinyshakespeare.txt"), 60),
        "",
        "!!! ...",
    ]
    for ngram, num_perm in ((5, 33), (1, 16), (3, 7)):
        assert fingerprints(texts, num_perm, ngram, unit) == reference(texts, num_perm, ngram, unit)


def test_reported_estimates_are_the_reference_agreement_of_the_signatures() -> None:
    a = [
        "the quick brown fox jumps over the lazy dog near the river bank",
        "a b c d e f g",
        "hello there my old friend how are you",
        "Exactly the same text!",
    ]
    b = [
        "the quick brown fox jumped over the lazy dog near the river bank",
        "a b c d e f g h",
        "hello there my dear old friend how are you",
        "exactly the same text",
    ]
    report = fastbert.find_duplicates({"a": a, "b": b}, threshold=0.5, num_perm=64)
    assert len(report.pairs) == 4, report.pairs
    for _, i, _, j, estimate in report.pairs:
        if ref.normalize(a[i]) == ref.normalize(b[j]):  # exact copies once normalised
            want = 1.0
        else:
            want = ref.estimated_jaccard(
                ref.signature(a[i], 64, 5, "char"), ref.signature(b[j], 64, 5, "char")
            )
        assert estimate == want, (a[i], b[j])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    texts=st.lists(OLD_TEXT, min_size=1, max_size=4),
    unit=st.sampled_from(["char", "word"]),
    ngram=st.integers(1, 6),
    num_perm=st.sampled_from([1, 15, 16, 17, 40]),  # a partial last lane block, and none
)
def test_fingerprints_match_the_reference(texts: list[str], unit: str, ngram: int, num_perm: int) -> None:
    assert fingerprints(texts, num_perm, ngram, unit) == reference(texts, num_perm, ngram, unit)


def test_reference_words_by_example() -> None:
    assert ref.normalize("  Hello,  WORLD!! :-) ") == "hello world"
    assert ref.normalize("ÉCOLE №5 — ½ 東京🙂x") == "école 5 ½ 東京 x"
    assert ref.normalize("ΟΔΟΣ οδος") == "οδοσ οδοσ"  # final sigma folded
    assert ref.normalize("İz") == "i\u0307z"  # dotted capital I: i + combining dot, one word
    assert ref.shingle_set("a b c d e f", "word", 5) == {("a", "b", "c", "d", "e"), ("b", "c", "d", "e", "f")}
    assert ref.shingle_set("Ab, c", "char", 3) == {"ab ", "b c"}
    assert ref.shingle_set("ab", "char", 5) == {"ab"}  # shorter than n: one shingle


# ----------------------------------------------------------------------- properties
def ascii_case_flipped(text: str) -> str:
    return "".join(c.swapcase() if c.isascii() else c for c in text)


def exact(text: str) -> int:
    """The Rust exact-duplicate hash of one text."""
    return int(_core.minhash_signatures([text], 8, 5, "char")[0][0])


@settings(max_examples=200, deadline=None)
@given(OLD_TEXT)
def test_normalisation_invariants(text: str) -> None:
    # Normalising twice changes nothing; case, extra separators and final sigma do not matter.
    assert exact(text) == exact(ref.normalize(text))
    assert exact(text) == exact(text.lower())
    assert exact(text) == exact(ascii_case_flipped(text))
    words = ref.normalized_words(text)
    assert exact(text) == exact(" ,\t ".join(words) + " !!")
    assert exact(text) == exact("¿" + text + "🙂")


@settings(max_examples=100, deadline=None)
@given(texts=st.lists(ANY_TEXT, max_size=8), other=st.lists(ANY_TEXT, max_size=4))
def test_any_unicode_runs_and_exact_copies_are_always_found(texts: list[str], other: list[str]) -> None:
    copies = [ascii_case_flipped(t) + " ." for t in texts]
    report = fastbert.find_duplicates({"a": texts, "b": [*other, *copies]})
    assert report.splits["a"].documents == len(texts)
    assert report.splits["b"].documents == len(other) + len(copies)
    found = {(ia, ib - len(other)): j for _, ia, _, ib, j in report.pairs if ib >= len(other)}
    empty = _core.minhash_signatures(texts, 8, 5, "char")[2] if texts else []
    for i, text in enumerate(texts):
        if not empty[i]:
            assert found.get((i, i)) == 1.0, (text, report.pairs)
    # Deterministic: the same report again.
    assert fastbert.find_duplicates({"a": texts, "b": [*other, *copies]}) == report


def test_results_do_not_depend_on_threads_or_batches(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lines = raw_lines(data_dir, "wnut17_youtube.txt")[:6000]
    data = {"a": lines[:4000], "b": lines[4000:]}
    one = fastbert.find_duplicates(data, num_threads=1)
    assert one.clusters["a"] and one.pairs, "the sample should hold duplicates"
    assert fastbert.find_duplicates(data, num_threads=2) == one
    monkeypatch.setattr(dedup, "BATCH_DOCS", 333)
    assert fastbert.find_duplicates(data, num_threads=2) == one
    sigs = _core.minhash_signatures(lines[:2000], 64, 5, "word", num_threads=1)[1]
    assert np.array_equal(sigs, _core.minhash_signatures(lines[:2000], 64, 5, "word", num_threads=2)[1])


def loops_per_second_while(fn: Callable[[], object]) -> float:
    """How fast this thread spins while ``fn`` runs on another. The clock starts before the
    other thread does: a call that holds the GIL from its first instruction would otherwise
    run inside ``Thread.start``."""
    done = threading.Event()

    def run() -> None:
        fn()
        done.set()

    worker = threading.Thread(target=run)
    loops, start = 0, time.perf_counter()
    worker.start()
    while not done.is_set():
        loops += 1
    seconds = time.perf_counter() - start
    worker.join()
    return loops / seconds


def test_the_gil_is_released_while_fingerprinting(data_dir: Path) -> None:
    texts = raw_lines(data_dir, "wnut17_twitter.txt") + raw_lines(data_dir, "wnut17_youtube.txt")
    index = _core.DedupIndex(0.8, 128, 5, "char")
    idle = loops_per_second_while(lambda: time.sleep(0.05))
    busy = loops_per_second_while(lambda: index.add(texts, num_threads=1))
    assert index.documents == len(texts)
    # Holding the GIL would stop this thread for the whole call (measured: 3% of the idle
    # rate for a 0.2 s C call that holds it); released, it keeps spinning.
    assert busy > 0.25 * idle, (busy, idle)


# ----------------------------------------------------------------------- quality vs brute force
def near_copy(words: list[str], vocabulary: list[str], rng: random.Random) -> str:
    """``words`` with 1-3 of them replaced, dropped or given a new neighbour."""
    words = list(words)
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(words))
        op = rng.choice(("replace", "drop", "insert"))
        if op == "replace":
            words[i] = rng.choice(vocabulary)
        elif op == "drop" and len(words) > 1:
            del words[i]
        else:
            words.insert(i, rng.choice(vocabulary))
    return " ".join(words)


def true_jaccard(a_texts: list[str], b_texts: list[str], unit: str, ngram: int) -> np.ndarray:
    """Brute force: the true Jaccard similarity of every (a, b) pair, ``(len(a), len(b))``."""
    from scipy import sparse

    ids: dict = {}

    def matrix(texts: list[str]) -> sparse.csr_matrix:
        rows, cols = [], []
        for r, t in enumerate(texts):
            for s in ref.shingle_set(t, unit, ngram):
                rows.append(r)
                cols.append(ids.setdefault(s, len(ids)))
        return sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(texts), 1 << 24))

    a, b = matrix(a_texts), matrix(b_texts)
    inter = (a @ b.T).toarray()
    sizes_a, sizes_b = np.asarray(a.sum(1)), np.asarray(b.sum(1)).T
    union = sizes_a + sizes_b - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def quality(
    train: list[str], test: list[str], unit: str, ngram: int, threshold: float
) -> tuple[float, int, np.ndarray, np.ndarray]:
    """(recall, pairs counted, reported estimates, their true values). Recall is over the pairs
    whose true similarity is at least threshold + 0.05: a train × test pair counts as found when
    it is reported, a test × test pair when both land in one cluster."""
    report = fastbert.find_duplicates(
        {"train": train, "test": test}, threshold=threshold, ngram=ngram, unit=unit
    )
    truth = true_jaccard(train, test, unit, ngram)
    reported = {(a, b): j for _, a, _, b, j in report.pairs}
    cross = [(int(a), int(b)) for a, b in np.argwhere(truth >= threshold + 0.05)]
    cluster_of = {i: k for k, c in enumerate(report.clusters["test"]) for i in c}
    within = [
        (int(a), int(b))
        for a, b in np.argwhere(np.triu(true_jaccard(test, test, unit, ngram), 1) >= threshold + 0.05)
    ]
    found = sum(p in reported for p in cross) + sum(
        a in cluster_of and cluster_of.get(a) == cluster_of.get(b) for a, b in within
    )
    n = len(cross) + len(within)
    est = np.array(list(reported.values()))
    true = np.array([truth[a, b] for a, b in reported])
    return found / max(n, 1), n, est, true


def check_estimates(est: np.ndarray, true: np.ndarray, threshold: float) -> None:
    error = est - true
    # 128 permutations: the estimate's standard deviation is sqrt(J(1 - J) / 128) ≤ 0.044.
    assert np.abs(error).mean() < 0.04, np.abs(error).mean()
    assert np.abs(error).max() < 0.2, np.abs(error).max()
    # Reported pairs are near duplicates in truth, not only by estimate.
    assert (true >= threshold - 0.1).mean() > 0.98, np.sort(true)[:10]


def test_quality_char_shingles_on_social_media_text(data_dir: Path) -> None:
    rng = random.Random(1)
    lines = [t for t in raw_lines(data_dir, "wnut17_twitter.txt") if len(t.split()) >= 8]
    lines += [t for t in raw_lines(data_dir, "wnut17_youtube.txt") if len(t.split()) >= 8]
    rng.shuffle(lines)
    train, others = lines[:2000], lines[2000:2300]
    vocabulary = [w for t in others for w in t.split()]
    edited = [near_copy(t.split(), vocabulary, rng) for t in rng.sample(train, 600)]
    test = edited + others + rng.sample(train, 20)  # 20 exact copies
    recall, n, est, true = quality(train, test, "char", 5, 0.8)
    assert n > 150, n
    assert recall >= 0.95, (recall, n)
    check_estimates(est, true, 0.8)


def test_quality_word_shingles_on_wikipedia_paragraphs(data_dir: Path) -> None:
    rng = random.Random(2)
    paragraphs = [t for t in raw_lines(data_dir, "wikitext2_valid.txt") if len(t.split()) >= 60]
    rng.shuffle(paragraphs)
    train, others = paragraphs[:300], paragraphs[300:400]
    vocabulary = [w for t in others for w in t.split()]
    test = [near_copy(t.split(), vocabulary, rng) for t in rng.sample(train, 150)] + others
    recall, n, est, true = quality(train, test, "word", 5, 0.7)
    assert n > 80, n
    assert recall >= 0.95, (recall, n)
    check_estimates(est, true, 0.7)


def test_real_exact_duplicates_are_all_found(data_dir: Path) -> None:
    lines = raw_lines(data_dir, "wnut17_twitter.txt")[:20000]
    report = fastbert.find_duplicates({"tweets": lines})
    by_text: dict[str, list[int]] = {}
    for i, t in enumerate(lines):
        if ref.normalized_words(t):
            by_text.setdefault(ref.normalize(t), []).append(i)
    cluster_of = {i: k for k, c in enumerate(report.clusters["tweets"]) for i in c}
    for group in (g for g in by_text.values() if len(g) > 1):
        assert len({cluster_of.get(i) for i in group}) == 1 and group[0] in cluster_of, group


def test_a_template_filled_in_many_times_stays_fast_and_complete() -> None:
    rng = random.Random(3)
    template = "Your order {} from the online store has been shipped to {} today, thank you for shopping"
    names = ["alice", "bob", "carol", "dave"]
    docs = [template.format(rng.randrange(10**6), rng.choice(names)) for _ in range(3000)]
    report = fastbert.find_duplicates({"a": docs[:2950], "b": docs[2950:]}, threshold=0.7)
    assert [len(c) for c in report.clusters["a"]] == [2950]
    truth = true_jaccard(docs[:2950], docs[2950:], "char", 5)
    reported = {(a, b) for _, a, _, b, _ in report.pairs}
    high = {(int(a), int(b)) for a, b in np.argwhere(truth >= 0.75)}
    assert len(high & reported) >= 0.95 * len(high)
    # Every cross-split pair once (they are all reported), and a few per text within the split:
    # not the 2950² / 2 pairs its buckets hold.
    assert report.compared < 2950 * 50 + 10 * 2950, report.compared


# ----------------------------------------------------------------------- API
def test_report_by_example() -> None:
    report = fastbert.find_duplicates(
        {
            "train": ["Hello, World!", "hello world", "The quick brown fox jumps over the lazy dog", "..."],
            "test": ["the quick brown fox jumped over the lazy dog", "HELLO WORLD", ""],
        }
    )
    assert report.clusters == {"train": [[0, 1]], "test": []}
    assert [p[:4] for p in report.pairs] == [("train", 0, "test", 1), ("train", 1, "test", 1)]
    assert [p[4] for p in report.pairs] == [1.0, 1.0]
    assert (report.splits["train"].empty, report.splits["test"].empty) == (1, 1)
    assert report.redundant("train") == [1]
    assert report.leaked("test", "train") == [1]
    assert report.leaked("train", "test") == [0, 1]
    assert (report.bands, report.rows) == (18, 7)
    assert "train × test: 2 pairs" in report.summary()
    json.dumps(report.to_dict())
    with pytest.raises(KeyError, match="dev"):
        report.leaked("dev", "train")
    # Near duplicates need a lower threshold here: one word of nine changed.
    low = fastbert.find_duplicates({"a": ["the quick brown fox jumps over the lazy dog"],
                                    "b": ["the quick brown fox jumped over the lazy dog"]}, threshold=0.6)  # fmt: skip
    assert len(low.pairs) == 1 and 0.6 <= low.pairs[0][4] < 1


def test_text_files_stream_line_by_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dedup, "BATCH_DOCS", 2)
    a = tmp_path / "a.txt"
    a.write_bytes("\ufeffHello world\r\n\nsomething else\r\nhello, WORLD\n".encode())
    b = tmp_path / "b.txt"
    b.write_text("x\ny\nHello World", encoding="utf-8")  # no final newline
    report = fastbert.find_duplicates({"a": a, "b": str(b)})
    assert report.splits["a"].documents == 4 and report.splits["a"].empty == 1
    assert report.clusters["a"] == [[0, 3]]
    assert [p[:4] for p in report.pairs] == [("a", 0, "b", 2), ("a", 3, "b", 2)]
    assert report.splits["b"].where(2) == f"{b}, line 3"
    assert report.to_dict()["clusters"]["a"] == [[1, 4]]  # line numbers


def test_tables_are_read_by_their_text_column(tmp_path: Path) -> None:
    table = tmp_path / "train.tsv"
    table.write_text("label\tsentence\n1\tA fine film.\n0\tdull\n1\ta FINE film\n", encoding="utf-8")
    report = fastbert.find_duplicates({"train": table, "test": ["A fine film!"]})
    assert report.clusters["train"] == [[0, 2]]
    assert report.splits["train"].where(2) == f"{table}, line 4"
    assert report.leaked("test", "train") == [0]


def test_errors_name_the_split_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine\nalso fine\nnot \xff fine\n")
    with pytest.raises(DataError, match=r"bad\.txt, line 3: not valid UTF-8"):
        fastbert.find_duplicates({"train": bad})
    with pytest.raises(FileNotFoundError, match=r"missing\.txt"):
        fastbert.find_duplicates({"train": tmp_path / "missing.txt"})
    with pytest.raises(TypeError, match=r"test\[3\] must be a str, not int"):
        fastbert.find_duplicates({"train": ["a"], "test": (t for t in ["a", "b", "c", 4])})
    with pytest.raises(TypeError, match="must map split names"):
        fastbert.find_duplicates(["a", "b"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="threshold"):
        fastbert.find_duplicates({"a": ["x"]}, threshold=0)
    with pytest.raises(ValueError, match="num_perm"):
        fastbert.find_duplicates({"a": ["x"]}, num_perm=0)
    with pytest.raises(ValueError, match="unit"):
        fastbert.find_duplicates({"a": ["x"]}, unit="byte")  # type: ignore[arg-type]


# ----------------------------------------------------------------------- leakage in finetune
def examples(rows: list[tuple[str, str]]):
    return load_examples(rows, "classification", split="eval")


TRAIN = [("the film is a joy to watch from start to end", "pos"), ("dull and far too long", "neg"),
         ("a bold, moving story", "pos"), ("I wanted my money back", "neg")]  # fmt: skip
DEV = [("The film is a JOY to watch from start to end!", "pos"), ("clever and kind", "pos")]


def test_leakage_warns_drops_refuses_or_stays_off(caplog: pytest.LogCaptureFixture) -> None:
    train, dev = examples(TRAIN), examples(DEV)
    with caplog.at_level(logging.WARNING, logger="fastbert"):
        kept, record = check_leakage(train, dev, "warn", 0.8)
    assert kept is train
    assert record is not None and record["dev_examples_duplicated_in_train"] == 1
    assert (
        record["examples"][0]["train"] == "<list>, row 1" and record["examples"][0]["dev"] == "<list>, row 1"
    )
    assert "1 of 2 dev examples duplicate 1 training examples" in caplog.text
    assert "train: <list>, dev: <list>), e.g. train row 1 ≈ dev row 1 (" in caplog.text
    assert caplog.text.count("<list>") == 2  # each source named once, not once per pair
    # Words a command-line user can act on, not a Python keyword repr (leakage='drop').
    assert "--set leakage=drop" in caplog.text and "='" not in caplog.text

    dropped, record = check_leakage(train, dev, "drop", 0.8)
    assert dropped.texts == [t for t, _ in TRAIN[1:]] and record is not None and record["dropped"] == 1

    with pytest.raises(LeakageError, match="row 1") as refused:
        check_leakage(train, dev, "refuse", 0.8)
    assert "--set leakage=drop" in str(refused.value) and "='" not in str(refused.value)
    kept, record = check_leakage(train, dev, "off", 0.8)
    assert kept is train and record is None
    clean, record = check_leakage(train, examples(DEV[1:]), "refuse", 0.8)
    assert clean is train and record is not None and record["pairs"] == 0


def test_leakage_compares_pairs_and_word_lists_as_whole_examples() -> None:
    pair = [("a man plays the guitar on stage", "someone is playing music", "yes"),
            ("the cat sleeps on the mat", "a dog barks", "no")]  # fmt: skip
    train = load_examples(pair, "pair", split="eval")
    same_first_text = load_examples(
        [(pair[0][0], "a different second sentence here", "yes")], "pair", split="eval"
    )
    assert check_leakage(train, same_first_text, "warn", 0.8)[1]["pairs"] == 0  # type: ignore[index]
    assert check_leakage(train, train, "warn", 0.8)[1]["pairs"] == 2  # type: ignore[index]
    words = [(["EU", "rejects", "German", "call"], ["B-ORG", "O", "B-MISC", "O"])]
    tokens = load_examples(words, "token", split="eval")
    assert check_leakage(tokens, tokens, "warn", 0.8)[1]["pairs"] == 1  # type: ignore[index]


def test_finetune_drops_leaked_examples_and_saves_what_it_found(tiny_model: Path, tmp_path: Path) -> None:
    one_step = {"epochs": 0.01, "batch_size": 8, "progress": False, "max_length": 24, "seed": 0}
    ft = fastbert.finetune(TRAIN * 2, DEV, model=tiny_model, leakage="drop", **one_step)
    leakage = ft.data_info["leakage"]
    assert leakage["dropped"] == 2 and ft.data_info["train_examples"] == 6
    saved = json.loads((ft.save(tmp_path / "model") / "fastbert.json").read_text(encoding="utf-8"))
    assert saved["data"]["leakage"]["dev_examples_duplicated_in_train"] == 1
    assert saved["config"]["leakage"] == "drop"


def test_finetune_refuses_leaked_data_before_training(tiny_model: Path) -> None:
    with pytest.raises(LeakageError, match="dev examples duplicate"):
        fastbert.finetune(TRAIN, DEV, model=tiny_model, leakage="refuse", progress=False)
    with pytest.raises(ValueError, match="leakage must be"):
        fastbert.finetune(TRAIN, DEV, model=tiny_model, leakage="maybe", progress=False)


# ----------------------------------------------------------------------- command line
def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fastbert", "dedup", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def test_cli_dedup(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("Hello, World!\nsomething else\n\nhello world\n", encoding="utf-8")
    (tmp_path / "b.txt").write_text("HELLO WORLD\nthe quick brown fox\n", encoding="utf-8")
    proc = run_cli("a.txt", "b.txt", "--output", "out.json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "a.txt, line 1 ≈ b.txt, line 1 (1.00)" in proc.stdout
    out = json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))
    assert out["clusters"] == {"a.txt": [[1, 4]], "b.txt": []}
    assert [(p["a"], p["b"]) for p in out["pairs"]] == [(1, 1), (4, 1)]
    assert out["splits"]["a.txt"]["empty"] == 1

    proc = run_cli("a.txt", "b.txt", "--unit", "word", "--output", "-", cwd=tmp_path)
    assert proc.returncode == 0 and json.loads(proc.stdout)["options"]["unit"] == "word"
    assert "duplicate cluster" in proc.stderr


def test_cli_dedup_errors(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("one\n", encoding="utf-8")
    (tmp_path / "bad.txt").write_bytes(b"ok\n\xfe\n")
    for args, status, needle in [
        (("a.txt", "nope.txt"), 1, "nope.txt: no such file"),
        (("a.txt", "bad.txt"), 1, "bad.txt, line 2: not valid UTF-8"),
        (("a.txt", "./a.txt"), 2, "given twice"),
        (("a.txt", "--threshold", "0"), 2, "must be in (0, 1]"),
        (("a.txt", "--num-perm", "100000"), 2, "num_perm must be between"),
        (("a.txt", "--output", "no/such/folder/out.json"), 1, "does not exist"),
    ]:
        proc = run_cli(*args, cwd=tmp_path)
        last = proc.stderr.strip().splitlines()[-1]
        assert proc.returncode == status and "Traceback" not in proc.stderr, proc.stderr
        assert last.startswith("fastbert dedup: error: ") and needle in last, last
    assert not list(tmp_path.glob("*.json")) and not list(tmp_path.glob(".*.tmp"))
