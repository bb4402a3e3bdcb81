"""Values in: texts, words and labels checked one by one, and label names mapped to ids.

Label ids. With ``label_names`` given (the training set's), they fix the mapping and an unknown
label is an error naming it. Otherwise the names are the distinct labels *sorted*: integers
numerically (``2 < 10``; labels read from text files that are all integers count as integers),
strings lexicographically; a ``datasets`` ``ClassLabel`` keeps its own order. Integer labels
against non-numeric ``label_names`` are ids into them. For ``task="token"`` BIO tags are ordered
``O, B-t, I-t, ...`` by sorted type ``t``, both ``B-``/``I-`` of every type seen included (the order
`fastbert.text.align.bio_labels` uses); other tag sets are sorted. Multi-label values are lists,
or strings split on the first of ``,`` ``;`` ``|`` that occurs in the column (``admiration,joy``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from fastbert.errors import DataError

__all__ = [
    "LabelMap",
    "class_value",
    "float_value",
    "is_missing",
    "label_values",
    "multilabel_delimiter",
    "multilabel_values",
    "text_value",
    "translate_class_labels",
    "words_value",
]

_INT = re.compile(r"[+-]?\d+")


# ---------------------------------------------------------------- values
def is_missing(v: Any) -> bool:
    if v is None:
        return True
    if isinstance(v, (float, np.floating)):
        return bool(np.isnan(v))
    return type(v).__name__ in ("NAType", "NaTType")


def text_value(v: Any, where: str, column: Any) -> str:
    if is_missing(v):
        raise DataError(f"{where}: missing text in column {column!r}")
    if not isinstance(v, str):
        raise DataError(f"{where}: text in column {column!r} must be a string, got {type(v).__name__} {v!r}")
    if not v.strip():
        raise DataError(f"{where}: empty text in column {column!r}")
    return v


def words_value(v: Any, where: str, column: Any) -> list[str]:
    if is_missing(v):
        raise DataError(f"{where}: missing words in column {column!r}")
    if isinstance(v, str):
        v = v.split()
    if not isinstance(v, (list, tuple, np.ndarray)):
        raise DataError(f"{where}: column {column!r} must hold a list of words, got {type(v).__name__}")
    words = list(v)
    if not words:
        raise DataError(f"{where}: empty sentence (no words) in column {column!r}")
    for k, w in enumerate(words):
        if not isinstance(w, str):
            raise DataError(f"{where}: word {k + 1} must be a string, got {type(w).__name__} {w!r}")
        if not w.strip():
            raise DataError(f"{where}: word {k + 1} is empty or whitespace (it would get no tokens)")
    return words


def class_value(v: Any, where: str) -> int | str:
    """A class label as an ``int`` or a stripped ``str``; integer strings become ``int``."""
    if is_missing(v):
        raise DataError(f"{where}: missing label")
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        if math.isfinite(v) and float(v).is_integer():
            return int(v)
        raise DataError(
            f"{where}: label {v!r} is not a class (for real-valued targets use task='regression')"
        )
    if isinstance(v, str):
        s = v.strip()
        if not s:
            raise DataError(f"{where}: empty label")
        if any(c in s for c in "\t\n\r"):
            # `fastbert predict --format tsv` writes a label and its probability tab-separated,
            # one example a line: such a label would break the line.
            raise DataError(
                f"{where}: label {s!r} holds a tab or a line break; a label must be one line without tabs"
            )
        return int(s) if _INT.fullmatch(s) else s
    raise DataError(f"{where}: unsupported label {v!r} of type {type(v).__name__}")


def label_values(names: Sequence[str]) -> list[int | str]:
    """Label names as the data gave them, for predictions: when every name is an integer (the
    data's labels were integers, or integer strings read from a text file, `class_value`), ints;
    else the names. A model trained on labels ``0``/``1`` predicts ``0``/``1``, not ``"0"``/``"1"``."""
    if names and all(_INT.fullmatch(n) for n in names):
        return [int(n) for n in names]
    return list(names)


def float_value(v: Any, where: str) -> float:
    if is_missing(v) or (isinstance(v, str) and not v.strip()):
        raise DataError(f"{where}: missing target value")
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, str, np.integer, np.floating)):
        raise DataError(f"{where}: target {v!r} is not a number")
    try:
        x = float(v)
    except ValueError:
        raise DataError(f"{where}: target {v!r} is not a number") from None
    if not math.isfinite(x):
        raise DataError(f"{where}: target {v!r} is not finite")
    return x


def _sort_key(v: int | str) -> tuple[int, Any]:
    return (0, v) if isinstance(v, int) else (1, v)


def _is_float(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _is_bio(values: Iterable[int | str]) -> bool:
    return all(isinstance(v, str) and (v == "O" or (v[:2] in ("B-", "I-") and len(v) > 2)) for v in values)


def names_from_data(first_seen: dict[int | str, str], task: str) -> list[str]:
    """Sorted label names (ints numerically, strings lexicographically; BIO order for tags)."""
    values = list(first_seen)
    if len({type(v) for v in values}) > 1:
        num = next(v for v in values if isinstance(v, int))
        word = next(v for v in values if isinstance(v, str))
        raise DataError(
            f"labels mix numbers and names: {num!r} ({first_seen[num]}) and {word!r} ({first_seen[word]}); "
            "use one kind, or pass label_names"
            + ("; for real-valued targets use task='regression'" if _is_float(word) else "")
        )
    if task == "token" and _is_bio(values):
        types = sorted({str(v)[2:] for v in values if v != "O"})
        return ["O", *[f"{p}-{t}" for t in types for p in ("B", "I")]]
    return [str(v) for v in sorted(values, key=_sort_key)]


class LabelMap:
    """Label values (``int | str``) → ids, fixed by given names or derived from the data."""

    def __init__(
        self,
        label_names: Sequence[str] | None,
        what: str,
        given: bool,
        numbered: bool = True,
        names_from: str | None = None,
    ) -> None:
        self.what = what  # "label" or "tag", for messages
        self.given = given  # names came from the caller (else from a ClassLabel or the data)
        #: Integer labels against non-numeric names are ids into them; False refuses them.
        self.numbered = numbered
        #: Where the names came from, for that refusal (``"train.tsv, line 2: 'pos'"``).
        self.names_from = names_from
        self.names: list[str] = []
        if label_names is not None:
            names = [str(n) for n in label_names]
            if not names:
                raise ValueError("label_names is empty")
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup:
                raise ValueError(f"label_names has duplicates: {dup}")
            self._set(names)
        self.fixed = label_names is not None

    def _set(self, names: list[str]) -> None:
        self.names = names
        # Integer labels match integer-like names by value ("1" == "01"); against other names they are ids.
        self.numeric = all(_INT.fullmatch(n.strip()) for n in names)
        self.by_name = {n: i for i, n in enumerate(names)}
        self.by_int = {int(n): i for i, n in enumerate(names)} if self.numeric else {}

    def derive(self, first_seen: dict[int | str, str], task: str) -> None:
        """Names from the data (``first_seen``: value → where it first occurs), unless fixed."""
        if not self.fixed:
            self._set(names_from_data(first_seen, task))

    def id(self, v: int | str, where: str) -> int:
        if isinstance(v, int) and not self.numeric and not self.numbered:
            raise DataError(
                f"{where}: {self.what} {v} is a number, but the {self.what}s it is scored against are names "
                f"({self.names_from or ', '.join(self.names[:5])}); write these {self.what}s as names too"
            )
        if isinstance(v, int) and not self.numeric:
            if 0 <= v < len(self.names):
                return v
            i = None
        else:
            i = self.by_int.get(v) if isinstance(v, int) else self.by_name.get(v)
        if i is None:
            shown = ", ".join(self.names[:30]) + (", ..." if len(self.names) > 30 else "")
            if isinstance(v, int) and not self.numeric:
                raise DataError(
                    f"{where}: {self.what} id {v} is out of range for the {len(self.names)} names ({shown})"
                )
            origin = "in label_names (the training set's)" if self.given else "known"
            raise DataError(
                f"{where}: {self.what} {v!r} is not one of the {len(self.names)} {self.what}s {origin}: {shown}"
            )
        return i


def multilabel_delimiter(values: list[Any]) -> str | None:
    for d in (",", ";", "|"):
        if any(isinstance(v, str) and d in v for v in values):
            return d
    return None


def multilabel_values(v: Any, where: str, delimiter: str | None) -> list[int | str]:
    if isinstance(v, str):
        if not v.strip():
            raise DataError(f"{where}: empty labels (an example with no labels is written as [] in JSON)")
        parts = v.split(delimiter) if delimiter else [v]
        if any(not p.strip() for p in parts):
            raise DataError(f"{where}: empty label in {v!r}")
        return [class_value(p, where) for p in parts]
    if isinstance(v, (list, tuple, np.ndarray)):
        return [class_value(x, where) for x in v]
    return [class_value(v, where)]


def translate_class_labels(values: list[Any], names: list[str] | None) -> list[Any]:
    """``datasets`` ``ClassLabel`` ids → their names, so that given ``label_names`` match by name."""
    if names is None:
        return values

    def conv(x: Any) -> Any:
        if isinstance(x, (list, tuple)):
            return [conv(y) for y in x]
        if isinstance(x, (int, np.integer)) and not isinstance(x, bool) and 0 <= x < len(names):
            return names[x]
        return x

    return [conv(x) for x in values]
