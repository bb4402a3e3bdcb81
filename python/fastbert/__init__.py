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

__all__ = [
    "Encoding",
    "InternalError",
    "Tokenizer",
    "UnsupportedTokenizerError",
    "__version__",
    "chunk_texts",
    "merge_token_predictions",
    "merge_windows",
    "spans_to_bio",
    "token_to_entities",
    "token_to_word_predictions",
    "tokenize_and_align",
    "word_labels_to_token_labels",
]
