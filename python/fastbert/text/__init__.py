"""Text → numbers and back: the tokenizer, label alignment, sliding windows, near-duplicates.

Nothing here knows about data files, models or training; every fast path (in the Rust core) has
a slow, readable reference beside it (``*_reference`` modules), and tests compare the two.

- `Tokenizer` (`fastbert.text.tokenizer`): BERT WordPiece with Hugging Face parity, or the
  ``tokenizers`` fallback (`fastbert.text.fallback`) for other vocabularies;
- alignment for token classification (`fastbert.text.align`): `tokenize_and_align`,
  `word_labels_to_token_labels`, `spans_to_bio`, `token_to_word_predictions`,
  `token_to_entities`;
- sliding windows (`fastbert.text.chunk`): `chunk_texts`, `merge_windows`,
  `merge_token_predictions`;
- near-duplicate detection (`fastbert.text.dedup`): the MinHash index behind
  `fastbert.find_duplicates`, and its `DuplicateReport`.
"""

from fastbert.text.align import (
    spans_to_bio,
    token_to_entities,
    token_to_word_predictions,
    tokenize_and_align,
    word_labels_to_token_labels,
)
from fastbert.text.chunk import chunk_texts, merge_token_predictions, merge_windows
from fastbert.text.dedup import DuplicateReport
from fastbert.text.tokenizer import Encoding, Tokenizer

__all__ = [
    "DuplicateReport",
    "Encoding",
    "Tokenizer",
    "chunk_texts",
    "merge_token_predictions",
    "merge_windows",
    "spans_to_bio",
    "token_to_entities",
    "token_to_word_predictions",
    "tokenize_and_align",
    "word_labels_to_token_labels",
]
