"""fastbert: fast, honest fine-tuning of BERT-family encoders.

The tokenizer is a Rust WordPiece encoder that gives exactly what Hugging Face
``tokenizers`` gives, much faster; see :class:`fastbert.Tokenizer`.
"""

from fastbert._core import InternalError, UnsupportedTokenizerError
from fastbert.align import (
    spans_to_bio,
    token_to_entities,
    token_to_word_predictions,
    tokenize_and_align,
    word_labels_to_token_labels,
)
from fastbert.chunk import chunk_texts, merge_token_predictions, merge_windows
from fastbert.tokenizer import Encoding, Tokenizer

__version__ = "0.1.0"

# The training API pulls in PyTorch; load it on first use so that tokenization
# (and `fastbert tokenize`) starts fast.
_LAZY = {
    "finetune": "fastbert.api",
    "load": "fastbert.api",
    "predict": "fastbert.api",
    "FineTunedModel": "fastbert.api",
    "FinetuneConfig": "fastbert.config",
    "find_duplicates": "fastbert.dedup",
    "DuplicateReport": "fastbert.dedup",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'fastbert' has no attribute {name!r}")


__all__ = [
    "DuplicateReport",
    "Encoding",
    "FineTunedModel",
    "FinetuneConfig",
    "InternalError",
    "Tokenizer",
    "UnsupportedTokenizerError",
    "__version__",
    "chunk_texts",
    "find_duplicates",
    "finetune",
    "load",
    "merge_token_predictions",
    "merge_windows",
    "predict",
    "spans_to_bio",
    "token_to_entities",
    "token_to_word_predictions",
    "tokenize_and_align",
    "word_labels_to_token_labels",
]
