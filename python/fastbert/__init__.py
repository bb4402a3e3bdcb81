"""fastbert: fast, honest fine-tuning of BERT-family encoders.

The public API is this module's names:

- `finetune` (`fastbert.finetuning`): fine-tune an encoder on labelled data; returns a
  `FineTunedModel` (`fastbert.predictor`) that predicts, evaluates and saves;
- `load`, `predict`, `evaluate`: the same for a saved folder;
- `FinetuneConfig` (`fastbert.config`): every knob of a run;
- `Tokenizer` (`fastbert.text`): BERT WordPiece with Hugging Face parity, in Rust;
- `find_duplicates` (`fastbert.data.duplicates`): near-duplicate and leakage detection;
- the error types (`fastbert.errors`) and ``__version__``.

Alignment and chunking helpers live in `fastbert.text`; ARCHITECTURE.md maps the layers. The
training API pulls in PyTorch, so it loads on first use: ``import fastbert`` and tokenization
start fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from fastbert._version import __version__
from fastbert.errors import DataError, InternalError, LeakageError, UnsupportedTokenizerError
from fastbert.text.tokenizer import Tokenizer

if TYPE_CHECKING:  # the lazy names below, typed for checkers and editors
    from fastbert.config import FinetuneConfig
    from fastbert.data.duplicates import find_duplicates
    from fastbert.finetuning import finetune
    from fastbert.predictor import FineTunedModel, evaluate, load, predict

_LAZY = {
    "finetune": "fastbert.finetuning",
    "load": "fastbert.predictor",
    "predict": "fastbert.predictor",
    "evaluate": "fastbert.predictor",
    "FineTunedModel": "fastbert.predictor",
    "FinetuneConfig": "fastbert.config",
    "find_duplicates": "fastbert.data.duplicates",
}

#: Names the top level had before the package was layered, and where they live now.
_MOVED = {
    "Encoding": "fastbert.text",
    "DuplicateReport": "fastbert.text",
    "chunk_texts": "fastbert.text",
    "merge_token_predictions": "fastbert.text",
    "merge_windows": "fastbert.text",
    "spans_to_bio": "fastbert.text",
    "token_to_entities": "fastbert.text",
    "token_to_word_predictions": "fastbert.text",
    "tokenize_and_align": "fastbert.text",
    "word_labels_to_token_labels": "fastbert.text",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _MOVED:
        raise AttributeError(
            f"fastbert.{name} is now {_MOVED[name]}.{name}: from {_MOVED[name]} import {name}"
        )
    raise AttributeError(f"module 'fastbert' has no attribute {name!r}")


__all__ = [
    "DataError",
    "FineTunedModel",
    "FinetuneConfig",
    "InternalError",
    "LeakageError",
    "Tokenizer",
    "UnsupportedTokenizerError",
    "__version__",
    "evaluate",
    "find_duplicates",
    "finetune",
    "load",
    "predict",
]
