"""The errors fastbert raises on purpose, each a subclass of the built-in a caller would catch.

- `DataError` (a ``ValueError``): the data cannot be used as given; the message names the
  source and the line, row or column.
- `LeakageError` (a `DataError`): training examples duplicate dev examples and
  ``FinetuneConfig.leakage="refuse"`` was set.
- `UnsupportedTokenizerError` (a ``ValueError``): a tokenizer file the Rust WordPiece core
  does not handle (`fastbert.text.Tokenizer` then falls back to ``tokenizers``).
- `InternalError` (a ``RuntimeError``): a bug in fastbert's Rust core, raised instead of a
  crash when it panics; please report it.

The last two are defined by the compiled core, where they are raised.
"""

from __future__ import annotations

from fastbert._core import InternalError, UnsupportedTokenizerError

__all__ = ["DataError", "InternalError", "LeakageError", "UnsupportedTokenizerError"]


class DataError(ValueError):
    """The data cannot be used as given; the message names the source and the line, row or column."""


class LeakageError(DataError):
    """Training examples duplicate dev examples and ``leakage="refuse"`` was set."""
