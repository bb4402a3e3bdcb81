"""Regenerate ``banking77_sample/`` (the data ``fastbert finetune`` trains on when given none).

Run from the repository root, with the shared data sets beside it::

    python tools/make_sample.py            # reads ../shared/data/banking77, writes the package's sample

The sample is a deterministic function of the BANKING77 files (see ``SOURCE.md`` there): the
``INTENTS`` intents (all 77) that come first when the names are ordered by the SHA-256 of
``"fastbert-sample:" + name``, then for each of them the ``TRAIN_PER_INTENT`` training texts and
the ``DEV_PER_INTENT`` test texts that come first in the same hash order (test texts that also occur
in the training split are left out, so dev never repeats a training text). Hashing rather than a
seeded random generator keeps the draw identical on every Python version. Rows are written in hash
order too, so that the intents are mixed. The texts are copied unchanged; ``LICENSE`` and
``SOURCE.md`` in the output folder carry the data set's license, attribution and citation.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

INTENTS = 77
TRAIN_PER_INTENT = 20
DEV_PER_INTENT = 10
SALT = "fastbert-sample:"
ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "python" / "fastbert" / "sample_data" / "banking77_sample"
# The repository root's parent holds shared/data.
DEFAULT_SOURCE = ROOT.parent / "shared" / "data" / "banking77"


def _key(text: str) -> str:
    return hashlib.sha256((SALT + text).encode("utf-8")).hexdigest()


def _read(path: Path) -> list[tuple[str, str]]:
    """(text, label) rows of a BANKING77 TSV (header ``text<TAB>label``, no quoting)."""
    lines = path.read_text(encoding="utf-8").split("\n")
    if lines[0] != "text\tlabel":
        sys.exit(f"{path}: expected the header 'text<TAB>label', got {lines[0]!r}")
    rows = []
    for n, line in enumerate(lines[1:], 2):
        if line:
            text, sep, label = line.partition("\t")
            if not sep or "\t" in label:
                sys.exit(f"{path}, line {n}: expected two tab-separated fields")
            rows.append((text, label))
    return rows


def draw(
    rows: list[tuple[str, str]], intents: list[str], per_intent: int, exclude: frozenset[str] = frozenset()
) -> list[tuple[str, str]]:
    """The first ``per_intent`` distinct texts of each intent in hash order, leaving out ``exclude``;
    all rows then in hash order."""
    out: list[tuple[str, str]] = []
    for intent in intents:
        texts = sorted({t for t, label in rows if label == intent and t not in exclude}, key=_key)
        if len(texts) < per_intent:
            sys.exit(f"intent {intent!r} has only {len(texts)} distinct texts, {per_intent} wanted")
        out += [(t, intent) for t in texts[:per_intent]]
    return sorted(out, key=lambda r: _key(r[0] + "\t" + r[1]))


def write_tsv(path: Path, rows: list[tuple[str, str]]) -> None:
    path.write_text("text\tlabel\n" + "".join(f"{t}\t{label}\n" for t, label in rows), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="the banking77 folder")
    parser.add_argument("--out", type=Path, default=OUT, help="where train.tsv and dev.tsv go")
    args = parser.parse_args(argv)
    names = [n for n in (args.source / "labels.txt").read_text(encoding="utf-8").split("\n") if n]
    intents = sorted(names, key=_key)[:INTENTS]
    train_rows = _read(args.source / "train.tsv")
    train = draw(train_rows, intents, TRAIN_PER_INTENT)
    # A few test texts also occur in the training split: they are never drawn for dev.
    dev = draw(_read(args.source / "test.tsv"), intents, DEV_PER_INTENT, frozenset(t for t, _ in train_rows))
    args.out.mkdir(parents=True, exist_ok=True)
    write_tsv(args.out / "train.tsv", train)
    write_tsv(args.out / "dev.tsv", dev)
    print(f"{args.out}: {len(train)} train and {len(dev)} dev examples of {len(intents)} intents")
    return 0


if __name__ == "__main__":
    sys.exit(main())
