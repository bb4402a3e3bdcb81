"""Texts to predict on: what ``fastbert predict`` reads, with no label column required.

Tables (CSV/TSV/JSONL/Parquet) are read by their text column (and second-text column for pair
models; regression models take one when the table has it). Anything else is text, one example a
line: ``text<TAB>pair`` for pair models (and optionally for regression), whitespace-separated
words for token models, or CoNLL (tags, if any, ignored) for token models reading a file that is
not ``.txt``. Token models read tables through `load_examples`, which needs the tags column.
"""

from __future__ import annotations

from typing import Any

from fastbert.data.columns import PAIR_COLUMNS, TEXT_COLUMNS, pick_column
from fastbert.data.examples import load_examples
from fastbert.data.labels import text_value
from fastbert.data.readers import read_conll, read_table
from fastbert.errors import DataError

__all__ = ["texts_from_lines", "texts_from_table"]


def texts_from_table(
    path: str, task: str, text_column: str | None = None, pair_column: str | None = None
) -> tuple[list[Any], list[str] | None]:
    """(texts, pairs or None) of a table file; token models: (word lists, None)."""
    if task == "token":
        ex = load_examples(path, "token", text_column=text_column, split="predict")
        return list(ex.texts), None
    table = read_table(path, "mlm")
    pair = None
    if task in ("pair", "regression"):
        if pair_column is not None:
            pair = pick_column(table, "second text", pair_column, (), "text_pair_column", set())
        else:
            present = {n.strip().lower(): n for n in table.names if isinstance(n, str)}
            pair = next((present[c] for c in PAIR_COLUMNS if c in present), None)
        if pair is None and task == "pair":
            raise DataError(
                f"{table.source}: a pair model needs a second text; looked for {', '.join(PAIR_COLUMNS)} "
                f"among the columns {table.names}; pass text_pair_column"
            )
    candidates = TEXT_COLUMNS["pair" if task == "pair" else "default"]
    text = pick_column(table, "text", text_column, candidates, "text_column", {pair} - {None})
    texts = [text_value(v, table.where(i), text) for i, v in enumerate(table.columns[text])]
    if pair is None:
        return texts, None
    return texts, [text_value(v, table.where(i), pair) for i, v in enumerate(table.columns[pair])]


def texts_from_lines(
    name: str, lines: list[str], task: str, *, conll: bool = False
) -> tuple[list[Any], list[str] | None]:
    """(texts, pairs or None) from the lines of a text file (``name`` for messages).

    Token models: words separated by whitespace, or with ``conll`` the sentences of a CoNLL file.
    Pair models: ``text<TAB>pair`` on every line; regression models: on every line or none.
    """
    if task == "token":
        if conll:
            table = read_conll("\n".join(lines), name, tags_required=False)
            return list(table.columns["tokens"]), None
        return [line.split() for line in lines], None
    if task in ("pair", "regression"):
        return _split_pair_lines(name, lines, required=task == "pair")
    return lines, None


def _split_pair_lines(name: str, lines: list[str], required: bool) -> tuple[list[str], list[str] | None]:
    """``text<TAB>second text`` lines → (texts, pairs); ``None`` pairs when no line has a TAB."""
    tabs = [line.count("\t") for line in lines]
    if not required and not any(tabs):
        return lines, None
    for i, n in enumerate(tabs):
        if n != 1:
            raise DataError(
                f"{name}, line {i + 1}: expected a text and its pair separated by one TAB, found {n} TABs"
                + ("" if required else " (some lines have a pair, so every line needs one)")
            )
    parts = [line.split("\t") for line in lines]
    return [p[0] for p in parts], [p[1] for p in parts]
