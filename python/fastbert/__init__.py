"""fastbert: fast, honest fine-tuning of BERT-family encoders.

The tokenizer is a Rust WordPiece encoder that gives exactly what Hugging Face
``tokenizers`` gives, much faster; see :class:`fastbert.Tokenizer`.
"""

from fastbert._core import InternalError, UnsupportedTokenizerError
from fastbert.tokenizer import Encoding, Tokenizer

__version__ = "0.1.0"

__all__ = [
    "Encoding",
    "InternalError",
    "Tokenizer",
    "UnsupportedTokenizerError",
    "__version__",
]
