"""Which column of a `Table` is the text, the second text and the label: named, or found by name.

Columns are found by name (case-insensitive; see `TEXT_COLUMNS`, `PAIR_COLUMNS` and
`LABEL_COLUMNS`) unless the caller names them (a name, or a position for headerless tuples).
``task="pair"`` needs a second text; ``task="regression"`` takes one when the data has such a
column (STS-B's ``sentence2``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastbert.data.readers import Table
from fastbert.errors import DataError

__all__ = ["LABEL_COLUMNS", "PAIR_COLUMNS", "TEXT_COLUMNS", "find_columns", "pick_column"]

#: Column names tried in order (case-insensitive) when no column is given, per role and task.
TEXT_COLUMNS: dict[str, tuple[str, ...]] = {
    "default": (
        "text", "sentence", "sentence1", "text1", "text_a", "question", "question1", "query",
        "review", "content", "document", "utterance", "tweet", "comment", "body", "input", "prompt",
    ),
    "pair": (
        "sentence1", "text1", "text_a", "question1", "premise", "query", "question", "text", "sentence",
        "anchor",
    ),
    "token": ("tokens", "words", "token", "word", "text", "sentence"),
}  # fmt: skip
PAIR_COLUMNS: tuple[str, ...] = (
    "sentence2", "text2", "text_b", "text_pair", "question2", "hypothesis", "passage", "context",
    "answer", "response", "positive",
)  # fmt: skip
LABEL_COLUMNS: dict[str, tuple[str, ...]] = {
    "default": (
        "label", "labels", "target", "intent", "class", "category", "y", "gold_label", "sentiment",
        "emotion", "score", "rating", "level",
    ),
    "multilabel": ("labels", "label", "emotions", "tags", "categories", "topics", "target", "y"),
    "regression": (
        "score", "label", "labels", "target", "similarity", "similarity_score", "relatedness_score",
        "rating", "y",
    ),
    "token": ("tags", "ner_tags", "labels", "label", "tag", "ner", "pos_tags"),
}  # fmt: skip


# ---------------------------------------------------------------- columns
def pick_column(
    table: Table, role: str, given: Any, candidates: Sequence[str], param: str, taken: set
) -> Any:
    """The column for ``role``: the one the caller named, else the first candidate present."""
    names = table.names
    if given is not None:
        if isinstance(given, int) and not isinstance(given, bool) and 0 <= given < len(names):
            return names[given]
        for name in names:
            if name == given:
                return name
        for name in names:
            if (
                isinstance(name, str)
                and isinstance(given, str)
                and name.strip().lower() == given.strip().lower()
            ):
                return name
        raise DataError(f"{table.source}: no column {given!r} ({param}); the columns are {names}")
    lowered = {n.strip().lower(): n for n in names if isinstance(n, str) and n not in taken}
    for cand in candidates:
        if cand in lowered:
            return lowered[cand]
    raise DataError(
        f"{table.source}: cannot tell which column is the {role}; looked for {', '.join(candidates)}; "
        f"the columns are {names}. Pass {param}='...'"
    )


def find_columns(table: Table, task: str, text_column: Any, pair_column: Any, label_column: Any) -> tuple:
    """(text, pair or None, label or None) column keys of ``table``.

    ``task="pair"`` needs a second text; ``task="regression"`` takes one when the data has it
    (STS-B style pair regression), and the model should then encode ``(text, pair)``.
    """
    positional = bool(table.names) and all(isinstance(n, int) for n in table.names)
    if pair_column is not None and task not in ("pair", "regression"):
        raise DataError(
            f"text_pair_column is used with task='pair' or 'regression', not task={task!r} "
            "(sentence-pair classification is task='pair')"
        )
    if positional:  # headerless tuples: (text, label), (text, pair, label), (words, tags), (text, ...)
        width = len(table.names)
        layouts = {
            "pair": ("(text, pair, label)", (3,)),
            "regression": ("(text, score) or (text, pair, score)", (2, 3)),
            "token": ("(words, tags)", (2,)),
            "mlm": ("(text,)", range(1, 1 << 30)),
        }
        layout, widths = layouts.get(task, ("(text, label)", (2,)))
        explicit = text_column is not None and (task == "mlm" or label_column is not None)
        if width not in widths and not explicit:
            raise DataError(
                f"{table.source}: tuples of {width} fields, but task={task!r} expects {layout}; "
                "or pass text_column / label_column as positions"
            )
        text = 0 if text_column is None else pick_column(table, "text", text_column, (), "text_column", set())
        pair = label = None
        if pair_column is not None:
            pair = pick_column(table, "pair", pair_column, (), "text_pair_column", set())
        elif task == "pair" or (task == "regression" and width == 3 and not explicit):
            pair = 1
        if task != "mlm":
            label = (
                width - 1
                if label_column is None
                else pick_column(table, "label", label_column, (), "label_column", set())
            )
        return text, pair, label
    texts = TEXT_COLUMNS.get(task, TEXT_COLUMNS["default"])
    labels = LABEL_COLUMNS.get(task, LABEL_COLUMNS["default"])
    taken: set = set()
    label = None
    if task != "mlm":
        label = pick_column(table, "label", label_column, labels, "label_column", taken)
        taken.add(label)
    pair = None
    if task == "pair" or pair_column is not None:
        pair = pick_column(table, "second text", pair_column, PAIR_COLUMNS, "text_pair_column", taken)
    elif task == "regression":
        present = {n.strip().lower(): n for n in table.names if isinstance(n, str) and n not in taken}
        pair = next((present[c] for c in PAIR_COLUMNS if c in present), None)
    if pair is not None:
        taken.add(pair)
    text = pick_column(table, "text", text_column, texts, "text_column", taken)
    if text in (label, pair):
        raise DataError(f"{table.source}: column {text!r} cannot be both the text and the label/pair")
    return text, pair, label
